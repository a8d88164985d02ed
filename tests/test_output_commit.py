"""One run per output directory, and a result that is committed whole.

Real processes throughout: a second run against a directory a live run holds
is refused (exit 2, one line naming the holder) and deletes nothing, even
with --overwrite; a lock left by a SIGKILLed run is taken over. A run killed
at any stage (start-up, sinks finalized, between any two renames of the
commit) leaves no summary.json, and no final file at all unless it was killed
inside the commit, which its run record then says; a rerun with --overwrite
gives exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from bad_inputs.corpus import bad_lines, run_in_process, run_subprocess
from conftest import FIXTURES
from run_control import result_of, run_record, start_run, visible_names

SHARDS = 3
# The commit renames in name order (errors-0..2, report.html, train-0..2, windows-0..2),
# then summary.json (see OutputRun.commit).
FINAL = (
    [f"errors-0000{i}-of-00003.jsonl" for i in range(SHARDS)]
    + ["report.html"]
    + [f"train-0000{i}-of-00003.jsonl" for i in range(SHARDS)]
    + [f"windows-0000{i}-of-00003.jsonl" for i in range(SHARDS)]
    + ["summary.json"]
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """The 5 fixture entries and 2 bad lines: every output kind has lines."""
    valid = [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]
    bad = {b.name: b.raw for b in bad_lines(valid)}
    path = tmp_path_factory.mktemp("commit") / "mixed.jsonl"
    path.write_bytes(b"\n".join(valid + [bad["segment_end_null"], bad["cut_mid_object"]]) + b"\n")
    return path


def args_for(manifest, out, *extra):
    return ["--input", manifest, "--output", out, "--num_shards", str(SHARDS), *extra]


@pytest.fixture(scope="module")
def reference(manifest, tmp_path_factory):
    """The result of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_in_process(list(map(str, args_for(manifest, out))))
    assert result.code == 0, result.stderr
    names, lines, summary = result_of(out)
    assert names == sorted(FINAL)
    assert (summary["entries_written"], summary["entries_failed"]) == (5, 2)
    assert sum(lines["windows"].values()) == 5 and sum(lines["errors"].values()) == 2
    return names, lines, summary


def alm_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("alm_beam:")]


def snapshot(directory):
    found = {}
    for dirpath, dirnames, files in os.walk(directory):
        for name in files + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = b""
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    data = fh.read()
            found[os.path.relpath(path, directory)] = (st.st_ino, st.st_mtime_ns, data)
    return found


# --- item 4: two runs, one output directory --------------------------------------


@pytest.mark.e2e
def test_second_run_is_refused_while_the_first_holds_the_directory(manifest, reference, tmp_path):
    out = tmp_path / "out"
    with start_run(args_for(manifest, out), pause_at="summary", marker_dir=tmp_path) as first:
        first.wait_paused()  # shards finalized in the staging area, summary not yet
        before = snapshot(out)
        for extra in ([], ["--overwrite"]):
            second = run_subprocess(list(map(str, args_for(manifest, out, *extra))))
            assert second.code == 2, second.stderr
            assert "Traceback" not in second.stderr
            [line] = alm_lines(second.stderr)
            assert line.startswith(
                f"alm_beam: error: --output {out}: in use by another "
                f"alm_beam run (pid {first.pid} on host "
                f"{socket.gethostname()}, started 20"
            ), line
            assert snapshot(out) == before  # nothing deleted, nothing written
        first.resume()
        code, _, err = first.finish()
    assert code == 0, err
    assert result_of(out) == reference
    assert sorted(os.listdir(out)) == sorted(FINAL + [".alm_beam-run.json"])  # lock released


@pytest.mark.e2e
def test_two_runs_started_together_one_wins_and_the_result_is_consistent(manifest, reference, tmp_path):
    out = tmp_path / "out"
    runs = [start_run(args_for(manifest, out)) for _ in range(2)]
    finished = [run.finish() for run in runs]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 2], [err[-2000:] for _, _, err in finished]
    loser = next(err for code, _, err in finished if code == 2)
    assert len(alm_lines(loser)) == 1 and "Traceback" not in loser, loser
    assert result_of(out) == reference


@pytest.mark.e2e
def test_lock_of_a_killed_run_is_taken_over(manifest, reference, tmp_path):
    out = tmp_path / "out"
    with start_run(args_for(manifest, out), pause_at="started", marker_dir=tmp_path) as dead:
        dead.wait_paused()
        dead.kill()
    assert (out / ".alm_beam.lock").exists()  # the file stays; its flock died with the run
    result = run_subprocess(list(map(str, args_for(manifest, out, "--overwrite"))))
    assert result.code == 0, result.stderr
    assert (
        f"alm_beam: note: took over the lock of a run that is gone (pid {dead.pid} on host "
        f"{socket.gethostname()}, started "
    ) in result.stderr
    assert result_of(out) == reference
    assert not (out / ".alm_beam.lock").exists()


# --- item 5: a killed run, at every stage ------------------------------------------

STAGES = ["locked", "started", "summary"] + [f"commit:{i}" for i in range(len(FINAL) + 1)]


@pytest.mark.e2e
@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_every_stage_then_overwrite_gives_the_uninterrupted_result(
    manifest, reference, tmp_path, stage
):
    out = tmp_path / "out"
    with start_run(args_for(manifest, out), pause_at=stage, marker_dir=tmp_path) as run:
        run.wait_paused()
        run.kill()
    renamed = int(stage.split(":")[1]) if stage.startswith("commit:") else 0
    # Only a kill inside the commit leaves final names, and then the record says so.
    assert visible_names(out) == sorted(FINAL[:renamed])
    record = run_record(out)
    if stage == "locked":
        assert record is None and os.listdir(out) == [".alm_beam.lock"]
    elif stage.startswith("commit:"):
        assert record["state"] == "committing" and record["files"] == FINAL
    else:
        assert record["state"] == "running" and record["files"] == []
    if renamed < len(FINAL):
        assert not (out / "summary.json").exists()

    if stage in ("started", "commit:3"):  # a plain rerun is refused and says why
        refused = run_subprocess(list(map(str, args_for(manifest, out))))
        assert refused.code == 2
        [line] = alm_lines(refused.stderr)
        why = "did not finish" if stage == "started" else "killed while committing"
        assert "not empty" in line and why in line and "--overwrite" in line, line

    result = run_in_process(list(map(str, args_for(manifest, out, "--overwrite"))))
    assert result.code == 0, result.stderr
    assert result_of(out) == reference
    assert sorted(os.listdir(out)) == sorted(FINAL + [".alm_beam-run.json"])
    assert run_record(out)["state"] == "committed"


@pytest.mark.e2e
def test_sigkill_when_the_first_final_shard_appears(manifest, reference, tmp_path):
    """No test hook: watch the directory and kill the moment a final name shows up.
    Whatever moment that is, a final shard without summary.json is a commit in
    progress that the run record names (before this change such a shard was
    indistinguishable from a finished run's)."""
    out = tmp_path / "out"
    with start_run(args_for(manifest, out)) as run:
        deadline = time.monotonic() + 300
        while run.proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(n.startswith("windows-") for n in os.listdir(out)):
                os.killpg(run.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        run.proc.wait(timeout=60)
    names = visible_names(out)
    assert names, "the run never showed a final name"
    if "summary.json" not in names:
        record = run_record(out)
        assert record is not None and record["state"] == "committing", names
        assert set(names) < set(record["files"])
    result = run_in_process(list(map(str, args_for(manifest, out, "--overwrite"))))
    assert result.code == 0, result.stderr
    assert result_of(out) == reference
