"""The run-statistics accumulator and its CombineFn: merge order never matters."""

import math
import pickle
import random

from alm_beam.stats import FLOAT_FIELDS, INT_FIELDS, ExactSum, ReadCount, RunStats
from alm_beam.transforms import RunStatsCombineFn


def _records(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.2:
            out.append(rng.choice(["invalid_json", "wrong_type:segments", "not_an_object"]))
        else:
            out.append((tuple(rng.randint(0, 50) for _ in INT_FIELDS),
                        tuple(rng.choice([0.1, 0.2, 0.3, 1e16, -1e16, 848.3, 1 / 3])
                              for _ in FLOAT_FIELDS)))
    return out


def _direct(records):
    ints = [0] * len(INT_FIELDS)
    floats = [[] for _ in FLOAT_FIELDS]
    errors = {}
    for r in records:
        if isinstance(r, str):
            errors[r] = errors.get(r, 0) + 1
            continue
        for i, v in enumerate(r[0]):
            ints[i] += v
        for i, v in enumerate(r[1]):
            floats[i].append(v)
    return ints, [math.fsum(f) for f in floats], errors


def test_exact_sum_is_order_independent_and_correctly_rounded():
    values = [0.1] * 10 + [1e100, 1.0, -1e100]
    forward, backward = ExactSum(), ExactSum()
    for v in values:
        forward.add(v)
    for v in reversed(values):
        backward.add(v)
    assert forward.value == backward.value == math.fsum(values) == 2.0


def test_combiner_merge_in_any_grouping_equals_direct_computation():
    records = _records(500, 1)
    ints, floats, errors = _direct(records)
    fn = RunStatsCombineFn()
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        cuts = sorted(random.Random(seed + 100).sample(range(1, 500), 6))
        parts = [shuffled[a:b] for a, b in zip([0] + cuts, cuts + [500])]
        accs = []
        for part in parts:
            acc = fn.create_accumulator()
            for r in part:
                acc = fn.add_input(acc, r)
            accs.append(pickle.loads(pickle.dumps(acc)))  # accumulators cross workers
        random.Random(seed).shuffle(accs)
        merged = fn.merge_accumulators([fn.merge_accumulators(accs[:3]),
                                        fn.merge_accumulators(accs[3:])])
        result = fn.extract_output(merged)
        assert result.ints == ints
        assert [f.value for f in result.floats] == floats
        assert result.errors == errors


def test_summary_dict_counts_and_names_stats():
    """entries_* come from the records, lines_read / blank_lines only from the
    reader's ReadCounts (the numbers here are fixed by the input, not derived)."""
    acc = RunStats()
    records = [("invalid_json" if i % 4 == 0 else
                ((1,) + (0,) * (len(INT_FIELDS) - 1), (0.0,) * len(FLOAT_FIELDS)))
               for i in range(100)]
    for r in records:
        acc.add(r)
    acc.add(ReadCount(70, 5))
    acc.add(ReadCount(40, 5))
    d = acc.to_dict()
    assert (d["lines_read"], d["blank_lines"], d["entries_written"], d["entries_failed"],
            d["entries_read"]) == (110, 10, 75, 25, 100)
    assert d["errors_by_reason"] == {"invalid_json": 25}
    assert list(d["stats"])[:2] == ["total_segments", "total_dur"]


def test_read_counts_merge_across_accumulators_and_pickle():
    fn = RunStatsCombineFn()
    parts = []
    for lines, blank in ((3, 1), (0, 0), (10, 2)):
        acc = fn.add_input(fn.create_accumulator(), ReadCount(lines, blank))
        parts.append(pickle.loads(pickle.dumps(acc)))
    merged = fn.extract_output(fn.merge_accumulators(parts))
    assert (merged.lines_read, merged.blank_lines) == (13, 3)
    assert merged.ints == [0] * len(INT_FIELDS) and merged.errors == {}


def test_combine_fn_pickles():
    fn = pickle.loads(pickle.dumps(RunStatsCombineFn()))
    assert fn.extract_output(fn.create_accumulator()).to_dict()["entries_read"] == 0


def test_non_finite_values_do_not_poison_partials():
    s = ExactSum()
    s.add(1.5)
    s.add(float("inf"))
    other = ExactSum()
    other.add(2.0)
    s.merge(other)
    assert s.value == float("inf")
