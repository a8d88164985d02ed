"""Output directory integrity: a run never mixes with, or masquerades as, another run.

* A run killed with SIGKILL half-way leaves no summary.json (the success
  marker) and no final shard, only its staging directory and run record; Ctrl-C
  on a two-worker run exits 130 and leaves no worker process behind.
* A non-empty output directory is refused unless --overwrite is given.
* --overwrite removes exactly what the previous run recorded as its own
  (``.alm_beam-run.json``: final shards, summary, staging directory), then the
  new run writes only its own; a directory holding anything else, or holding
  no record of ours (another tool's summary.json), is refused and left untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from bad_inputs.corpus import REPO, read_output, run_in_process
from conftest import FIXTURES, processes_mentioning

from alm_beam.beam.pipeline import ERRORS_PREFIX, WINDOWS_PREFIX
from alm_beam.beam.results_sink import TEMP_PREFIX
from alm_beam.io.output_dir import (
    RECORD_NAME,
    STAGING_PREFIX,
    SUMMARY_NAME,
    OutputDirError,
    prepare_output_dir,
)

SAMPLE = str(FIXTURES / "sample_input.jsonl")
ONE_SHARD = [
    "errors-00000-of-00001.jsonl",
    "report.html",
    "summary.json",
    "train-00000-of-00001.jsonl",
    "windows-00000-of-00001.jsonl",
]
WITH_RECORD = sorted(ONE_SHARD + [RECORD_NAME])
SYNTH_ENTRIES = 2000  # ~70 MB, several seconds of curation: time to kill it half-way


def snapshot(directory):
    """Every file under ``directory`` -> (size, mtime_ns, bytes)."""
    found = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns, fh.read())
    return found


def finished_run(out_dir, *extra, inputs=SAMPLE):
    result = run_in_process(["--input", inputs, "--output", str(out_dir), *extra])
    assert result.code == 0, result.stderr
    return result


# --- a run killed half-way -------------------------------------------------------


@pytest.fixture(scope="module")
def big_manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "big.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.synth",
            "--entries",
            str(SYNTH_ENTRIES),
            "--seed",
            "11",
            "--out",
            str(path),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path


def _sinks_writing(out):
    """Have the run's sinks opened their temp directories (inside the staging area)?"""
    if not out.is_dir():
        return False
    for name in os.listdir(out):
        staging = out / name
        if (
            name.startswith(STAGING_PREFIX)
            and staging.is_dir()
            and any(n.startswith("beam-temp-") for n in os.listdir(staging))
        ):
            return True
    return False


