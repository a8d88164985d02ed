"""Issue 19 item 8: totals count what the run produced, never what an input carried.

An entry that builds no window keeps the overlap filter's keys it already has
(spec section 4). Those values are the input's: they must not reach
summary.json or the report, and ``python -m alm_beam.inspect`` must survive
any content in an output directory.
"""

import json
import os

import orjson
import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alm_beam.core.curate import Curated, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.stats import FLOAT_FIELDS, INT_FIELDS, RunStats
from alm_beam.results import inspect as inspect_mod

PARAMS = make_params(None, None)

# Three short segments: no window of 108..132 s can be built from them.
CARRIER = {
    "audio_filepath": "/a/carrier.wav",
    "audio_sample_rate": 16000,
    "segments": [
        {"start": 0.0, "end": 1.0, "speaker": "a", "metrics": {"bandwidth": 9000}},
        {"start": 1.0, "end": 2.0, "speaker": "b", "metrics": {"bandwidth": 9000}},
        {"start": 2.0, "end": 3.0, "speaker": "a", "metrics": {"bandwidth": 9000}},
    ],
    "filtered_windows": [{}] * 500,
    "filtered_dur": 9e15,
    "filtered": [[2.0, 1.0]] * 7,
    "total_dur_window": 4e15,
    "windows": [{"segments": []}] * 9,
    "stats": {"lost_win": 10**9},
    "truncation_events": 77,
}


def _carrier_outcome():
    outcome = curate_line(orjson.dumps(CARRIER), "m.jsonl", PARAMS)
    assert type(outcome) is Curated
    return outcome


def test_input_copies_of_our_keys_are_not_counted():
    outcome = _carrier_outcome()
    ints, floats = dict(zip(INT_FIELDS, outcome.record[0])), dict(zip(FLOAT_FIELDS, outcome.record[1]))
    assert ints["windows"] == 0
    assert ints["filtered_windows"] == 0  # was 500
    assert ints["entries_with_filtered_windows"] == 0
    assert ints["filtered_timestamps"] == 0  # was 7
    assert ints["truncation_events"] == 0
    assert floats["filtered_dur"] == 0.0  # was 9e15
    assert floats["total_dur_window"] == 0.0  # was 4e15
    assert outcome.train == b""


def test_output_entry_keeps_the_carried_values_as_the_spec_says():
    out = orjson.loads(_carrier_outcome().line)
    # spec section 4: without windows, present keys are kept as given
    assert out["filtered_windows"] == [{}] * 500
    assert out["filtered_dur"] == 9e15
    assert out["filtered"] == [[2.0, 1.0]] * 7
    assert out["total_dur_window"] == 4e15
    # the builder's own keys are always ours
    assert out["windows"] == []
    assert out["truncation_events"] == 0
    assert out["stats"]["total_segments"] == 3


def test_summary_over_a_carrier_and_real_entries_counts_only_built_windows():
    stats = RunStats()
    real = curate_line((FIXTURES / "sample_input.jsonl").read_bytes().splitlines()[0], "s.jsonl", PARAMS)
    stats.add(real.record)
    stats.add(_carrier_outcome().record)
    doc = stats.to_dict()
    real_out = orjson.loads(real.line)
    assert doc["filtered_windows"] == len(real_out["filtered_windows"])
    assert doc["filtered_dur"] == real_out["filtered_dur"]
    assert doc["total_dur_window"] == real_out["total_dur_window"]
    assert doc["filtered_timestamps"] == len(real_out["filtered"])
    rows = {r["manifest_filepath"]: r for r in stats.manifest_rows()}
    assert rows["m.jsonl"]["filtered_windows"] == 0
    assert rows["m.jsonl"]["filtered_dur"] == 0.0


