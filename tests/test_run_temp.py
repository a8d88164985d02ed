"""Temporary files: each run keeps them under its own root in the temp directory,
and a run removes what dead runs of ours left there, never a live run's.

The end-to-end test gives the runs a private TMPDIR, SIGKILLs a two-worker
run in the middle (its root, with the warm worker pool's directory and Beam's
beam-pipeline-temp inside, stays behind), keeps a second run paused (alive),
and checks what a third run removes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import FIXTURES
from run_control import start_run

from alm_beam.io.process_owner import is_alive, owner_is_alive, process_start_ticks, this_process
from alm_beam.io.run_temp import ROOT_PREFIX, sweep_dead_runs

SAMPLE = str(FIXTURES / "sample_input.jsonl")
TWO_WORKERS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_process_is_its_pid_and_its_start_time():
    me, ticks = os.getpid(), process_start_ticks(os.getpid())
    assert ticks is not None and is_alive(me, ticks)
    assert not is_alive(me, ticks + 1)  # same pid, another start: a reused pid, not us
    assert not is_alive(dead_pid(), 0)
    assert owner_is_alive(this_process()) is True
    assert owner_is_alive(this_process()._replace(host="elsewhere.example")) is None


def test_sweep_removes_dead_runs_only(tmp_path):
    me, ticks = os.getpid(), process_start_ticks(os.getpid())
    live = tmp_path / f"{ROOT_PREFIX}{me}-{ticks}-aaaaaa"
    reused = tmp_path / f"{ROOT_PREFIX}{me}-{ticks + 1}-bbbbbb"
    gone = tmp_path / f"{ROOT_PREFIX}{dead_pid()}-{ticks}-cccccc"
    old_dead = tmp_path / "alm_beam_workers_dead"
    old_live = tmp_path / "alm_beam_workers_live"
    old_unknown = tmp_path / "alm_beam_workers_norecord"
    beams = tmp_path / "beam-pipeline-tempxyz"  # cannot tell whose: left alone
    other = tmp_path / "alm_beam-run-notes"
    for path in (live, reused, gone, old_dead, old_live, old_unknown, beams, other):
        path.mkdir()
        (path / "file").write_text("x")
    (old_dead / "worker-0.taken").write_text(str(dead_pid()))
    (old_dead / "worker-1.free").write_text(str(dead_pid()))
    (old_live / "worker-0.taken").write_text(str(dead_pid()))
    (old_live / "worker-1.free").write_text(str(me))
    removed = sweep_dead_runs(str(tmp_path))
    assert sorted(removed) == sorted(map(str, (reused, gone, old_dead)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, old_live, old_unknown, beams, other)
    )


@pytest.mark.e2e
def test_a_killed_runs_temp_files_are_removed_by_the_next_run_and_a_live_runs_kept(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    old_dead = temp / "alm_beam_workers_old"  # the layout before run roots
    old_dead.mkdir()
    (old_dead / "worker-0.taken").write_text(str(dead_pid()))
    foreign = temp / "beam-pipeline-tempforeign"
    foreign.mkdir()

    def roots():
        return sorted(p.name for p in temp.iterdir() if p.name.startswith(ROOT_PREFIX))

    with start_run(
        ["--input", SAMPLE, "--output", tmp_path / "killed", *TWO_WORKERS],
        pause_at="summary",
        marker_dir=tmp_path,
        env=env,
    ) as killed:
        killed.wait_paused()
        [killed_root] = roots()
        assert killed_root.startswith(f"{ROOT_PREFIX}{killed.pid}-")
        inside = sorted(p.name for p in (temp / killed_root).iterdir())
        assert any(n.startswith("alm_beam_workers_") for n in inside), inside
        assert any(n.startswith("beam-pipeline-temp") for n in inside), inside
        killed.kill()
    assert roots() == [killed_root]  # what a SIGKILL leaves behind

    with start_run(
        ["--input", SAMPLE, "--output", tmp_path / "live"], pause_at="started", marker_dir=tmp_path, env=env
    ) as live:
        live.wait_paused()
        [live_root] = [r for r in roots() if r != killed_root]
        with start_run(["--input", SAMPLE, "--output", tmp_path / "next"], env=env) as nxt:
            code, _, err = nxt.finish()
        assert code == 0, err
        # the killed run's root and the old layout's dead pool went; the live run's stayed
        assert roots() == [live_root]
        assert not old_dead.exists() and foreign.is_dir()
        live.resume()
        code, _, err = live.finish()
        assert code == 0, err
    assert sorted(p.name for p in temp.iterdir()) == [foreign.name]


# --- the output directory lock (unit: in this process) -----------------------------


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    from alm_beam.io.output_dir import OutputInUse, OutputLock

    out = str(tmp_path / "out")
    first = OutputLock.acquire(out, "run-1")
    try:
        with pytest.raises(OutputInUse) as info:
            OutputLock.acquire(out, "run-2")
        assert this_process().describe() in str(info.value)
    finally:
        first.release()
    assert os.listdir(out) == []
    second = OutputLock.acquire(out, "run-2")
    assert second.taken_over is None  # released properly: nothing stale to take over
    second.release()


def test_object_store_lock_takes_over_only_a_dead_holder_on_this_host(tmp_path):
    """The FileSystems lock (used for gs://, s3://, ...) run against a local path."""
    import json

    from alm_beam.io.output_dir import LOCK_NAME, OutputInUse, OutputLock

    out = tmp_path / "out"
    out.mkdir()
    lock_file = out / LOCK_NAME
    holder = {**this_process().as_dict(), "run_id": "live"}
    for host in (holder["host"], "elsewhere.example"):
        lock_file.write_text(json.dumps({**holder, "host": host}))
        with pytest.raises(OutputInUse, match=f"if that run is gone, delete {lock_file}"):
            OutputLock._acquire_remote(str(out), "mine")
        assert json.loads(lock_file.read_text())["run_id"] == "live"
    lock_file.write_text(json.dumps({**holder, "pid": dead_pid(), "run_id": "dead"}))
    lock = OutputLock._acquire_remote(str(out), "mine")
    assert lock.taken_over.pid != os.getpid()
    assert json.loads(lock_file.read_text())["run_id"] == "mine"
    lock.release()
    assert not lock_file.exists()
