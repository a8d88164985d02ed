"""The run-statistics accumulator and its CombineFn: merge order never matters."""

import json
import math
import pickle
import random

import orjson
from conftest import FIXTURES, GOLDEN

from alm_beam.beam.transforms import RunStatsCombineFn
from alm_beam.core.curate import Curated, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.stats import (
    DEFAULT_BINS,
    FLOAT_FIELDS,
    INT_FIELDS,
    DurationBins,
    ErrorItem,
    ExactSum,
    ReadCount,
    RunStats,
)

MANIFESTS = ["/d/a.jsonl", "/d/b.jsonl", "/d/c.jsonl.gz", "gs://bucket/d.jsonl"]
# Kept-window lengths around the default bins [108, 132] (1 s wide), with ones
# on every edge and two outside.
DURATIONS = [108.0, 108.5, 109.0, 119.999, 120.0, 131.0, 131.5, 132.0, 107.5, 132.5]


def _error_item(rng, reason):
    source = rng.choice(MANIFESTS)
    offset = rng.choice([None, rng.randint(0, 5000)])
    line = None if offset is None else rng.randint(1, 300)
    record = orjson.dumps(
        {
            "manifest_filepath": source,
            "line": line,
            "byte_offset": offset,
            "reason": reason,
            "detail": "why",
            "raw": "x" * rng.randint(0, 500),
            "raw_truncated": False,
            "raw_bytes": 1,
        }
    )
    return ErrorItem(reason, source, offset, line, record)


