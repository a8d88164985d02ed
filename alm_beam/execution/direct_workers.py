"""SDK worker processes for DirectRunner ``multi_processing`` runs: started early, quiet.

Beam's FnApiRunner starts each SDK worker (``python -m
apache_beam.runners.worker.sdk_worker_main``) only when the first stage runs,
so a run waits about a second for the workers to import Beam after it has
imported Beam itself; at the end it waits for each worker's interpreter
teardown in turn, and every worker prints its INFO start-up log to stderr.
For a job of a few seconds per worker that is a large share of the wall time.

Here the runner process starts the workers (``WarmWorkerPool``) first thing,
before it plans the input and builds the graph: on Linux by forking once Beam
is imported (the workers start with it imported; the heap is frozen first,
``gc.freeze()``, so that neither side's garbage collector copies the pages they
share), elsewhere as new interpreters importing it alongside. The command the
FnApiRunner runs for a worker (``attach_client``, standard library only) hands
its environment (control and logging endpoints, pipeline options) to one of
the waiting workers over a Unix socket and exits with that worker's exit
status; with no waiting worker it becomes the worker itself, so the pool is
only ever an optimisation. A
worker logs warnings and errors only, and ends with ``os._exit`` once the
harness has returned (its output is flushed; there is nothing else to tear
down).

``AlmDirectRunner`` is the FnApiRunner with that worker command in place of
Beam's; in every other respect it is Beam's runner.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Optional, Sequence

from alm_beam.execution import attach_client
from alm_beam.execution.attach_client import FREE_NAME, SOCKET_NAME
from alm_beam.execution.interrupts import STOP_SIGNALS, ignore_in_worker
from alm_beam.execution.lean_import import unused_modules_hidden_from_beam
from alm_beam.io.beam_noise import not_noise

WORKER_MODULE = "alm_beam.execution.direct_workers"
BEAM_WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"
_POLL_S = 0.005
_MAX_SOCKET_PATH = 100  # bytes; sockaddr_un holds 108 on Linux, 104 on macOS


def quiet_worker_logging() -> None:
    """Warnings and errors to stderr, without Beam's known start-up noise.

    Installed before Beam is imported: Beam's import logs through the root
    logger, which would otherwise install a handler that prints every INFO
    line once the harness raises the root level to INFO.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(not_noise)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing left to write there
            pass


def flush_and_exit(code: int) -> None:
    """Exit without interpreter teardown (~0.3 s for Beam's module graph): for a
    process whose output is all written (a worker, or the CLI once the run is
    reported)."""
    logging.shutdown()
    _flush_std_streams()
    os._exit(code)


def _run_harness() -> int:
    """Run Beam's SDK harness with the environment in ``os.environ``."""
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    return 0


def run_worker() -> None:
    """A worker started on demand (no warm worker was free)."""
    quiet_worker_logging()
    with unused_modules_hidden_from_beam():  # as in the runner process, and its forked workers
        code = _run_harness()
    flush_and_exit(code)


# --------------------------------------------------------------------------
# Warm workers (started by the runner process) and the attach client.


def serve_warm(sock_path: str) -> None:
    """``--warm``: import Beam, then serve one job (see ``_serve``); stdin is the
    runner's end of the line."""
    quiet_worker_logging()
    with unused_modules_hidden_from_beam():
        _import_worker_modules()
    _serve(sock_path, sys.stdin.fileno())


def _import_worker_modules() -> None:
    """What a worker needs before its first bundle: the slow part of its start."""
    import grpc._channel  # noqa: F401 - imported by the harness's first channel (~15 ms)
    import grpc._interceptor  # noqa: F401
    from apache_beam.runners.worker import sdk_worker_main  # noqa: F401

    import alm_beam.beam.transforms  # noqa: F401 - what the pipeline's DoFns unpickle into


def _serve(sock_path: str, runner_fd: int) -> None:
    """Listen on ``sock_path`` and run one SDK harness for the first client.

    Exits at once if ``runner_fd`` reaches end of file first: the runner
    process is done (or gone) without needing this worker.
    """
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    while True:
        ready, _, _ = select.select([server, runner_fd], [], [])
        if runner_fd in ready and not os.read(runner_fd, 1 << 10):
            flush_and_exit(0)
        if server in ready:
            break
    conn, _ = server.accept()
    server.close()
    with conn:
        environ = attach_client.receive_environ(conn)
        os.environ.clear()
        os.environ.update(environ)
        code = 1
        try:
            code = _run_harness()
        finally:
            try:
                conn.sendall(b"%d\n" % code)
            except OSError:
                pass
    flush_and_exit(code)


