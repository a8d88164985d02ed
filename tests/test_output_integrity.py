"""Output directory integrity: a run never mixes with, or masquerades as, another run.

* A run killed with SIGKILL half-way leaves no summary.json (the success
  marker) and no final shard, only Beam's temporary directories; Ctrl-C on a
  two-worker run exits 130 and leaves no worker process behind.
* A non-empty output directory is refused unless --overwrite is given.
* --overwrite removes exactly alm_beam's own output (final shards, summary,
  Beam temp directories of a killed run), then the new run writes only its
  own; a directory holding anything else is refused and left untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from alm_beam.output_dir import OWN_OUTPUT, OutputDirError, is_own_output, prepare_output_dir
from alm_beam.pipeline import ERRORS_PREFIX, SUMMARY_NAME, WINDOWS_PREFIX
from bad_inputs.corpus import REPO, read_output, run_in_process
from conftest import FIXTURES, processes_mentioning

SAMPLE = str(FIXTURES / "sample_input.jsonl")
ONE_SHARD = ["errors-00000-of-00001.jsonl", "summary.json", "train-00000-of-00001.jsonl",
             "windows-00000-of-00001.jsonl"]
SYNTH_ENTRIES = 2000   # ~70 MB, several seconds of curation: time to kill it half-way


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
    subprocess.run([sys.executable, "-m", "alm_beam.synth", "--entries", str(SYNTH_ENTRIES),
                    "--seed", "11", "--out", str(path)], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    return path


def wait_until_curating(proc, out):
    """Until the run's sinks have opened their temp files, plus half a second:
    in the middle of the curation, well before the sinks finalize."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(n.startswith("beam-temp-") for n in os.listdir(out)):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, ("the run finished before it could be stopped half-way; "
                                 "raise SYNTH_ENTRIES")


@pytest.mark.slow
def test_sigkill_half_way_leaves_only_temporary_files_then_overwrite_cleans(
        big_manifest, tmp_path, shared_dir):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "alm_beam.run", "--input", str(big_manifest),
                             "--output", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
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
    assert left and all(n.startswith("beam-temp-") and (out / n).is_dir() for n in left), left
    # Beam's real temp directory names are exactly what OWN_OUTPUT recognizes
    assert any(n.startswith(f"beam-temp-{WINDOWS_PREFIX}-") for n in left), left
    assert all(OWN_OUTPUT.match(n) and is_own_output(n, True) for n in left), left

    # The leftovers make the directory non-empty: refused without --overwrite ...
    before = snapshot(out)
    refused = run_in_process(["--input", SAMPLE, "--output", str(out)])
    assert refused.code == 2
    assert "--overwrite" in refused.stderr and "not empty" in refused.stderr
    assert snapshot(out) == before

    # ... and removed with it; afterwards only the new run's files remain.
    result = finished_run(out, "--overwrite")
    assert f"removed {len(left)} entries" in result.stderr
    written = read_output(out)
    assert written.names == ONE_SHARD
    assert written.summary["entries_read"] == 5
    assert not any(p.name.startswith("beam-temp-") for p in out.rglob("*"))


