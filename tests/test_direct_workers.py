"""DirectRunner multi_processing workers: planned early, claimed once, never leaked."""

import os
import shlex
import subprocess
import sys
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to

from alm_beam.execution import attach_client, direct_workers
from alm_beam.execution.direct_workers import (
    WarmWorkerPool,
    make_direct_runner,
    planned_worker_processes,
    worker_command,
)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], 0),
        (["--direct_num_workers", "2"], 0),  # in_memory: no processes
        (["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"], 2),
        (["--direct_num_workers=3", "--direct_running_mode=multi_processing"], 3),
        (["--direct_running_mode", "multi_processing"], 1),
        (["--direct_num_workers", "0", "--direct_running_mode", "multi_processing"], os.cpu_count()),
        (
            [
                "--runner",
                "FlinkRunner",
                "--direct_num_workers",
                "2",
                "--direct_running_mode",
                "multi_processing",
            ],
            0,
        ),
        (
            [
                "--runner=DirectRunner",
                "--direct_num_workers",
                "2",
                "--direct_running_mode",
                "multi_processing",
            ],
            2,
        ),
        (["--direct_num_workers", "two", "--direct_running_mode", "multi_processing"], 0),
        (
            [
                "--direct_num_workers",
                "1",
                "--direct_num_workers",
                "2",  # the last one wins
                "--direct_running_mode",
                "multi_processing",
            ],
            2,
        ),
    ],
)
def test_planned_worker_processes(flags, expected):
    assert planned_worker_processes(flags) == expected


def _taken(pool):
    return sorted(name for name in os.listdir(pool.directory) if name.endswith(".taken"))


def _run_two_worker_pipeline(worker_cmd):
    options = PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"])
    with beam.Pipeline(runner=make_direct_runner(worker_cmd), options=options) as p:
        squares = p | beam.Create(list(range(40)), reshuffle=True) | beam.Map(lambda x: (os.getpid(), x * x))
        assert_that(squares | beam.Map(lambda kv: kv[1]), equal_to([x * x for x in range(40)]))


def _gone(pids):
    """Every pid exited and was reaped (by the pool, not by this test)."""
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return True


@pytest.mark.e2e
def test_warm_workers_run_the_pipeline_and_are_reaped(fork=False):
    pool = WarmWorkerPool(2, fork=fork)
    assert pool.forked == fork
    pids = list(pool.pids)
    try:
        _run_two_worker_pipeline(pool.command)
        assert _taken(pool) == ["worker-0.taken", "worker-1.taken"]
    finally:
        pool.close()
    assert len(pids) == 2 and _gone(pids)
    assert not os.path.exists(pool.directory)