def _records(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.2:
            out.append(_error_item(rng, rng.choice(["invalid_json", "wrong_type:segments", "not_an_object"])))
        else:
            kept = rng.randint(0, 4)
            out.append(
                (
                    tuple(rng.randint(0, 50) for _ in INT_FIELDS),
                    tuple(rng.choice([0.1, 0.2, 0.3, 1e16, -1e16, 848.3, 1 / 3]) for _ in FLOAT_FIELDS),
                    rng.choice(MANIFESTS),
                    tuple(rng.choice(DURATIONS) for _ in range(kept)),
                    tuple(rng.randint(1, 6) for _ in range(kept)),
                )
            )
    return out


def _default_bin(d):
    """The default bins worked out by hand: 24 bins of 1 s over [108, 132],
    the last closed at 132; None outside."""
    if d < 108 or d > 132:
        return None
    return min(int(d - 108), 23)


def _direct(records):
    ints = [0] * len(INT_FIELDS)
    floats = [[] for _ in FLOAT_FIELDS]
    errors, examples, hist, below, above, speakers, manifests = {}, {}, [0] * 24, 0, 0, {}, {}
    for r in records:
        if isinstance(r, ErrorItem):
            errors[r.reason] = errors.get(r.reason, 0) + 1
            key = (r.source, r.offset is None, r.offset or 0, r.line is None, r.line or 0, r.record)
            examples[r.reason] = min(examples.get(r.reason, key), key)
            manifests.setdefault(r.source, [0, 0, 0, 0, 0, [], []])[1] += 1
            continue
        for i, v in enumerate(r[0]):
            ints[i] += v
        for i, v in enumerate(r[1]):
            floats[i].append(v)
        for d in r[3]:
            k = _default_bin(d)
            if k is None:
                below += d < 108
                above += d > 132
            else:
                hist[k] += 1
        for n in r[4]:
            speakers[n] = speakers.get(n, 0) + 1
        row = manifests.setdefault(r[2], [0, 0, 0, 0, 0, [], []])
        row[0] += r[0][INT_FIELDS.index("entries_written")]
        row[2] += r[0][INT_FIELDS.index("total_segments")]
        row[3] += r[0][INT_FIELDS.index("windows")]
        row[4] += r[0][INT_FIELDS.index("filtered_windows")]
        row[5].append(r[1][FLOAT_FIELDS.index("total_dur")])
        row[6].append(r[1][FLOAT_FIELDS.index("filtered_dur")])
    manifest_rows = {}
    for source, row in manifests.items():
        total, kept = math.fsum(row[5]), math.fsum(row[6])
        manifest_rows[source] = {
            "manifest_filepath": source,
            "entries_read": row[0] + row[1],
            "entries_written": row[0],
            "entries_failed": row[1],
            "total_segments": row[2],
            "windows": row[3],
            "filtered_windows": row[4],
            "total_dur": total,
            "filtered_dur": kept,
            "yield": kept / total if total > 0 else 0.0,
        }
    return {
        "ints": ints,
        "floats": [math.fsum(f) for f in floats],
        "errors": errors,
        "examples": {k: orjson.loads(v[-1]) for k, v in examples.items()},
        "hist": hist,
        "below": below,
        "above": above,
        "speakers": speakers,
        "manifests": manifest_rows,
    }


def _check_against_direct(result, want):
    assert result.ints == want["ints"]
    assert [f.value for f in result.floats] == want["floats"]
    assert result.errors == want["errors"]
    extra = result.report_dict()
    dur = extra["distributions"]["kept_window_duration_s"]
    assert dur["bin_edges"] == [108.0 + k for k in range(25)]
    assert dur["counts"] == want["hist"]
    assert (dur["below_range"], dur["above_range"]) == (want["below"], want["above"])
    spk = extra["distributions"]["kept_window_speakers"]
    assert dict(zip(spk["values"], spk["counts"])) == want["speakers"]
    assert spk["values"] == sorted(want["speakers"])
    examples = extra["error_examples"]
    assert list(examples) == sorted(want["examples"])
    for reason, record in want["examples"].items():
        got = examples[reason]
        assert (got["manifest_filepath"], got["line"], got["byte_offset"]) == (
            record["manifest_filepath"],
            record["line"],
            record["byte_offset"],
        )
        assert got["raw"] == record["raw"][:300]
        assert got["raw_truncated"] == (len(record["raw"]) > 300)
    manifests = extra["manifests"]
    assert manifests["count"] == len(want["manifests"])
    ranked = sorted(want["manifests"].values(), key=lambda r: (r["yield"], r["manifest_filepath"]))
    assert manifests["lowest_yield"] == ranked[:10]


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
    want = _direct(records)
    assert want["below"] and want["above"] and len(want["examples"]) == 3  # all paths covered
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
        merged = fn.merge_accumulators([fn.merge_accumulators(accs[:3]), fn.merge_accumulators(accs[3:])])
        result = fn.extract_output(merged)
        _check_against_direct(result, want)


def test_summary_dict_counts_and_names_stats():
    """entries_* come from the records, lines_read / blank_lines only from the
    reader's ReadCounts (the numbers here are fixed by the input, not derived)."""
    acc = RunStats()
    records = [
        (
            ErrorItem("invalid_json", "/m.jsonl", i, i + 1, b'{"reason":"invalid_json"}')
            if i % 4 == 0
            else ((1,) + (0,) * (len(INT_FIELDS) - 1), (0.0,) * len(FLOAT_FIELDS), "/m.jsonl", (), ())
        )
        for i in range(100)
    ]
    for r in records:
        acc.add(r)
    acc.add(ReadCount(70, 5))
    acc.add(ReadCount(40, 5))
    d = acc.to_dict()
    assert (
        d["lines_read"],
        d["blank_lines"],
        d["entries_written"],
        d["entries_failed"],
        d["entries_read"],
    ) == (110, 10, 75, 25, 100)
    assert d["errors_by_reason"] == {"invalid_json": 25}
    assert list(d["stats"])[:2] == ["total_segments", "total_dur"]


def test_summary_dict_names_stats_in_spec_order():
    acc = RunStats()
    assert list(acc.to_dict()["stats"]) == [
        "total_segments",
        "total_dur",
        "lost_bw",
        "dur_lost_bw",
        "lost_sr",
        "dur_lost_sr",
        "lost_spk",
        "dur_lost_spk",
        "lost_win",
        "dur_lost_win",
        "lost_no_spkr",
        "dur_lost_no_spkr",
        "lost_next_seg_bm",
        "dur_lost_next_seg_bm",
    ]


# Hand-counted lines (10 s windows, 9..11 s, 1-3 speakers; overlap 50 %).
PARAMS = make_params(
    {"target_window_duration": 10, "tolerance": 0.1, "min_speakers": 1, "max_speakers": 3}, {}
)


def _line(segments, rate=16000, **extra):
    return json.dumps(
        {
            "audio_filepath": "/x.wav",
            "audio_sample_rate": rate,
            "segments": [
                {"start": s, "end": e, "speaker": spk, "metrics": {"bandwidth": 9000}}
                for s, e, spk in segments
            ],
            **extra,
        }
    ).encode()


# Two windows with the same timestamps (10, 0): the filter keeps one timestamp
# and, matching windows back by timestamp, both windows. Start 5 is one
# segment: lost_win (5 s).
TWIN = _line([(0, 5, "a"), (0, 5, "b"), (5, 10, "a")])
# No window (one segment, 2 s): the entry keeps the overlap keys it came with.
CARRIED = _line(
    [(0, 2, "a")], filtered=[[1, 0], [3, 2]], filtered_windows=[], filtered_dur=2.5, total_dur_window=7
)
# Below min_sample_rate (16000): both segments (6 s) are lost_sr.
LOW_RATE = _line([(0, 4, "a"), (4, 6, "b")], rate=8000)


def test_entry_record_counts_filtered_timestamps_not_windows():
    twin = curate_line(TWIN, "m", PARAMS).record
    assert dict(zip(INT_FIELDS, twin[0])) == {
        "entries_written": 1,
        "entries_with_windows": 1,
        "entries_with_filtered_windows": 1,
        "entries_below_min_sample_rate": 0,
        "windows": 2,
        "filtered_windows": 2,
        "filtered_timestamps": 1,
        "truncation_events": 0,
        "lost_win_full_data_records": 1,
        "total_segments": 3,
        "lost_bw": 0,
        "lost_sr": 0,
        "lost_spk": 0,
        "lost_win": 1,
        "lost_no_spkr": 0,
        "lost_next_seg_bm": 0,
        "entries_reduced": 0,
    }
    assert dict(zip(FLOAT_FIELDS, twin[1])) == {
        "filtered_dur": 10,
        "total_dur_window": 20,
        "total_dur": 15,
        "dur_lost_bw": 0,
        "dur_lost_sr": 0,
        "dur_lost_spk": 0,
        "dur_lost_win": 5,
        "dur_lost_no_spkr": 0,
        "dur_lost_next_seg_bm": 0,
    }
    # An entry without windows keeps its own filtered/filtered_dur/... (spec
    # section 4); they are the input's, not counted (issue 19 item 8).
    carried = curate_line(CARRIED, "m", PARAMS).record
    assert dict(zip(INT_FIELDS, carried[0]))["filtered_timestamps"] == 0
    assert dict(zip(INT_FIELDS, carried[0]))["filtered_windows"] == 0
    assert dict(zip(FLOAT_FIELDS, carried[1]))["filtered_dur"] == 0
    assert dict(zip(FLOAT_FIELDS, carried[1]))["total_dur_window"] == 0


def test_summary_numbers_are_the_hand_counted_ones():
    acc = RunStats()
    lines = [TWIN, b"not json", CARRIED, b"  ", LOW_RATE, b"[1]"]
    acc.add(ReadCount(6, 1))  # what the reader counts: 6 lines, 1 of them blank
    for raw in lines:
        outcome = curate_line(raw, "m", PARAMS)
        if outcome is not None:
            acc.add(
                outcome.record
                if isinstance(outcome, Curated)
                else ErrorItem(outcome.reason, "m", None, None, outcome.line)
            )
    expected = {
        "lines_read": 6,
        "blank_lines": 1,
        "entries_read": 5,
        "entries_written": 3,
        "entries_failed": 2,
        "entries_with_windows": 1,
        "entries_with_filtered_windows": 1,
        "entries_below_min_sample_rate": 1,
        "windows": 2,
        "filtered_windows": 2,
        "filtered_timestamps": 1,  # CARRIED's own values are not counted
        "filtered_dur": 10,
        "total_dur_window": 20,
        "truncation_events": 0,
        "lost_win_full_data_records": 2,
        "stats": {
            "total_segments": 6,
            "total_dur": 15 + 2 + 6,
            "lost_bw": 0,
            "dur_lost_bw": 0,
            "lost_sr": 2,
            "dur_lost_sr": 6,
            "lost_spk": 0,
            "dur_lost_spk": 0,
            "lost_win": 2,
            "dur_lost_win": 5 + 2,
            "lost_no_spkr": 0,
            "dur_lost_no_spkr": 0,
            "lost_next_seg_bm": 0,
            "dur_lost_next_seg_bm": 0,
        },
        "errors_by_reason": {"invalid_json": 1, "not_an_object": 1},
    }
    got = acc.to_dict()
    assert {key: got[key] for key in expected} == expected


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


def test_merge_in_every_grouping_and_order_of_four_parts():
    import itertools

    records = _records(120, 7)
    want = _direct(records)
    fn = RunStatsCombineFn()
    parts = []
    for k in range(4):
        acc = fn.create_accumulator()
        for r in records[k * 30 : (k + 1) * 30]:
            acc = fn.add_input(acc, r)
        parts.append(acc)
    for order in itertools.permutations(range(4)):
        a, b, c, d = (pickle.loads(pickle.dumps(parts[i])) for i in order)
        for merged in (
            fn.merge_accumulators([a, b, c, d]),
            fn.merge_accumulators([fn.merge_accumulators([a, b]), fn.merge_accumulators([c, d])]),
            fn.merge_accumulators([a, fn.merge_accumulators([b, fn.merge_accumulators([c, d])])]),
        ):
            _check_against_direct(fn.extract_output(merged), want)


def test_duration_bins_are_fixed_by_the_length_bounds():
    # Worked out by hand: widths 1/2/5 x 10^n, at most 30 bins over [min, max].
    assert DEFAULT_BINS == DurationBins(108.0, 1.0, 24, 132.0)
    bins = DurationBins.for_range(9.0, 11.0)  # 10 s +/- 10 %
    assert (bins.lo, bins.count, bins.hi) == (9.0, 20, 11.0)
    assert math.isclose(bins.width, 0.1)
    assert DurationBins.for_range(0.0, 1000.0) == DurationBins(0.0, 50.0, 20, 1000.0)
    assert DurationBins.for_range(60.0, 60.0) == DurationBins(60.0, 1.0, 1, 60.0)
    assert [DEFAULT_BINS.index(v) for v in (107.99, 108.0, 108.99, 109.0, 131.99, 132.0, 132.01)] == [
        0,
        1,
        1,
        2,
        24,
        24,
        25,
    ]


def test_merging_accumulators_with_different_bins_is_refused():
    import pytest

    a, b = RunStats(), RunStats(DurationBins.for_range(9.0, 11.0))
    with pytest.raises(ValueError, match="bins"):
        a.merge(b)


def test_lowest_yield_keeps_ten_of_many_manifests():
    acc = RunStats()
    ints = [0] * len(INT_FIELDS)
    for k in range(25):
        floats = [0.0] * len(FLOAT_FIELDS)
        floats[FLOAT_FIELDS.index("total_dur")] = 100.0
        floats[FLOAT_FIELDS.index("filtered_dur")] = float(25 - k)  # m24 lowest
        acc.add((tuple(ints), tuple(floats), f"/m{k:02d}.jsonl", (), ()))
    shown = acc.report_dict()["manifests"]
    assert shown["count"] == 25
    assert [r["manifest_filepath"] for r in shown["lowest_yield"]] == [
        f"/m{k:02d}.jsonl" for k in range(24, 14, -1)
    ]
    assert shown["lowest_yield"][0]["yield"] == 0.01


def test_curated_entries_feed_the_histograms_the_golden_windows_give():
    """Kept-window lengths and speaker counts from curate_line equal those read
    back from the golden output's filtered_windows."""
    from alm_beam.core.curate import Curated, curate_line
    from alm_beam.core.params import CurationParams

    acc = RunStats()
    with open(FIXTURES / "sample_input.jsonl", "rb") as fh:
        for n, raw in enumerate(fh, 1):
            outcome = curate_line(raw.rstrip(b"\n"), "sample", CurationParams(), line=n)
            if isinstance(outcome, Curated):
                acc.add(outcome.record)
    hist, speakers, kept = [0] * 24, {}, 0
    with open(GOLDEN / "sample_default.jsonl", encoding="utf-8") as fh:
        for line in fh:
            for window in orjson.loads(line)["filtered_windows"]:
                segs = window["segments"]
                hist[_default_bin(segs[-1]["end"] - segs[0]["start"])] += 1
                names = {s.get("speaker") for s in segs} - {None}
                speakers[len(names)] = speakers.get(len(names), 0) + 1
                kept += 1
    assert kept > 0
    dist = acc.report_dict()["distributions"]
    assert dist["kept_window_duration_s"]["counts"] == hist
    spk = dist["kept_window_speakers"]
    assert dict(zip(spk["values"], spk["counts"])) == speakers
    assert acc.report_dict()["manifests"]["lowest_yield"][0]["filtered_windows"] == kept