def _forked_worker(sock_path: str, runner_fd: int, runner_side_fds: Sequence[int]) -> None:
    """The child side of ``os.fork``: never returns into the runner's code."""
    try:
        ignore_in_worker()  # signals are blocked until here (see WarmWorkerPool._fork)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for fd in runner_side_fds:  # or this worker would never see end of file
            os.close(fd)
        os.dup2(2, 1)  # stdout carries the runner's report; a worker writes to stderr
        logging.getLogger().handlers.clear()  # the runner's handlers
        quiet_worker_logging()
        _serve(sock_path, runner_fd)
    except BaseException:  # noqa: BLE001 - report, then leave without the runner's cleanup
        import traceback

        traceback.print_exc()
    finally:
        os._exit(1)


def _stderr_fd() -> Optional[int]:
    """Where a worker's stdout goes: our stderr (stdout carries the run report)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


FORK_WORKERS = sys.platform.startswith("linux") and hasattr(os, "fork")
# Native threads that survive a fork harmlessly (they register fork handlers).
_FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def fork_is_safe() -> bool:
    """No Python thread but this one, and no native thread except the
    interpreter's own kind and allocator helpers. Once gRPC has run in this
    process (an in-process pipeline with SDK workers, say) its threads exist
    and a forked child could deadlock in gRPC: then workers are spawned."""
    if threading.active_count() != 1:
        return False
    try:
        with open("/proc/self/comm", encoding="utf-8") as fh:
            own = fh.read().strip()
        names = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as fh:
                names.append(fh.read().strip())
    except OSError:
        return False
    return all(name == own or name in _FORK_SAFE_THREADS for name in names)


class WarmWorkerPool:
    """``count`` SDK worker processes started now, each waiting for one job.

    On Linux the runner process imports the worker's modules and forks the
    workers: they start with Beam already imported, at no CPU cost. No gRPC
    channel, server or Python thread exists yet at that point (the runner
    starts them later), so the children start clean. Elsewhere each worker is
    a new interpreter (``--warm``) that imports Beam itself.
    """

    def __init__(self, count: int, python: str = sys.executable, fork: bool = FORK_WORKERS):
        if fork and count:
            _import_worker_modules()  # before the check: imports may start helper threads
            fork = fork_is_safe()
        self.forked = fork
        self._froze = False
        self.directory = tempfile.mkdtemp(prefix="alm_beam_workers_")
        self.command = worker_command(python, self.directory)
        self.pids: list = []
        self._runner_fds: list = []  # our ends of the workers' lifelines
        self._popens: dict = {}
        if len(os.fsencode(os.path.join(self.directory, SOCKET_NAME.format(count)))) > _MAX_SOCKET_PATH:
            count = 0  # a Unix socket path this long cannot be bound; workers start on demand
        if fork and count:
            # The collector of a forked process writes into every object it
            # visits, so each page both processes share gets copied: the runner
            # paid ~11,000 page faults (0.15 s) building the graph right after
            # the fork. Frozen objects are never visited, in the runner or the
            # workers; ``close`` thaws them.
            gc.freeze()
            self._froze = True
        try:
            for index in range(count):
                sock_path = os.path.join(self.directory, SOCKET_NAME.format(index))
                read_fd, write_fd = os.pipe()
                self._runner_fds.append(write_fd)
                if fork:
                    pid = self._fork(sock_path, read_fd)
                else:
                    proc = subprocess.Popen(
                        [python, "-m", WORKER_MODULE, "--warm", sock_path], stdin=read_fd, stdout=_stderr_fd()
                    )
                    pid = proc.pid
                    self._popens[pid] = proc
                os.close(read_fd)
                self.pids.append(pid)
                with open(os.path.join(self.directory, FREE_NAME.format(index)), "w") as fh:
                    fh.write(str(pid))
        except BaseException:
            self.close()
            raise

    def _fork(self, sock_path: str, read_fd: int) -> int:
        _flush_std_streams()  # or the child would write the buffered output again
        with warnings.catch_warnings():
            # Python 3.12+ warns when forking with native threads running; the
            # only ones here are allocator/BLAS helpers with fork handlers.
            warnings.simplefilter("ignore", DeprecationWarning)
            # A Ctrl-C right after the fork must not reach the child while it
            # still has the runner's handler: blocked until it ignores them.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            pid = -1
            try:
                pid = os.fork()
            finally:
                if pid != 0:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if pid == 0:
            _forked_worker(sock_path, read_fd, self._runner_fds)
        return pid

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers no job claimed, and reap all of them.

        A claimed worker has normally exited already: its client (the
        FnApiRunner's worker process) waited for its exit status.
        """
        for index, pid in enumerate(self.pids):
            if os.path.exists(os.path.join(self.directory, FREE_NAME.format(index))):
                _kill(pid)
        for fd in self._runner_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._runner_fds = []
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            if not _reap(pid, self._popens.get(pid), deadline):
                _kill(pid)
                _reap(pid, self._popens.get(pid), None)
        self.pids = []
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._froze:
            self._froze = False
            gc.unfreeze()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int, popen, deadline: Optional[float]) -> bool:
    """Wait for our child ``pid`` until ``deadline`` (None: for ever); True once reaped."""
    if popen is not None:
        try:
            popen.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False
    while True:
        try:
            done, _ = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def worker_command(python: str = sys.executable, pool_dir: Optional[str] = None) -> str:
    """The shell command the FnApiRunner runs to start one SDK worker (``exec``:
    no shell process left in between)."""
    # A worker ignores SIGINT/SIGTERM from its first instruction (an ignored
    # signal stays ignored across exec); its runner stops it (see interrupts).
    if pool_dir is None:
        return f"trap '' INT TERM; exec {shlex.quote(python)} -m {WORKER_MODULE}"
    client = os.path.abspath(attach_client.__file__)
    if os.path.isfile(client):  # stdlib only: no site-packages, no package import
        run_client = f"-I -S {shlex.quote(client)}"
    else:
        run_client = f"-m {attach_client.__name__}"
    return f"trap '' INT TERM; exec {shlex.quote(python)} {run_client} {shlex.quote(pool_dir)}"


