"""Issue 19 item 9: no output line is longer than the product's own reader takes.

A 238 KB input line of 3,000 short segments became a 316 MB windows line
(0.56 GB RSS), which ``input.max_line_mb`` (64 MB) then refused to read back.
Now an entry whose full output would pass the limit is written reduced
(marked ``alm_beam_reduced``), counted in summary.json, and never built whole.
"""

import io
import json
import os
import tracemalloc

import orjson
import pytest

from alm_beam.core.curate import Curated, OutputOptions, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.stats import INT_FIELDS, RunStats
from alm_beam.io.reader import iter_lines

PARAMS = make_params(None, None)
MIB = 1 << 20


def _short_segments(n: int, d: float, **top) -> bytes:
    """n segments of d seconds, two speakers taking turns: every window of two
    minutes holds 120/d of them, and there are about n - 108/d windows."""
    segs = [
        {
            "start": i * d,
            "end": (i + 1) * d,
            "speaker": "ab"[i % 2],
            "text": "w",
            "metrics": {"bandwidth": 9000},
        }
        for i in range(n)
    ]
    return orjson.dumps({"audio_filepath": "/a.wav", "audio_sample_rate": 16000, "segments": segs, **top})


HOSTILE = _short_segments(800, 0.25)  # 66 KB in, 23.5 MB out in full


def _curate(raw, limit, params=PARAMS, **options):
    outcome = curate_line(raw, "m.jsonl", params, options=OutputOptions(max_line_bytes=limit, **options))
    assert type(outcome) is Curated
    return outcome


def test_an_entry_too_long_for_the_limit_is_written_without_its_windows():
    full = _curate(HOSTILE, None)
    assert len(full.line) > 20 * MIB
    reduced = _curate(HOSTILE, MIB)
    assert len(reduced.line) <= MIB
    got, whole = orjson.loads(reduced.line), orjson.loads(full.line)
    assert got["alm_beam_reduced"] == "windows_omitted"
    assert "windows" not in got and "lost_win_full_data" not in got["stats"]
    # everything else as in the full entry, and exactly what --compact writes
    del whole["windows"], whole["stats"]["lost_win_full_data"]
    assert {k: v for k, v in got.items() if k != "alm_beam_reduced"} == whole
    assert (
        reduced.line
        == _curate(HOSTILE, None, compact=True).line[:-1] + b',"alm_beam_reduced":"windows_omitted"}'
    )
    assert reduced.train == full.train  # the training lines are whole
    ints = dict(zip(INT_FIELDS, reduced.record[0]))
    assert ints["entries_reduced"] == 1
    assert ints["windows"] == len(orjson.loads(full.line)["windows"])  # counted as built
    assert dict(zip(INT_FIELDS, full.record[0]))["entries_reduced"] == 0


def test_when_the_kept_windows_alone_pass_the_limit_they_are_omitted_too():
    every = make_params(None, {"overlap_percentage": 100})  # nearly every window is kept
    reduced = _curate(HOSTILE, MIB, every)
    got = orjson.loads(reduced.line)
    assert len(reduced.line) <= MIB
    assert got["alm_beam_reduced"] == "windows_and_filtered_windows_omitted"
    assert "filtered_windows" not in got and "windows" not in got
    assert len(got["filtered"]) > 100  # timestamps stay
    assert reduced.train.count(b"\n") + 1 == dict(zip(INT_FIELDS, reduced.record[0]))["filtered_windows"]


def test_an_entry_too_long_even_reduced_is_one_error_record():
    big = _short_segments(4, 60.0, notes="x" * (MIB + 10))
    outcome = curate_line(big, "m.jsonl", PARAMS, options=OutputOptions(max_line_bytes=MIB))
    assert outcome.reason == "output_too_long"
    record = orjson.loads(outcome.line)
    assert record["reason"] == "output_too_long" and "longer than the output line limit" in record["detail"]
    assert len(outcome.line) < 10_000


def test_within_the_limit_the_bytes_are_unchanged():
    small = _short_segments(150, 1.0)
    assert _curate(small, 64 * MIB).line == _curate(small, None).line
    assert b"alm_beam_reduced" not in _curate(small, 64 * MIB).line


