"""Ctrl-C and SIGTERM for the command-line process: one line, exit 128 + signal.

Python's default Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread
happens to be; inside a Beam bundle that becomes ``RuntimeError:
KeyboardInterrupt`` and a long traceback, and with ``multi_processing``
workers each worker prints its own. SIGTERM by default ends the process with
no word at all and can leave its worker processes running.

``install()`` (called first thing by ``python -m alm_beam.run`` and the
``alm-beam`` console script, and by ``run.main()`` for its duration) replaces both
with ``_stop``: silence this process's output, stop every process this one
started (SDK workers, a job server: found through /proc, so Beam's own
subprocesses are stopped too), run the registered clean-ups, write one line
and leave with ``os._exit`` (no interpreter teardown that could block on a
runner's threads). Worker processes ignore both signals (``ignore_in_worker``):
a Ctrl-C reaches the whole foreground process group, and a worker that died
first would make the runner report a lost worker before it could stop.

Imports nothing slow: it is installed before Beam is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What the output directory holds after a stopped run (see README, Failure behaviour).
STOPPED_TAIL = "an output directory without summary.json holds an incomplete run (rerun with --overwrite)"

_owner_pid = None
_cleanups: list = []


def stop_line(signum: int) -> str:
    """The one line a stopped run prints."""
    return f"alm_beam: interrupted by {signal.Signals(signum).name}; {STOPPED_TAIL}"


def install() -> None:
    """Handle SIGINT and SIGTERM in this process as described above."""
    global _owner_pid
    _owner_pid = os.getpid()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """``install()`` for the duration of a ``with`` block, then the caller's own
    handlers again: ``run.main()`` called from Python stops like the command
    while it runs, and leaves the calling program's handlers as it found them.
    Outside the main thread (where Python allows no handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(signum, handler)


def ignore_in_worker() -> None:
    """A worker process is stopped by its runner, never by a signal meant for the run."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def on_stop(callback: Callable[[], None]) -> None:
    """Run ``callback`` (no arguments) when a signal stops the run."""
    _cleanups.append(callback)


def forget(callback: Callable[[], None]) -> None:
    if callback in _cleanups:
        _cleanups.remove(callback)


def _stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    if os.getpid() != _owner_pid:  # a forked child before it set its own dispositions
        os._exit(128 + signum)
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)  # a second Ctrl-C does not interrupt the stop
    logging.disable(logging.CRITICAL)
    report = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # no half-written report, no thread's last words after our line
    os.dup2(quiet, 2)
    try:
        stop_descendants()
        for callback in reversed(_cleanups):
            try:
                callback()
            except BaseException:  # noqa: BLE001 - best effort; the line and exit code matter
                pass
    finally:
        os.write(report, (stop_line(signum) + "\n").encode())
        os._exit(128 + signum)


# --------------------------------------------------------------------------
# The process tree below this one (Linux /proc; elsewhere nothing is found and
# the clean-ups stop the known workers).


def _process_table() -> dict:
    """pid -> (parent pid, state letter) for every process, from /proc."""
    table = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return table
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        table[pid] = (int(fields[1]), fields[0][:1])
    return table


def descendants(root: int) -> list:
    """Live (not zombie) processes below ``root``."""
    table = _process_table()
    children: dict = {}
    for pid, (ppid, state) in table.items():
        if state not in (b"Z", b"X"):
            children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids, signum) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_descendants(rounds: int = 200) -> None:
    """SIGKILL every process below this one. Each is first stopped (SIGSTOP)
    until the set no longer grows, so none can start a process that would
    escape (a child of a killed parent is re-parented away from this tree)."""
    me = os.getpid()
    stopped: set = set()
    for _ in range(rounds):
        found = set(descendants(me)) - stopped
        if not found:
            break
        _signal_all(found, signal.SIGSTOP)
        stopped |= found
    _signal_all(stopped, signal.SIGKILL)
    for _ in range(rounds):
        _reap_children()
        if not descendants(me):
            return
        time.sleep(0.005)
