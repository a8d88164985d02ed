"""DirectRunner multi_processing workers: planned early, claimed once, never leaked."""

import os
import subprocess
import sys
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from alm_beam import direct_workers
from alm_beam.direct_workers import (WarmWorkerPool, make_direct_runner,
                                     planned_worker_processes, worker_command)


@pytest.mark.parametrize("flags, expected", [
    ([], 0),
    (["--direct_num_workers", "2"], 0),                      # in_memory: no processes
    (["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"], 2),
    (["--direct_num_workers=3", "--direct_running_mode=multi_processing"], 3),
    (["--direct_running_mode", "multi_processing"], 1),
    (["--direct_num_workers", "0", "--direct_running_mode", "multi_processing"],
     os.cpu_count()),
    (["--runner", "FlinkRunner", "--direct_num_workers", "2",
      "--direct_running_mode", "multi_processing"], 0),
    (["--runner=DirectRunner", "--direct_num_workers", "2",
      "--direct_running_mode", "multi_processing"], 2),
    (["--direct_num_workers", "two", "--direct_running_mode", "multi_processing"], 0),
    (["--direct_num_workers", "1", "--direct_num_workers", "2",  # the last one wins
      "--direct_running_mode", "multi_processing"], 2),
])
def test_planned_worker_processes(flags, expected):
    assert planned_worker_processes(flags) == expected


def _taken(pool):
    return sorted(name for name in os.listdir(pool.directory) if name.endswith(".taken"))


def _run_two_worker_pipeline(worker_cmd):
    options = PipelineOptions(["--direct_num_workers", "2",
                               "--direct_running_mode", "multi_processing"])
    with beam.Pipeline(runner=make_direct_runner(worker_cmd), options=options) as p:
        squares = (p | beam.Create(list(range(40)), reshuffle=True)
                   | beam.Map(lambda x: (os.getpid(), x * x)))
        assert_that(squares | beam.Map(lambda kv: kv[1]),
                    equal_to([x * x for x in range(40)]))


def test_warm_workers_run_the_pipeline_and_are_reaped():
    pool = WarmWorkerPool(2)
    try:
        _run_two_worker_pipeline(pool.command)
        assert _taken(pool) == ["worker-0.taken", "worker-1.taken"]
    finally:
        procs = list(pool._procs)
        pool.close()
    assert all(proc.returncode is not None for proc in procs)
    assert not os.path.exists(pool.directory)


def test_more_workers_than_warm_ones_fall_back_to_starting_them():
    pool = WarmWorkerPool(1)
    try:
        _run_two_worker_pipeline(pool.command)
        assert _taken(pool) == ["worker-0.taken"]  # the second one started on demand
    finally:
        pool.close()


def test_plain_worker_command_runs_without_a_pool():
    _run_two_worker_pipeline(worker_command())


def test_unclaimed_warm_workers_stop_at_once():
    pool = WarmWorkerPool(2)
    procs = list(pool._procs)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert all(proc.returncode is not None for proc in procs)
    assert not os.path.exists(pool.directory)


def test_warm_worker_exits_when_its_runner_goes_away(tmp_path):
    sock = tmp_path / "w.sock"
    proc = subprocess.Popen([sys.executable, "-m", direct_workers.WORKER_MODULE, "--warm",
                             str(sock)], stdin=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not sock.exists() and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    assert sock.exists(), "warm worker never listened"
    proc.stdin.close()  # what the runner's exit does to the pipe
    assert proc.wait(timeout=30) == 0


def test_attach_without_free_worker_runs_the_harness_itself(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(direct_workers, "run_worker", lambda: calls.append("own harness"))
    direct_workers.attach(str(tmp_path))          # empty pool directory
    direct_workers.attach(str(tmp_path / "gone"))  # no pool directory at all
    assert calls == ["own harness", "own harness"]


def test_claim_is_exclusive(tmp_path):
    (tmp_path / "worker-0.free").write_text(str(os.getpid()))
    first = direct_workers._claim(str(tmp_path))
    second = direct_workers._claim(str(tmp_path))
    assert first == (str(tmp_path / "worker-0.sock"), os.getpid())
    assert second is None