@pytest.mark.e2e
def test_run_summary_equals_the_training_lines(tmp_path, capsys):
    from alm_beam import run

    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        (FIXTURES / "sample_input.jsonl").read_bytes().rstrip(b"\n") + b"\n" + orjson.dumps(CARRIER) + b"\n"
    )
    out = tmp_path / "out"
    assert run.main(["--input", str(manifest), "--output", str(out), "--num_shards", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    train = []
    for name in sorted(os.listdir(out)):
        if name.startswith("train-"):
            train += [json.loads(x) for x in (out / name).read_text().splitlines() if x.strip()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["filtered_windows"] == len(train) == 25  # spec section 7: 25 on the sample
    assert summary["filtered_dur"] == pytest.approx(sum(t["duration"] for t in train))
    assert summary["filtered_hours"] < 1.0
    assert f"windows kept       {len(train):>12,}" in printed


# --------------------------------------------------------------------------
# inspect over arbitrary content

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
WINDOWISH = st.fixed_dictionaries(
    {},
    optional={
        "audio_filepath": JSON_VALUES,
        "filtered_windows": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "segments": JSON_VALUES
                    | st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "start": JSON_VALUES,
                                "end": JSON_VALUES,
                                "speaker": JSON_VALUES,
                                "text": JSON_VALUES,
                            },
                        ),
                        max_size=3,
                    )
                },
            )
            | JSON_VALUES,
            max_size=3,
        )
        | JSON_VALUES,
    },
)
TRAINISH = st.fixed_dictionaries(
    {},
    optional={
        k: JSON_VALUES for k in ("audio_filepath", "offset", "duration", "speakers", "num_segments", "text")
    },
)
ERRORISH = st.fixed_dictionaries(
    {"reason": st.sampled_from(["invalid_json", "x"]) | JSON_VALUES},
    optional={
        k: JSON_VALUES for k in ("manifest_filepath", "line", "byte_offset", "detail", "raw", "raw_truncated")
    },
)


def _line(value) -> bytes:
    return json.dumps(value).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    windows=st.lists(WINDOWISH | JSON_VALUES, max_size=4),
    train=st.lists(TRAINISH | JSON_VALUES, max_size=4),
    errors=st.lists(ERRORISH | JSON_VALUES, max_size=4),
    reason=st.sampled_from(["invalid_json", "x"]),
    with_train=st.booleans(),
    garbage=st.binary(max_size=20),
)
def test_inspect_survives_any_entries(tmp_path_factory, windows, train, errors, reason, with_train, garbage):
    out = tmp_path_factory.mktemp("inspect")
    summary = {
        "lines_read": 3,
        "blank_lines": 0,
        "entries_read": 3,
        "entries_written": 2,
        "entries_failed": 1,
        "windows": 0,
        "filtered_windows": 0,
        "filtered_dur": 0.0,
        "filtered_hours": 0.0,
        "truncation_events": 0,
        "stats": {k: 0 for k in ("total_segments", "total_dur")}
        | {k: 0 for k in ("lost_bw", "lost_sr", "lost_spk", "lost_win", "lost_no_spkr", "lost_next_seg_bm")}
        | {
            "dur_" + k: 0.0
            for k in ("lost_bw", "lost_sr", "lost_spk", "lost_win", "lost_no_spkr", "lost_next_seg_bm")
        },
        "errors_by_reason": {reason: 1},
        "max_error_fraction": 0.5,
        "outputs": {"windows": ["windows-00000-of-00001.jsonl"], "train": ["t"] if with_train else []},
    }
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "windows-00000-of-00001.jsonl").write_bytes(b"\n".join(map(_line, windows)) + b"\n" + garbage)
    (out / "train-00000-of-00001.jsonl").write_bytes(b"\n".join(map(_line, train)) + b"\n" + garbage)
    (out / "errors-00000-of-00001.jsonl").write_bytes(b"\n".join(map(_line, errors)) + b"\n" + garbage)
    text = inspect_mod.inspect_output(str(out), 3)  # never raises
    assert text.startswith("alm_beam run summary")
    assert "kept windows" in text and "rejected lines" in text
