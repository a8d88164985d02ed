"""The product as a user runs it: `python -m alm_beam.run` in a subprocess."""

import collections
import glob
import gzip
import json
import os
import subprocess
import sys
import tempfile

import pytest
from conftest import FIXTURES, REPO, canonical, processes_mentioning

from alm_beam import run as run_module
from alm_beam.core.params import make_params
from tests.literal_spec import literal_build, literal_filter

pytestmark = pytest.mark.e2e  # every test runs the product in a subprocess


def _run(args, cwd, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run"] + args, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _entries(out_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, "windows-*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def test_no_arguments_curates_the_bundled_sample(tmp_path):
    proc = _run([], cwd=tmp_path)
    assert "no --input given; curating the bundled sample manifest" in proc.stderr
    assert "alm_beam run summary" in proc.stdout
    out = tmp_path / "alm_output"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["entries_read"] == 40 == summary["entries_written"]
    # the literal spec transcription on the same 40 entries is the oracle
    with gzip.open(run_module.bundled_sample_path(), "rt", encoding="utf-8") as fh:
        sample = [json.loads(line) for line in fh if line.strip()]
    params = make_params()
    built = [literal_build(e, params.builder) for e in sample]
    filtered = [literal_filter(dict(b), params.overlap, "m") for b in built]
    assert summary["windows"] == sum(len(b["windows"]) for b in built) == 1082
    assert summary["filtered_windows"] == sum(len(f["filtered_windows"]) for f in filtered) == 54
    assert summary["filtered_timestamps"] == sum(len(f["filtered"]) for f in filtered)
    assert summary["stats"]["lost_no_spkr"] == sum(b["stats"]["lost_no_spkr"] for b in built)
    assert len(_entries(out)) == 40
    assert f"windows built      {summary['windows']:>12,}" in proc.stdout
    # README, "Output": the bundled sample's 1,384,102 bytes become 9,107,127 bytes
    # (293,137 with --compact) when installed at /work/main; every entry carries
    # the sample's path, so sizes shift with its length.
    _run(["--compact", "--output", "compact"], cwd=tmp_path)
    path_bytes = 40 * len(summary["inputs"][0])
    base = 40 * len("/work/main/alm_beam/data/sample_manifest.jsonl.gz")
    sizes = [
        sum(os.path.getsize(p) for p in glob.glob(str(d / "windows-*.jsonl")))
        for d in (out, tmp_path / "compact")
    ]
    assert [size - path_bytes for size in sizes] == [9107127 - base, 293137 - base]
    # a second run into the same directory must not mix outputs
    again = _run([], cwd=tmp_path, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_two_workers_multiprocessing_equal_one_worker(tmp_path):
    args = ["--input", str(FIXTURES / "nested_manifests"), "--set", "input.split_mb=0.01"]
    _run(args + ["--output", str(tmp_path / "one"), "--direct_num_workers", "1"], tmp_path)
    two_workers = _run(
        args
        + [
            "--output",
            str(tmp_path / "two"),
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ],
        tmp_path,
    )
    # the SDK workers' start-up INFO lines and known warnings stay out of the way
    assert "INFO" not in two_workers.stderr, two_workers.stderr[-2000:]
    assert "semi_persistent_directory" not in two_workers.stderr
    one, two = _entries(tmp_path / "one"), _entries(tmp_path / "two")
    assert len(one) == 20
    assert collections.Counter(map(canonical, one)) == collections.Counter(map(canonical, two))
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    for key in ("windows", "filtered_windows", "filtered_dur", "stats", "entries_read"):
        assert s1[key] == s2[key], key  # exact sums: identical whatever the split


def test_num_shards_config_file_and_compact(tmp_path):
    sample = str(FIXTURES / "sample_input.jsonl")
    _run(["--input", sample, "--output", str(tmp_path / "full"), "--num_shards", "1"], tmp_path)
    assert sorted(os.listdir(tmp_path / "full")) == [
        ".alm_beam-run.json",
        "errors-00000-of-00001.jsonl",
        "report.html",
        "summary.json",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
    ]
    _run(
        ["--input", sample, "--output", str(tmp_path / "compact"), "--num_shards", "1", "--compact"], tmp_path
    )
    full = _entries(tmp_path / "full")
    compact = _entries(tmp_path / "compact")
    by_path = {e["audio_filepath"]: e for e in full}
    for e in compact:
        ref = dict(by_path[e["audio_filepath"]])
        ref.pop("windows")
        ref["stats"] = {k: v for k, v in ref["stats"].items() if k != "lost_win_full_data"}
        assert e == ref
    full_size = os.path.getsize(tmp_path / "full" / "windows-00000-of-00001.jsonl")
    compact_size = os.path.getsize(tmp_path / "compact" / "windows-00000-of-00001.jsonl")
    # README, "Output": the sample's 30,040 input bytes become 307,875 / 36,727 bytes
    # when read as tests/data/fixtures/sample_input.jsonl from /work/main (a path of
    # 49 characters); every entry also carries its manifest path, so sizes shift
    # with the path's length.
    path_bytes = 5 * len(sample)
    assert (full_size - path_bytes, compact_size - path_bytes) == (307875 - 5 * 49, 36727 - 5 * 49)

    _run(
        [
            "--config",
            str(REPO / "configs" / "short_windows.yaml"),
            "--input",
            sample,
            "--output",
            str(tmp_path / "short"),
        ],
        tmp_path,
    )
    summary = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert summary["params"]["builder"]["target_window_duration"] == 30
    assert summary["params"]["overlap"]["overlap_percentage"] == 30
    assert all(24 <= e - s <= 36 for entry in _entries(tmp_path / "short") for e, s in entry["filtered"])


def test_missing_input_fails_before_the_pipeline(tmp_path):
    proc = _run(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")], tmp_path, check=False)
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_run_that_fails_to_start_leaves_no_worker_processes(tmp_path):
    # the warm SDK workers start before the input is checked; they must go with the run
    def pool_dirs():
        return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("alm_beam_workers_")}

    before = pool_dirs()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(tmp_path / "missing.jsonl"),
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "missing.jsonl" in stderr
    assert processes_mentioning(str(tmp_path).encode()) == []
    assert processes_mentioning(b"alm_beam.execution.direct_workers") == []
    assert pool_dirs() <= before


def test_two_workers_share_one_big_manifest_equally(tmp_path):
    """issue 14, issue 20: with the default (auto) planning, one big manifest and
    two multi_processing workers give one unit per worker, each listing the same
    64 pieces of the file (32 per worker); a worker reads the pieces it claims
    first, so whoever is free takes the next, and every line is written once."""
    src = tmp_path / "big.jsonl"
    subprocess.run(
        [sys.executable, "-m", "alm_beam.synth", "--entries", "120", "--seed", "4", "--out", str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = tmp_path / "two"
    _run(
        [
            "--input",
            str(src),
            "--output",
            str(out),
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
            "--compact",
        ],
        tmp_path,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["run"]["work_units"], summary["run"]["read_ranges"]) == (2, 64)
    shards = sorted(glob.glob(str(out / "windows-*.jsonl")))
    written = [json.loads(line)["audio_filepath"] for path in shards for line in open(path, "rb")]
    assert len(written) == len(set(written)) == 120