def wait_until_curating(proc, out):
    """Until the run's sinks have opened their temp files, plus half a second:
    in the middle of the curation, well before the sinks finalize."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _sinks_writing(out):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be stopped half-way; raise SYNTH_ENTRIES"


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkill_half_way_leaves_only_temporary_files_then_overwrite_cleans(big_manifest, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alm_beam.run", "--input", str(big_manifest), "--output", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_curating(proc, out)
        os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    left = sorted(os.listdir(out))
    assert SUMMARY_NAME not in left
    assert not [n for n in left if n.startswith((WINDOWS_PREFIX, ERRORS_PREFIX))], left
    # the lock (its flock died with the run), the record, the staging area: all hidden
    [staging] = [n for n in left if n.startswith(STAGING_PREFIX)]
    assert left == sorted([".alm_beam.lock", RECORD_NAME, staging]), left
    assert any(n.startswith(TEMP_PREFIX) for n in os.listdir(out / staging))
    record = json.loads((out / RECORD_NAME).read_text())
    assert (record["state"], record["staging"], record["files"]) == ("running", staging, [])

    # The leftovers make the directory non-empty: refused without --overwrite ...
    before = snapshot(out)
    refused = run_in_process(["--input", SAMPLE, "--output", str(out)])
    assert refused.code == 2
    assert "--overwrite" in refused.stderr and "not empty" in refused.stderr
    # (the refused run took the dead run's lock, and released it: the lock file went)
    del before[".alm_beam.lock"]
    assert snapshot(out) == before

    # ... and removed with it; afterwards only the new run's files remain.
    result = finished_run(out, "--overwrite")
    assert "removed 2 entries" in result.stderr  # the record and the staging area
    written = read_output(out)
    assert sorted(os.listdir(out)) == WITH_RECORD
    assert written.summary["entries_read"] == 5
    assert not any(p.name.startswith("beam-temp-") for p in out.rglob("*"))


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_half_way_with_two_workers_exits_130_and_leaves_no_workers(big_manifest, tmp_path):
    out = tmp_path / "out"
    marker = str(tmp_path)  # on every process of this run's tree (forked workers too)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(big_manifest),
            "--output",
            str(out),
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
            "--set",
            "input.split_mb=8",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_curating(proc, out)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert stderr.splitlines() == [  # one line: no traceback from the runner or a worker
        "alm_beam: interrupted by SIGINT; an output directory without summary.json holds an "
        "incomplete run (rerun with --overwrite)"
    ]
    assert SUMMARY_NAME not in os.listdir(out)
    assert processes_mentioning(marker.encode()) == []
    assert processes_mentioning(b"alm_beam.execution.direct_workers") == []


# --- refusing and overwriting ----------------------------------------------------


@pytest.mark.e2e
def test_non_empty_output_dir_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    finished_run(out)
    before = snapshot(out)
    result = run_in_process(["--input", SAMPLE, "--output", str(out)])
    assert result.code == 2
    message = [line for line in result.stderr.splitlines() if line.startswith("alm_beam:")]
    assert len(message) == 1 and "--overwrite" in message[0] and str(out) in message[0]
    assert snapshot(out) == before


@pytest.mark.e2e
def test_overwrite_replaces_previous_run_completely(tmp_path):
    out = tmp_path / "out"
    finished_run(out, "--num_shards", "3")
    assert read_output(out).names == sorted(
        [f"{p}-0000{i}-of-00003.jsonl" for p in ("errors", "train", "windows") for i in range(3)]
        + ["report.html", "summary.json"]
    )
    two = tmp_path / "two.jsonl"
    two.write_bytes(b"\n".join(FIXTURES.joinpath("sample_input.jsonl").read_bytes().splitlines()[:2]) + b"\n")
    result = finished_run(out, "--overwrite", inputs=str(two))
    assert "removed 12 entries" in result.stderr  # 11 result files and the record
    written = read_output(out)
    assert sorted(os.listdir(out)) == WITH_RECORD  # no stale shard of the 3-shard run survives
    assert len(written.windows) == 2 and written.summary["entries_read"] == 2
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["state"] == "committed"
    assert record["files"] == [
        "errors-00000-of-00001.jsonl",
        "report.html",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
        "summary.json",
    ]


@pytest.mark.e2e
def test_overwrite_into_missing_or_empty_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    finished_run(empty)
    finished_run(tmp_path / "not" / "yet" / "there", "--overwrite")
    assert sorted(os.listdir(empty)) == WITH_RECORD
    assert sorted(os.listdir(tmp_path / "not" / "yet" / "there")) == WITH_RECORD


@pytest.mark.e2e
def test_overwrite_refuses_a_directory_with_foreign_files(tmp_path):
    out = tmp_path / "out"
    finished_run(out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    result = run_in_process(["--input", SAMPLE, "--output", str(out), "--overwrite"])
    assert result.code == 2
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("alm_beam:")]
    assert "notes.txt" in line and "--overwrite only removes" in line and "nothing was deleted" in line
    assert snapshot(out) == before  # nothing deleted, the old summary included


@pytest.mark.e2e
def test_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    for extra in ([], ["--overwrite"]):
        result = run_in_process(["--input", SAMPLE, "--output", str(target), *extra])
        assert result.code == 2 and "not a directory" in result.stderr
    assert target.read_text() == "x"


# --- ownership: what the previous run recorded, never names alone -----------------

RESULT_FILES = ["windows-00000-of-00001.jsonl", "errors-00000-of-00001.jsonl", "summary.json"]
STAGING = STAGING_PREFIX + "20261202T000000-0123abcd"


def write_record(out, files, staging=STAGING, state="committed", **changes):
    doc = {
        "tool": "alm_beam",
        "format": 1,
        "run_id": "20261202T000000-0123abcd",
        "state": state,
        "staging": staging,
        "files": files,
        **changes,
    }
    (out / RECORD_NAME).write_text(json.dumps(doc))


def previous_run(out, *, record=True):
    """A directory as a finished run of ours leaves it (optionally without its record)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        (out / name).write_text("old")
    if record:
        write_record(out, RESULT_FILES)


def test_overwrite_refuses_another_tools_summary_json_without_our_record(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"tool": "something else"}')
    (out / "windows-00000-of-00001.jsonl").write_text("theirs")
    before = snapshot(out)
    with pytest.raises(OutputDirError, match="no such record") as info:
        prepare_output_dir(str(out), overwrite=True)
    assert "summary.json" in str(info.value) and "nothing was deleted" in str(info.value)
    assert snapshot(out) == before


