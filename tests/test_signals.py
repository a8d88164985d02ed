"""Ctrl-C and SIGTERM on a real run: one line, exit 130 / 143, no process left.

Real signals to real runs, at several moments of a run (start-up,
mid-curation, while the report is printed at the end), on the default
single-worker run, on two ``multi_processing`` workers and on Prism, through
every entry point (``python -m alm_beam.run``, the ``alm-beam`` console script,
``main()`` called from Python: run_control.ENTRY_POINTS). Ctrl-C is sent to
the whole process group (what a terminal does); SIGTERM to the run's own pid
(what ``kill PID`` and supervisors do).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import FIXTURES, REPO, processes_mentioning, require_or_skip
from run_control import ENTRY_POINTS, entry_command
from test_output_integrity import _sinks_writing

from alm_beam.execution.runners import prism_binary_path

pytestmark = pytest.mark.e2e

SAMPLE = str(FIXTURES / "sample_input.jsonl")
TWO_WORKERS = [
    "--direct_num_workers",
    "2",
    "--direct_running_mode",
    "multi_processing",
    "--set",
    "input.split_mb=8",
]
TAIL = "an output directory without summary.json holds an incomplete run (rerun with --overwrite)"
PRISM = prism_binary_path()
PRISM_STARTED = re.compile(r"alm_beam: PrismRunner: Prism \S+ \(pid \d+\) serving jobs at localhost:\d+")
LINES = {
    signal.SIGINT: f"alm_beam: interrupted by SIGINT; {TAIL}",
    signal.SIGTERM: f"alm_beam: interrupted by SIGTERM; {TAIL}",
}


@pytest.fixture(scope="module")
def big_manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "big.jsonl"
    subprocess.run(
        [sys.executable, "-m", "alm_beam.synth", "--entries", "2000", "--seed", "11", "--out", str(path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path


@pytest.fixture
def short_tmpdir():
    """TMPDIR for the run: short (the worker pool binds Unix sockets there) and
    its own, so what the run leaves in it can be checked."""
    path = tempfile.mkdtemp(prefix="sig", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _tree(root: int) -> set:
    """``root`` and every live process below it (from /proc)."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            parents.setdefault(int(fields[1]), []).append(int(pid))
    found, todo = {root}, [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def _full_pipe():
    """A pipe whose buffer is already full: a process writing to it blocks."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(write_fd, False)
    try:
        while True:
            os.write(write_fd, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_fd, True)
    return read_fd, write_fd


def _wait_for(proc, ready, what: str) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before {what}"
    assert ready(), f"the run never reached {what}"


def _is_prism(pid: int) -> bool:
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(PRISM)
    except OSError:
        return False


def _catches_stop_signals(pid: int) -> bool:
    """The process has its own handlers for SIGINT and SIGTERM (SigCgt in
    /proc/PID/status): the earliest moment the run answers a signal."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            caught = next(int(line.split()[1], 16) for line in fh if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    return caught & wanted == wanted


MOMENTS = ["start-up", "start-up + 1 s", "curating", "printing the report"]


def _runner_flags(workers: str) -> list:
    if workers == "two workers":
        return TWO_WORKERS
    if workers == "Prism":
        require_or_skip(
            os.access(PRISM, os.X_OK),
            f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
        )
        return ["--runner", "PrismRunner"]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("workers", ["one worker", "two workers", "Prism"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_signal_stops_the_run_with_one_line(
    moment, signum, workers, entry, big_manifest, tmp_path, short_tmpdir
):
    out = tmp_path / "out"
    at_end = moment == "printing the report"
    args = (
        entry_command(entry)
        + ["--input", SAMPLE if at_end else str(big_manifest), "--output", str(out), "--quiet"]
        + _runner_flags(workers)
    )
    stdout, keep = _full_pipe() if at_end else (subprocess.DEVNULL, None)
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=keep if at_end else stdout,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": short_tmpdir},
    )
    started = set()
    try:
        if moment.startswith("start-up"):
            _wait_for(proc, lambda: _catches_stop_signals(proc.pid), "its start-up")
            if moment == "start-up + 1 s":
                time.sleep(1.0)
            assert proc.poll() is None
        elif moment == "curating":
            _wait_for(proc, lambda: _sinks_writing(out), "the curation")
            time.sleep(0.5)
        else:  # blocked writing the report: summary.json is written, the run not yet over
            _wait_for(proc, lambda: (out / "summary.json").exists(), "its end")
            time.sleep(0.3)
        started = _tree(proc.pid)
        if workers == "Prism":
            # a terminal's Ctrl-C must not reach Prism itself: dying first, it made the
            # run's data-plane thread log a traceback before the run could stop
            assert [pid for pid in started if _is_prism(pid) and os.getpgid(pid) == proc.pid] == []
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the whole group
        else:
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if at_end:
            os.close(stdout)
            os.close(keep)

    assert proc.returncode == 128 + signum, stderr[-3000:]
    lines = stderr.splitlines()
    if workers == "Prism" and lines and PRISM_STARTED.fullmatch(lines[0]):
        del lines[0]  # the run says which Prism it started (when it got that far)
    assert lines == [LINES[signum]]
    assert [pid for pid in started if _alive(pid)] == []
    assert processes_mentioning(str(out).encode()) == []
    assert [n for n in os.listdir(short_tmpdir) if n.startswith("alm_beam_workers_")] == []
    if moment == "curating":
        assert "summary.json" not in os.listdir(out)