@pytest.mark.e2e
@pytest.mark.skipif(not direct_workers.FORK_WORKERS, reason="workers are forked on Linux only")
def test_forked_warm_workers_in_a_fresh_process():
    # As `python -m alm_beam.run` does: fork before any gRPC exists in the process
    # (this pytest process has run pipelines with SDK workers by now).
    script = (
        "import test_direct_workers as t\n"
        "t.test_unclaimed_warm_workers_stop_at_once(fork=True)\n"
        "t.test_warm_workers_run_the_pipeline_and_are_reaped(fork=True)\n"
        "print('forked ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=os.path.dirname(__file__),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "forked ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.skipif(not direct_workers.FORK_WORKERS, reason="workers are forked on Linux only")
def test_forking_freezes_the_runners_heap_until_the_pool_closes():
    """After the fork the runner's collector would write into every object it
    shares with the workers (a copied page each: ~11,000 page faults while the
    graph was built); frozen objects are never visited."""
    script = (
        "import gc\n"
        "from alm_beam.execution.direct_workers import WarmWorkerPool\n"
        "pool = WarmWorkerPool(1, fork=True)\n"
        "during = (pool.forked, gc.get_freeze_count())\n"
        "pool.close()\n"
        "print(during[0], during[1] > 10000, gc.get_freeze_count())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "True", "0"]


@pytest.mark.e2e
def test_no_fork_once_grpc_threads_exist():
    _run_two_worker_pipeline(worker_command())  # leaves gRPC threads in this process
    assert not direct_workers.fork_is_safe()
    pool = WarmWorkerPool(1, fork=True)
    try:
        assert not pool.forked and len(pool.pids) == 1
    finally:
        pool.close()


@pytest.mark.e2e
def test_more_workers_than_warm_ones_fall_back_to_starting_them():
    pool = WarmWorkerPool(1)
    try:
        _run_two_worker_pipeline(pool.command)
        assert _taken(pool) == ["worker-0.taken"]  # the second one started on demand
    finally:
        pool.close()


@pytest.mark.e2e
def test_plain_worker_command_runs_without_a_pool():
    _run_two_worker_pipeline(worker_command())


@pytest.mark.e2e
def test_unclaimed_warm_workers_stop_at_once(fork=False):
    pool = WarmWorkerPool(2, fork=fork)
    assert pool.forked == fork
    pids = list(pool.pids)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert len(pids) == 2 and _gone(pids)
    assert not os.path.exists(pool.directory)


@pytest.mark.e2e
def test_warm_worker_exits_when_its_runner_goes_away(tmp_path):
    sock = tmp_path / "w.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", direct_workers.WORKER_MODULE, "--warm", str(sock)], stdin=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not sock.exists() and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    assert sock.exists(), "warm worker never listened"
    proc.stdin.close()  # what the runner's exit does to the pipe
    assert proc.wait(timeout=30) == 0


def test_attach_without_free_worker_becomes_the_worker(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(attach_client.os, "execv", lambda path, argv: calls.append(argv[1:]))
    attach_client.main([str(tmp_path)])  # empty pool directory
    attach_client.main([str(tmp_path / "gone")])  # no pool directory at all
    assert calls == [["-m", direct_workers.WORKER_MODULE]] * 2


def test_claim_is_exclusive(tmp_path):
    (tmp_path / "worker-0.free").write_text(str(os.getpid()))
    first = attach_client.claim(str(tmp_path))
    second = attach_client.claim(str(tmp_path))
    assert first == (str(tmp_path / "worker-0.sock"), os.getpid())
    assert second is None


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {b"A": b""},
        {b"PATH": b"/bin:/usr/bin", b"X": b"a=b=c", b"NL": b"line\nline", b"U": "\u00e9".encode()},
    ],
)
def test_environment_survives_the_hand_over_exactly(environ):
    decoded = attach_client.decode_environ(attach_client.encode_environ(environ))
    assert decoded == {os.fsdecode(k): os.fsdecode(v) for k, v in environ.items()}