@pytest.mark.e2e
def test_overwrite_of_another_tools_output_is_refused_through_the_cli(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"tool": "something else"}')
    before = snapshot(out)
    result = run_in_process(["--input", SAMPLE, "--output", str(out), "--overwrite"])
    assert result.code == 2
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("alm_beam:")]
    assert line.startswith(
        f"alm_beam: error: --output {out}: --overwrite only removes files an alm_beam run recorded"
    ), line
    assert snapshot(out) == before


def test_overwrite_removes_exactly_what_the_record_names_summary_first(tmp_path):
    out = tmp_path / "out"
    previous_run(out)
    (out / STAGING).mkdir()
    (out / STAGING / "beam-temp-windows-x").mkdir()
    (out / STAGING / "beam-temp-windows-x" / "part").write_text("partial")
    with pytest.raises(OutputDirError, match="--overwrite"):
        prepare_output_dir(str(out), overwrite=False)
    removed = prepare_output_dir(str(out), overwrite=True)
    assert removed[0] == "summary.json" and removed[-1] == RECORD_NAME
    assert sorted(removed) == sorted(RESULT_FILES + [STAGING, RECORD_NAME])
    assert list(out.iterdir()) == []
    assert prepare_output_dir(str(out), overwrite=False) == []


def test_files_missing_from_a_record_are_fine(tmp_path):
    # a run killed during its commit recorded every final file; some never got there
    out = tmp_path / "out"
    out.mkdir()
    (out / "errors-00000-of-00001.jsonl").write_text("x")
    write_record(out, RESULT_FILES, state="committing")
    assert prepare_output_dir(str(out), overwrite=True) == ["errors-00000-of-00001.jsonl", RECORD_NAME]
    assert list(out.iterdir()) == []


FOREIGN = [
    "notes.txt",
    "summary.json.bak",
    "windows-00001-of-00002.jsonl",
    STAGING_PREFIX + "other",
    f"beam-temp-windows-{uuid.uuid1().hex}",
]


@pytest.mark.parametrize("name", FOREIGN)
def test_anything_the_record_does_not_name_blocks_overwrite_and_survives(tmp_path, name):
    out = tmp_path / "out"
    previous_run(out)
    (out / name).write_text("keep me")
    before = snapshot(out)
    with pytest.raises(OutputDirError, match="--overwrite only removes") as info:
        prepare_output_dir(str(out), overwrite=True)
    assert name in str(info.value) and "nothing was deleted" in str(info.value)
    assert snapshot(out) == before


@pytest.mark.parametrize("name", ["summary.json", STAGING_PREFIX + "x"])
def test_a_recorded_name_of_the_wrong_kind_is_not_ours(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    write_record(out, ["summary.json"], staging=STAGING_PREFIX + "x")
    if name == "summary.json":
        (out / name).mkdir()  # recorded as a file, found a directory
        (out / name / "inside.txt").write_text("keep me")
    else:
        (out / name).write_text("keep me")  # recorded as the staging directory, found a file
    before = snapshot(out)
    with pytest.raises(OutputDirError, match="--overwrite only removes"):
        prepare_output_dir(str(out), overwrite=True)
    assert snapshot(out) == before


BAD_RECORDS = [
    "not json",
    json.dumps({"tool": "other", "format": 1, "files": ["summary.json"], "staging": None}),
    json.dumps({"tool": "alm_beam", "format": 99, "files": ["summary.json"], "staging": None}),
    json.dumps({"tool": "alm_beam", "format": 1, "files": ["../elsewhere"], "staging": None}),
    json.dumps({"tool": "alm_beam", "format": 1, "files": ["summary.json"], "staging": "data"}),
    json.dumps(["summary.json"]),
]


@pytest.mark.parametrize("text", BAD_RECORDS)
def test_a_record_that_is_not_ours_owns_nothing(tmp_path, text):
    out = tmp_path / "out"
    previous_run(out, record=False)
    (out / RECORD_NAME).write_text(text)
    before = snapshot(out)
    with pytest.raises(OutputDirError, match="no such record"):
        prepare_output_dir(str(out), overwrite=True)
    assert snapshot(out) == before


def test_an_empty_record_owns_only_itself(tmp_path):
    # a run killed between creating its record and writing it
    out = tmp_path / "out"
    out.mkdir()
    (out / RECORD_NAME).write_text("")
    assert prepare_output_dir(str(out), overwrite=True) == [RECORD_NAME]
    (out / RECORD_NAME).write_text("")
    (out / "summary.json").write_text("{}")
    with pytest.raises(OutputDirError, match="--overwrite only removes"):
        prepare_output_dir(str(out), overwrite=True)
    assert (out / "summary.json").exists()