# --------------------------------------------------------------------------
# Runner side.

DIRECT_RUNNER_NAMES = (None, "DirectRunner", "direct", "FnApiRunner")


def _flag_values(args: Sequence[str], name: str) -> list:
    """Every value given as ``--name value`` or ``--name=value``, in order."""
    values = []
    args = list(args)
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(f"--{name}="):
            values.append(arg.split("=", 1)[1])
    return values


def runs_on_direct_runner(args: Sequence[str]) -> bool:
    """Whether these Beam flags (read before Beam is imported) choose the DirectRunner."""
    return (_flag_values(args, "runner") or [None])[-1] in DIRECT_RUNNER_NAMES


def planned_worker_processes(args: Sequence[str]) -> int:
    """SDK worker processes a run with these Beam flags starts on the FnApiRunner.

    0 unless the runner is the direct one in ``multi_processing`` mode. Read
    before Beam is imported (so the pool can start early); a malformed value
    gives 0 here and Beam's own error later.
    """
    last = {
        name: (_flag_values(args, name) or [default])[-1]
        for name, default in (
            ("runner", None),
            ("direct_running_mode", "in_memory"),
            ("direct_num_workers", "1"),
        )
    }
    if last["runner"] not in DIRECT_RUNNER_NAMES or last["direct_running_mode"] != "multi_processing":
        return 0
    try:
        workers = int(last["direct_num_workers"])
    except ValueError:
        return 0
    return workers if workers > 0 else (os.cpu_count() or 1) if workers == 0 else 0


@contextlib.contextmanager
def options_for_subprocess_workers(options):
    """Hand the run's pipeline options to its SDK worker processes.

    Beam's FnApiRunner gives its subprocess workers no pipeline options
    (``PIPELINE_OPTIONS`` is an empty message), so in a worker ``FileSystems``
    knows no ``--s3_*`` endpoint or credentials, and every object-store access
    there fails and is retried with back-off. Beam's SDK worker also reads
    ``PIPELINE_OPTIONS_FILE``, which wins: the options go into a file of the
    run's temporary root (mode 0600, it may hold credentials), named in the
    environment the workers inherit, both removed when the run ends.
    """
    directory = tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="pipeline-options-", suffix=".json", dir=directory)
    previous = os.environ.get("PIPELINE_OPTIONS_FILE")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {"options": options.get_all_options(drop_default=True, retain_unknown_options=True)}, fh
            )
        os.environ["PIPELINE_OPTIONS_FILE"] = path
        yield path
    finally:
        if previous is None:
            os.environ.pop("PIPELINE_OPTIONS_FILE", None)
        else:
            os.environ["PIPELINE_OPTIONS_FILE"] = previous
        try:
            os.remove(path)
        except OSError:
            pass


def make_direct_runner(worker_cmd: str):
    """Beam's FnApiRunner, running ``worker_cmd`` for multi_processing workers."""
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    class AlmDirectRunner(FnApiRunner):
        """FnApiRunner whose subprocess SDK workers are alm_beam's (see module doc)."""

        def run_via_runner_api(self, pipeline_proto, options):
            subprocess_workers = False
            for env in pipeline_proto.components.environments.values():
                if env.urn == python_urns.SUBPROCESS_SDK and BEAM_WORKER_MODULE in env.payload.decode(
                    "utf-8", "replace"
                ):
                    env.payload = worker_cmd.encode("utf-8")
                    subprocess_workers = True
            if not subprocess_workers:
                return super().run_via_runner_api(pipeline_proto, options)
            with options_for_subprocess_workers(options):
                return super().run_via_runner_api(pipeline_proto, options)

    return AlmDirectRunner()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {WORKER_MODULE}", description="alm_beam SDK worker (started by the runner)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--warm", metavar="SOCKET", help="start now, wait for a job on SOCKET")
    group.add_argument("--attach", metavar="DIR", help="hand this job to a warm worker in DIR")
    args = parser.parse_args(argv)
    ignore_in_worker()
    if args.warm:
        serve_warm(args.warm)
    elif args.attach:
        attach_client.main([args.attach])
    else:
        run_worker()


if __name__ == "__main__":
    main()
