"""alm_beam.execution.worker_pool: the EXTERNAL environment's worker pool of
pipelines/portable.sh (and of the Flink and Spark launchers).

A StartWorker that answers an error fails the job, and Prism 2.77 even exits
on one (it panics), so the pool hands a job to another worker when the one
it picked has died; its workers die with it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from runner_helpers import descendants, wait_gone

from alm_beam.execution import worker_pool


def _wait_for(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def test_the_pools_workers_die_with_it(tmp_path):
    """The spare worker (Beam imported, waiting for a job) is killed with the pool,
    even when the pool itself is SIGKILLed and can run no clean-up."""
    log = open(tmp_path / "pool.log", "wb")
    pool = subprocess.Popen(
        [sys.executable, "-m", "alm_beam.execution.worker_pool", "--port", "0"],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        # A child seen between fork and exec, or while it exits, has another or an
        # empty command line: wait for the spare itself.
        spare = _wait_for(lambda: [pid for pid in descendants(pool.pid) if b"--harness" in _cmdline(pid)])
        assert len(spare) == 1
    finally:
        pool.send_signal(signal.SIGKILL)
        pool.wait()
        log.close()
    assert wait_gone(spare) == [], "the spare worker outlived its pool"


def test_a_worker_whose_parent_is_gone_exits_at_once():
    """The parent check closes the window before PDEATHSIG is set: a worker told
    to die with a process that is not its parent exits, without importing Beam."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "alm_beam.execution.worker_pool", "--harness", "--parent-pid", "1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert time.monotonic() - started < 30


class _Request:
    """The two fields of a StartWorkerRequest the pool reads."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self.control_endpoint = type("Endpoint", (), {"url": "localhost:1"})()


def test_a_dead_worker_is_replaced_and_the_job_still_starts(tmp_path, monkeypatch, caplog):
    """The spare died (a crash, a kill) and so did the worker started in its place:
    the job goes to the next one, and the pool logs each dead worker's status.
    (Before, the second death answered StartWorker with a BrokenPipeError, on
    which Prism exits.)"""
    received = tmp_path / "request.json"
    plan = ["dead", "alive", "dead", "alive"]  # spare, next spare, (old code's fresh one)
    started = []

    def fake_start_spare(self):
        kind = plan.pop(0) if plan else "alive"
        if kind == "dead":
            worker = subprocess.Popen(
                [sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], stdin=subprocess.PIPE
            )
            worker.wait()
        else:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"import sys; data = sys.stdin.buffer.read(); open({str(received)!r}, 'wb').write(data)",
                ],
                stdin=subprocess.PIPE,
            )
        started.append(worker)
        return worker

    cls = worker_pool._pool_class()
    monkeypatch.setattr(cls, "_start_spare", fake_start_spare)
    pool = cls(use_process=True, state_cache_size=0, data_buffer_time_limit_ms=-1)
    try:
        with caplog.at_level(logging.WARNING, logger="alm_beam.execution.worker_pool"):
            response = pool.StartWorker(_Request("job-1_worker"), None)
        assert response.error == ""
        worker = pool._worker_processes["job-1_worker"]
        assert worker is started[1]
        worker.wait(timeout=60)
        assert b'"worker_id": "job-1_worker"' in received.read_bytes()
        assert [r.getMessage() for r in caplog.records if r.name == "alm_beam.execution.worker_pool"] == [
            f"SDK worker pid {started[0].pid} exited with status -9 before it took a job; "
            "handing the job to another"
        ]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if not proc.stdin.closed:
                proc.stdin.close()


def test_no_worker_left_is_an_error_answer_naming_each_death(monkeypatch):
    def always_dead(self):
        worker = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], stdin=subprocess.PIPE)
        worker.wait()
        return worker

    cls = worker_pool._pool_class()
    monkeypatch.setattr(cls, "_start_spare", always_dead)
    pool = cls(use_process=True, state_cache_size=0, data_buffer_time_limit_ms=-1)
    response = pool.StartWorker(_Request("job-2_worker"), None)
    pool._spare.stdin.close()
    assert "no SDK worker took the job" in response.error
    assert (
        response.error.count("exited with status 3 before it took a job") == worker_pool._HAND_OVER_ATTEMPTS
    )