def test_memory_stays_near_the_limit_while_the_line_is_built():
    tracemalloc.start()
    try:
        _curate(HOSTILE, MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * MIB  # the full line alone is 23.5 MB (its build peaked at 40 MB)


def test_summary_counts_the_reduced_entries():
    stats = RunStats()
    stats.add(_curate(HOSTILE, MIB).record)
    stats.add(_curate(_short_segments(150, 1.0), MIB).record)
    assert stats.to_dict()["entries_reduced"] == 1


@pytest.mark.e2e
def test_the_product_reads_its_own_output_back(tmp_path, capsys):
    from alm_beam import run

    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(HOSTILE + b"\n" + _short_segments(150, 1.0) + b"\n")
    out = tmp_path / "out"
    args = [
        "--input",
        manifest,
        "--output",
        out,
        "--num_shards",
        "1",
        "--quiet",
        "--set",
        "input.max_line_mb=1",
    ]
    assert run.main([str(a) for a in args]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["entries_reduced"] == 1 and summary["entries_written"] == 2
    for name in os.listdir(out):
        if name.endswith(".jsonl"):
            lines = list(iter_lines(io.BytesIO((out / name).read_bytes()), max_line=MIB))
            assert all(line.problem is None for line in lines), name
    (windows,) = [n for n in os.listdir(out) if n.startswith("windows-")]
    marks = [json.loads(x).get("alm_beam_reduced") for x in (out / windows).read_text().splitlines()]
    assert sorted(marks, key=str) == [None, "windows_omitted"]
    assert "reduced" in capsys.readouterr().out


# Issue 20: an entry whose output cannot pass the limit is written in one dumps
# (curate.line_size_bound); the bytes must be those of the bounded path.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from alm_beam.core.builder import build_windows_serialized  # noqa: E402
from alm_beam.core.curate import line_size_bound  # noqa: E402
from alm_beam.core.overlap import filter_overlaps  # noqa: E402
from tests.test_builder_property import conversation_entry, curation_params, manifest_entry  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=st.one_of(manifest_entry(), conversation_entry()), params=curation_params())
def test_the_size_bound_is_never_below_the_line(entry, params):
    raw = orjson.dumps(entry)
    build = build_windows_serialized(entry, params.builder)
    out = filter_overlaps(build.entry, params.overlap, "m.jsonl", build.timestamps)
    assert len(orjson.dumps(out)) <= line_size_bound(out, build.segment_bytes, len(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=st.one_of(manifest_entry(), conversation_entry()), params=curation_params())
def test_one_dumps_and_window_by_window_give_the_same_line(entry, params):
    raw = orjson.dumps(entry)
    unbounded = curate_line(raw, "m.jsonl", params, options=OutputOptions())
    if type(unbounded) is not Curated:
        return
    for limit in (64 * MIB, len(unbounded.line), len(unbounded.line) + 1):
        bounded = curate_line(raw, "m.jsonl", params, options=OutputOptions(max_line_bytes=limit))
        assert bounded.line == unbounded.line
        assert bounded.record == unbounded.record and bounded.train == unbounded.train
    if unbounded.record[0][INT_FIELDS.index("windows")]:
        tight = curate_line(
            raw, "m.jsonl", params, options=OutputOptions(max_line_bytes=len(unbounded.line) - 1)
        )
        assert type(tight) is not Curated or b"alm_beam_reduced" in tight.line


def test_the_size_bound_holds_for_numbers_that_grow_when_written():
    """'1e1' is written as 10.0: the bound counts such growth in what the
    output copies from the input, and in the segments the windows copy."""
    template = (
        '{"start":%de1,"end":%de1,"speaker":"%s","metrics":{"bandwidth":9e3},'
        '"words":[{"end":%de1,"word":"a"}]}'
    )
    segs = ",".join(template % (i, i + 1, "ab"[i % 2], i + 1) for i in range(40))
    numbers = ",".join(["9e15"] * 500)
    raw = b'{"audio_filepath":"/a.wav","audio_sample_rate":16e3,"segments":[%s],"x":[%s]}' % (
        segs.encode(),
        numbers.encode(),
    )
    entry = orjson.loads(raw)
    build = build_windows_serialized(entry, PARAMS.builder)
    out = filter_overlaps(build.entry, PARAMS.overlap, "m.jsonl", build.timestamps)
    assert out["windows"] and out["filtered_windows"]
    assert len(orjson.dumps(out)) <= line_size_bound(out, build.segment_bytes, len(raw))
