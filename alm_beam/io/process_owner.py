"""Who owns a lock or a temporary directory, and is that process still running?

A pid alone is not an owner: pids are reused, so a lock left by a killed run
could look alive because an unrelated process got its pid. An owner is the
pid together with the process's start time (``/proc/<pid>/stat`` field 22,
clock ticks since boot), which a reused pid does not share. Without
``/proc`` (macOS) only the pid can be checked, so a reused pid keeps a dead
owner alive: the safe side (nothing of a live run is ever taken).
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import NamedTuple, Optional


def _stat_fields(pid: int) -> Optional[list]:
    """``/proc/<pid>/stat`` fields after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def process_start_ticks(pid: int) -> Optional[int]:
    """The start time of a running process (clock ticks since boot), or None when
    it has exited (a zombie has exited too) or /proc cannot say."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])  # field 22 of the whole line


def has_proc() -> bool:
    return os.path.isdir(f"/proc/{os.getpid()}")


class ProcessOwner(NamedTuple):
    pid: int
    start_ticks: int  # 0 where /proc is missing
    host: str
    started: str  # wall clock, UTC, for people reading an error message

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started}"

    def as_dict(self) -> dict:
        return self._asdict()

    @classmethod
    def from_dict(cls, doc: dict) -> "ProcessOwner":
        return cls(int(doc["pid"]), int(doc["start_ticks"]), str(doc["host"]), str(doc["started"]))


_SELF: Optional[ProcessOwner] = None


def this_process() -> ProcessOwner:
    global _SELF
    if _SELF is None or _SELF.pid != os.getpid():  # a forked child is another owner
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _SELF = ProcessOwner(
            os.getpid(), process_start_ticks(os.getpid()) or 0, socket.gethostname(), started
        )
    return _SELF


def is_alive(pid: int, start_ticks: int) -> bool:
    """Is the process ``pid`` that started at ``start_ticks`` still running (this host)?"""
    if pid <= 0:
        return False
    if has_proc():
        return process_start_ticks(pid) == start_ticks
    return process_is_running(pid)


def process_is_running(pid: int) -> bool:
    """Some process ``pid`` runs (whichever it is)."""
    if pid <= 0:
        return False
    if has_proc():
        return process_start_ticks(pid) is not None
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_alive(owner: ProcessOwner) -> Optional[bool]:
    """True/False on this host; None for another host (nothing can be known from here)."""
    if owner.host != socket.gethostname():
        return None
    return is_alive(owner.pid, owner.start_ticks)
