"""Child processes that must not outlive their parent: PDEATHSIG (Linux) set by
the child itself or, for a non-Python server, by a ``preexec_fn``, plus an
explicit stop. Used by the runner handling (Prism, job servers) and the worker pool."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

_STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


def _pdeathsig_setter():
    """A function that makes the calling process get SIGKILL when its parent
    dies (Linux ``prctl(PR_SET_PDEATHSIG)``), or ``None`` where that does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _die_with_parent_preexec():
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies,
    or ``None`` where PDEATHSIG does not exist.

    The prctl function is looked up before the fork, so the child runs no import
    and no allocation-heavy Python between fork and exec.
    """
    set_pdeathsig = _pdeathsig_setter()
    if set_pdeathsig is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        set_pdeathsig()
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def die_with_parent(parent: int) -> None:
    """Called by a child process itself, first thing: get SIGKILL when ``parent``
    ends, and exit at once if it already has. The child does this, not a
    ``preexec_fn``: Python code run between fork and exec in a child of a
    process with gRPC threads can crash (SIGSEGV) when another thread held a
    lock at the fork.
    """
    set_pdeathsig = _pdeathsig_setter()
    if set_pdeathsig is not None:
        set_pdeathsig()
    if os.getppid() != parent:  # the parent ended before prctl took effect
        os._exit(1)


class ChildProcess:
    """A server process that must not outlive this one: PDEATHSIG where the kernel
    has it, plus an explicit ``stop`` (SIGTERM, then SIGKILL) when the run ends.

    Start it from the main thread: PDEATHSIG fires when the *thread* that forked
    the child ends, and the main thread lives as long as the process.

    It runs in a session of its own: a terminal's Ctrl-C, sent to the run's
    whole process group, reaches only the run, which stops the server itself
    (``interrupts``). A server that died of the Ctrl-C first made the run's
    data-plane thread log a traceback before the run could say its one line.
    """

    def __init__(self, argv: list, **popen_kwargs):
        self.argv = list(argv)
        popen_kwargs.setdefault("start_new_session", True)
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent_preexec(), **popen_kwargs
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            self.process.terminate()
            self.process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except ProcessLookupError:
            pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