@pytest.mark.slow
def test_ctrl_c_half_way_with_two_workers_exits_130_and_leaves_no_workers(
        big_manifest, tmp_path):
    out = tmp_path / "out"
    marker = str(tmp_path)  # on every process of this run's tree (forked workers too)
    proc = subprocess.Popen([sys.executable, "-m", "alm_beam.run", "--input", str(big_manifest),
                             "--output", str(out), "--direct_num_workers", "2",
                             "--direct_running_mode", "multi_processing",
                             "--set", "input.split_mb=8"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_until_curating(proc, out)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert stderr.rstrip().splitlines()[-1].startswith("alm_beam: interrupted;")
    assert SUMMARY_NAME not in os.listdir(out)
    assert processes_mentioning(marker.encode()) == []
    assert processes_mentioning(b"alm_beam.direct_workers") == []


# --- refusing and overwriting ----------------------------------------------------

def test_non_empty_output_dir_is_refused_without_overwrite(tmp_path, shared_dir):
    out = tmp_path / "out"
    finished_run(out)
    before = snapshot(out)
    result = run_in_process(["--input", SAMPLE, "--output", str(out)])
    assert result.code == 2
    message = [line for line in result.stderr.splitlines() if line.startswith("alm_beam:")]
    assert len(message) == 1 and "--overwrite" in message[0] and str(out) in message[0]
    assert snapshot(out) == before


def test_overwrite_replaces_previous_run_completely(tmp_path, shared_dir):
    out = tmp_path / "out"
    finished_run(out, "--num_shards", "3")
    assert read_output(out).names == sorted(
        [f"{p}-0000{i}-of-00003.jsonl" for p in ("errors", "train", "windows")
         for i in range(3)]
        + ["summary.json"])
    two = tmp_path / "two.jsonl"
    two.write_bytes(b"\n".join(FIXTURES.joinpath("sample_input.jsonl").read_bytes()
                               .splitlines()[:2]) + b"\n")
    result = finished_run(out, "--overwrite", inputs=str(two))
    assert "removed 10 entries" in result.stderr
    written = read_output(out)
    assert written.names == ONE_SHARD  # no stale shard of the 3-shard run survives
    assert len(written.windows) == 2 and written.summary["entries_read"] == 2
    assert all(is_own_output(n, False) for n in written.names)


def test_overwrite_into_missing_or_empty_dir(tmp_path, shared_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    finished_run(empty)
    finished_run(tmp_path / "not" / "yet" / "there", "--overwrite")
    assert read_output(empty).names == ONE_SHARD
    assert read_output(tmp_path / "not" / "yet" / "there").names == ONE_SHARD


def test_overwrite_refuses_a_directory_with_foreign_files(tmp_path, shared_dir):
    out = tmp_path / "out"
    finished_run(out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    result = run_in_process(["--input", SAMPLE, "--output", str(out), "--overwrite"])
    assert result.code == 2
    assert "notes.txt" in result.stderr and "--overwrite only removes" in result.stderr
    assert snapshot(out) == before  # nothing deleted, the old summary included


def test_output_path_that_is_a_file_is_refused(tmp_path, shared_dir):
    target = tmp_path / "file.txt"
    target.write_text("x")
    for extra in ([], ["--overwrite"]):
        result = run_in_process(["--input", SAMPLE, "--output", str(target), *extra])
        assert result.code == 2 and "not a directory" in result.stderr
    assert target.read_text() == "x"


# --- OWN_OUTPUT: exactly the names a run writes ----------------------------------

HEX = uuid.uuid1().hex  # what Beam's FileBasedSink appends to its temp directories

OWN_FILES = ["summary.json", "windows-00000-of-00001.jsonl", "errors-00012-of-00100.jsonl",
             "windows-100000-of-123456.jsonl", "train-00003-of-00004.jsonl"]
OWN_DIRS = [f"beam-temp-windows-{HEX}", f"beam-temp-errors-{HEX}", f"beam-temp-train-{HEX}",
            f"beam-temp-summary.json-{HEX}"]
FOREIGN_FILES = ["notes.txt", "temperature.csv", "temp", ".temp", ".tempfile", "tempwindows",
                 ".temp-beam-x", "summary.json.bak", "summary.jsonl", "old_summary.json",
                 "windows.jsonl", "windows-00000-of-00001.jsonl.bak",
                 "windows-0-of-1.jsonl", "windows-00000-of-00001.json", "Windows-00000-of-00001.jsonl",
                 "other-00000-of-00001.jsonl", "beam-temp-windows", f"beam-temp-other-{HEX}",
                 f"beam-temp-windows-{HEX}x", f"beam-temp-windows-{HEX.upper()}",
                 f"beam-temp-windows-{HEX}"]  # a FILE with a temp directory's name
FOREIGN_DIRS = ["windows-00000-of-00001.jsonl", "summary.json", "data", "beam-temp-x"]


@pytest.mark.parametrize("name", OWN_FILES)
def test_own_files(name):
    assert OWN_OUTPUT.match(name) and is_own_output(name, is_dir=False)


@pytest.mark.parametrize("name", OWN_DIRS)
def test_own_temp_dirs(name):
    assert OWN_OUTPUT.match(name) and is_own_output(name, is_dir=True)


@pytest.mark.parametrize("name", FOREIGN_FILES)
def test_foreign_file_blocks_overwrite_and_survives(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    (out / f"beam-temp-errors-{HEX}").mkdir()
    (out / name).write_text("keep me")
    with pytest.raises(OutputDirError, match="--overwrite only removes") as info:
        prepare_output_dir(str(out), overwrite=True)
    assert name in str(info.value)
    assert (out / name).read_text() == "keep me" and (out / "summary.json").exists()
    assert (out / f"beam-temp-errors-{HEX}").is_dir()


@pytest.mark.parametrize("name", FOREIGN_DIRS)
def test_foreign_directory_blocks_overwrite_and_survives(tmp_path, name):
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    (out / name / "inside.txt").write_text("keep me")
    with pytest.raises(OutputDirError, match=name.replace(".", r"\.")):
        prepare_output_dir(str(out), overwrite=True)
    assert (out / name / "inside.txt").read_text() == "keep me"


def test_prepare_removes_own_output_summary_first(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in OWN_FILES:
        (out / name).write_text("old")
    for name in OWN_DIRS:
        (out / name).mkdir()
        (out / name / "shard.jsonl").write_text("partial")
    with pytest.raises(OutputDirError, match="--overwrite"):
        prepare_output_dir(str(out), overwrite=False)
    removed = prepare_output_dir(str(out), overwrite=True)
    assert removed[0] == "summary.json"
    assert sorted(removed) == sorted(OWN_FILES + OWN_DIRS)
    assert list(out.iterdir()) == []
    assert prepare_output_dir(str(out), overwrite=False) == []
