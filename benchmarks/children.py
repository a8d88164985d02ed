"""Measuring a child process: wall, CPU and memory of its whole process tree,
and the CPU the rest of the machine used meanwhile."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import threading
import time
from typing import NamedTuple, Optional, Sequence

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class TreeSampler(threading.Thread):
    """Polls /proc for the RSS of a process and all its descendants.

    ``os.wait4`` reports the largest single process of the tree (ru_maxrss);
    in multi_processing mode the SDK workers are grandchildren running at the
    same time as the runner, so the tree's summed RSS is sampled here too
    (it counts shared pages once per process), with the summed PSS (shared
    pages split between the processes that map them) read whenever the RSS
    sum reaches a new peak.
    """

    def __init__(self, root: int, interval: float):
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_rss = 0
        self.pss_at_peak = 0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()

    def _tree(self) -> list:
        children: dict = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
        tree, stack = [], [self.root]
        while stack:
            pid = stack.pop()
            tree.append(pid)
            stack.extend(children.get(pid, ()))
        return tree

    def sample(self):
        try:
            tree = self._tree()
        except OSError:
            return
        rss = 0
        alive = []
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm", "rb") as fh:
                    rss += int(fh.read().split()[1]) * PAGE
                alive.append(pid)
            except (OSError, IndexError, ValueError):
                continue
        self.max_procs = max(self.max_procs, len(alive))
        if rss > self.peak_rss:
            self.peak_rss = rss
            self.pss_at_peak = sum(_pss(pid) for pid in alive)


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class ChildRun(NamedTuple):
    wall: float  # whole child process, start-up included
    cpu: float  # user + sys of the child and every descendant it reaped
    maxrss: int  # bytes; largest single process of the tree (wait4)
    tree_rss: int  # bytes; sampled peak of the tree's summed RSS
    tree_pss: int  # bytes; the tree's summed PSS at that peak
    procs: int  # most processes seen in the tree at once
    other_cpu: float  # CPU seconds the rest of the machine used meanwhile
    stdout: bytes
    started: float  # time.time() at the start (output files' mtimes are compared with it)


def machine_busy_seconds() -> Optional[float]:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = sum(int(fields[k]) for k in (1, 2, 3, 6, 7, 8))
    return busy / os.sysconf("SC_CLK_TCK")


def other_cpu(busy0: Optional[float], busy1: Optional[float], ours: float) -> float:
    """CPU seconds the rest of the machine used between two /proc/stat readings."""
    if busy0 is None or busy1 is None:
        return math.nan
    return max(0.0, (busy1 - busy0) - ours)


def _child_failed(name: str, cmd: Sequence[str], code: int, err_path: str) -> RuntimeError:
    with open(err_path, "rb") as fh:
        tail = fh.read()[-3000:].decode("utf-8", "replace")
    return RuntimeError(f"{name} failed with exit status {code}:\n  {shlex.join(cmd)}\n{tail}")


def run_child(cmd: Sequence[str], log_dir: str, name: str, poll: float) -> ChildRun:
    out_path = os.path.join(log_dir, f"{name}.stdout")
    err_path = os.path.join(log_dir, f"{name}.stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy0, own0 = machine_busy_seconds(), time.process_time()
        started = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid, poll)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        busy1, own1 = machine_busy_seconds(), time.process_time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as fh:
        stdout = fh.read()
    if proc.returncode != 0:
        raise _child_failed(name, cmd, proc.returncode, err_path)
    cpu = usage.ru_utime + usage.ru_stime
    other = other_cpu(busy0, busy1, cpu + own1 - own0)
    return ChildRun(
        wall,
        cpu,
        usage.ru_maxrss * 1024,
        sampler.peak_rss,
        sampler.pss_at_peak,
        sampler.max_procs,
        other,
        stdout,
        started,
    )


def run_children_together(cmds: Sequence[Sequence[str]], log_dir: str, name: str) -> tuple:
    """Start every command at once, wait for all of them.

    Returns (each child's JSON line from stdout, each child's ru_maxrss in
    bytes, the CPU seconds the rest of the machine used meanwhile, the time
    until the last one ended).
    """
    busy0, own0 = machine_busy_seconds(), time.process_time()
    start = time.perf_counter()
    running = []
    for i, cmd in enumerate(cmds):
        out_path = os.path.join(log_dir, f"{name}_{i}.stdout")
        err_path = os.path.join(log_dir, f"{name}_{i}.stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            running.append((subprocess.Popen(list(cmd), stdout=out, stderr=err), cmd, out_path, err_path))
    docs, maxrss, cpu = [], [], 0.0
    for proc, cmd, out_path, err_path in running:
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise _child_failed(name, cmd, code, err_path)
        with open(out_path, "rb") as fh:
            docs.append(json.loads(fh.read()))
        maxrss.append(usage.ru_maxrss * 1024)
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - start
    busy1, own1 = machine_busy_seconds(), time.process_time()
    return docs, maxrss, other_cpu(busy0, busy1, cpu + own1 - own0), wall


class MachineWatch:
    """The CPU the rest of the machine used from its creation to ``stop()``:
    /proc/stat's busy time of all CPUs minus this process's and every child's
    it has waited for (os.times), so near 0 on a quiet machine."""

    def __init__(self):
        self.busy0, self.own0 = machine_busy_seconds(), _own_cpu()
        self.start = time.perf_counter()

    def stop(self) -> tuple:
        """``(wall seconds, other processes' CPU seconds)`` since the start."""
        wall = time.perf_counter() - self.start
        return wall, other_cpu(self.busy0, machine_busy_seconds(), _own_cpu() - self.own0)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def median_run(runs: Sequence, seconds) -> object:
    """The median of ``runs`` by ``seconds(run)``: the middle one, or for an even
    count the faster of the two middle ones (a run that happened, not an average)."""
    ordered = sorted(runs, key=seconds)
    return ordered[(len(ordered) - 1) // 2]