def test_the_attach_command_imports_neither_site_packages_nor_alm_beam(tmp_path):
    """The client runs before every worker's first stage: it must stay stdlib only."""
    command = direct_workers.worker_command(sys.executable, str(tmp_path))
    assert " -I -S " in command and command.endswith(shlex.quote(str(tmp_path)))
    client = os.path.abspath(attach_client.__file__)
    probe = (
        "import runpy, sys; sys.argv = ['c', sys.argv[1]]; "
        "import os; os.execv = lambda *a: None; "
        f"runpy.run_path({client!r}, run_name='not_main'); "
        "print(sorted(m for m in sys.modules if m.startswith(('alm_beam', 'apache_beam', 'grpc'))))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
def test_a_dead_warm_worker_is_noticed_and_its_job_runs_elsewhere(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not reaped: a zombie, as a crashed warm worker would be
    assert not attach_client.pid_alive(dead.pid)
    assert attach_client.connect(str(tmp_path / "never.sock"), dead.pid) is None
    dead.wait()
    assert attach_client.pid_alive(os.getpid())


def test_too_long_a_socket_path_means_no_warm_workers(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(direct_workers.tempfile, "tempdir", str(deep))
    pool = WarmWorkerPool(2)
    try:
        assert pool.pids == [] and os.listdir(pool.directory) == []
    finally:
        pool.close()


# --------------------------------------------------------------------------
# Why two workers are balanced by claiming pieces (planning.SharedRanges) and not
# with a checkpointing DoFn (docs/performance.md): Beam's FnApiRunner loses the
# residuals a DoFn hands back when it runs several workers. If this starts
# failing, Beam has fixed it and a checkpointing read could balance them.


class _OffsetsOf(beam.transforms.core.RestrictionProvider):
    def initial_restriction(self, n):
        return beam.io.restriction_trackers.OffsetRange(0, n)

    def create_tracker(self, restriction):
        return beam.io.restriction_trackers.OffsetRestrictionTracker(restriction)

    def restriction_size(self, n, restriction):
        return restriction.size()


class _OnePerCallThenDefer(beam.DoFn):
    """Emits one element per claimed offset, then hands the rest back to the runner."""

    def process(self, n, tracker=beam.DoFn.RestrictionParam(_OffsetsOf())):
        position = tracker.current_restriction().start
        if tracker.try_claim(position):
            yield position
            if position + 1 < tracker.current_restriction().stop:
                tracker.defer_remainder()


def _count_after_checkpoints(flags, check):
    sizes = [5, 7, 3, 4]
    with beam.Pipeline(runner=make_direct_runner(worker_command()), options=PipelineOptions(flags)) as p:
        count = (
            p
            | beam.Create(sizes, reshuffle=True)
            | beam.ParDo(_OnePerCallThenDefer())
            | beam.combiners.Count.Globally()
        )
        assert_that(count, check)
    return sum(sizes)


def _fewer_than(total):
    def check(actual):
        if not (len(actual) == 1 and actual[0] < total):
            raise BeamAssertException(f"expected fewer than {total} outputs, got {actual}")

    return check


@pytest.mark.e2e
def test_fnapi_runner_keeps_checkpoint_residuals_with_one_worker():
    _count_after_checkpoints([], equal_to([19]))


def count_with_two_workers():
    _count_after_checkpoints(
        ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"], _fewer_than(19)
    )


@pytest.mark.e2e
def test_fnapi_runner_drops_checkpoint_residuals_with_two_workers():
    # In a fresh process started in tests/, so that the SDK workers (started
    # from there) can import this module's DoFn.
    script = "import test_direct_workers as t\nt.count_with_two_workers()\nprint('residuals dropped')\n"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=os.path.dirname(__file__),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "residuals dropped" in proc.stdout, proc.stderr[-3000:]


def test_subprocess_workers_get_the_runs_options_in_a_private_file(tmp_path, monkeypatch):
    """What Beam's SDK worker reads (PIPELINE_OPTIONS_FILE) holds the run's options,
    credentials included, readable by the owner only; both go when the run ends."""
    import stat
    import tempfile

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.worker.sdk_worker_main import _load_pipeline_options

    from alm_beam.execution.direct_workers import options_for_subprocess_workers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("PIPELINE_OPTIONS_FILE", raising=False)
    options = PipelineOptions(
        [
            "--s3_endpoint_url=http://127.0.0.1:9",
            "--s3_access_key_id=k",
            "--s3_secret_access_key=s",
            "--direct_num_workers",
            "2",
        ]
    )
    with options_for_subprocess_workers(options) as path:
        assert os.environ["PIPELINE_OPTIONS_FILE"] == path
        assert os.path.dirname(path) == str(tmp_path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding="utf-8") as fh:
            seen = _load_pipeline_options(fh.read())
        assert seen == {
            "s3_endpoint_url": "http://127.0.0.1:9",
            "s3_access_key_id": "k",
            "s3_secret_access_key": "s",
            "direct_num_workers": 2,
        }
    assert "PIPELINE_OPTIONS_FILE" not in os.environ
    assert os.listdir(tmp_path) == []
