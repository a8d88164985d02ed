"""Acceptance: the real entry point on DirectRunner reproduces every golden case.

Outputs are compared with the repository's golden files (tests/data/golden,
made by NeMo Curator's own stages) as a multiset of parsed entries (exact
values, floats included), ignoring only manifest_filepath, which the reference
leaves null and alm_beam fills with the source manifest path.
"""

import collections
import json
import os

import pytest
from conftest import FIXTURES, GOLDEN, canonical
from runner_helpers import read_shards

from alm_beam import run

pytestmark = pytest.mark.e2e  # every case runs the real entry point

CASES = {
    "sample_default": [],
    "sample_overlap0": ["--set", "overlap.overlap_percentage=0"],
    "sample_overlap100": ["--set", "overlap.overlap_percentage=100"],
    "sample_notrunc": ["--set", "builder.truncation=false"],
    "sample_spk2to3": ["--set", "builder.max_speakers=3"],
    "sample_target60_tol015_td60": [
        "--set",
        "builder.target_window_duration=60",
        "--set",
        "builder.tolerance=0.15",
        "--set",
        "overlap.target_duration=60",
    ],
    "nested_default": [],
}


def _input_for(case):
    return str(FIXTURES / ("nested_manifests" if case.startswith("nested") else "sample_input.jsonl"))


def _read_shards(out_dir, prefix):
    return read_shards(out_dir, prefix)  # any output.compression


@pytest.mark.parametrize("case", sorted(CASES))
def test_entry_point_matches_golden(case, tmp_path, capsys):
    out_dir = str(tmp_path / "out")
    code = run.main(["--input", _input_for(case), "--output", out_dir] + CASES[case])
    assert code == 0
    printed = capsys.readouterr().out
    assert "alm_beam run summary" in printed

    got = _read_shards(out_dir, "windows")
    with open(GOLDEN / f"{case}.jsonl", encoding="utf-8") as fh:
        golden = [json.loads(line) for line in fh if line.strip()]
    assert len(got) == len(golden)
    assert collections.Counter(map(canonical, got)) == collections.Counter(map(canonical, golden))

    # alm_beam's deliberate difference: the source manifest path, never null.
    sources = {e["manifest_filepath"] for e in got}
    assert all(s and s.endswith(".jsonl") for s in sources)
    assert _read_shards(out_dir, "errors") == []

    with open(GOLDEN / f"{case}.summary.json", encoding="utf-8") as fh:
        expected = json.load(fh)["summary"]
    with open(os.path.join(out_dir, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["entries_read"] == summary["entries_written"] == expected["entries"]
    assert summary["entries_failed"] == 0
    for key in (
        "windows",
        "filtered_windows",
        "filtered_timestamps",
        "truncation_events",
        "entries_with_windows",
        "entries_with_filtered_windows",
        "entries_below_min_sample_rate",
        "lost_win_full_data_records",
    ):
        assert summary[key] == expected[key], key
    # Totals are exact sums (correctly rounded); the reference summed naively in
    # file order, so allow only last-bit differences there.
    for key in ("filtered_dur", "total_dur_window"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-12), key
    for key, value in expected["stats"].items():
        assert summary["stats"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
