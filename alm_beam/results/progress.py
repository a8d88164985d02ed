"""Progress of a running job on stderr (pure Python, no Beam).

Two sources, one printer. On the DirectRunner (``ProgressMonitor``): the read
step's own files, described below. On every other runner (Prism, a portable
job server, Flink, Spark, Dataflow; ``JobMonitor``): the job's state and the
counters the runner reports for it, asked of the runner every few seconds by
a callable that ``alm_beam.execution.job_progress`` builds from Beam's
PipelineResult.

DirectRunner: Beam's metrics are not live while the FnApiRunner runs, so the read step has
its own channel: ``run.py`` creates a scratch directory before the pipeline
starts, each instance of the read DoFn (in this process or in an SDK worker
process of the same machine) keeps its cumulative byte and line counts in a
16-byte file of its own there (``ProgressWriter``, updated once per
``REPORT_EVERY_BYTES`` of lines, so the per-line cost is one comparison), and
a thread of the CLI process (``ProgressMonitor``) sums the files and prints.
Bytes are the bytes taken from storage: for a compressed manifest the
compressed bytes consumed, so the total is the sum of the file sizes found by
discovery. On other runners the workers share no filesystem with the CLI,
hence ``JobMonitor``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import uuid
from typing import Iterator, Optional, TextIO

RECORD = struct.Struct("<qq")  # bytes done, lines done
REPORT_EVERY_BYTES = 1 << 20  # a writer updates its file once per MiB of lines
SUFFIX = ".progress"
TTY_INTERVAL_S = 0.5  # live line on a terminal
LOG_INTERVAL_S = 5.0  # plain log line otherwise
INTERVAL_ENV = "ALM_BEAM_PROGRESS_INTERVAL_S"  # overrides every interval (tests)
JOB_TTY_INTERVAL_S = 1.0  # JobMonitor asks the runner (a remote call) at most once a second
JOB_LOG_INTERVAL_S = 5.0
POLL_TIMEOUT_S = 5.0  # longest a JobMonitor poll may wait for the runner
# The counters a job line shows (namespace alm_beam, summed over steps), in order.
JOB_COUNTERS = (
    ("lines_read", "lines read"),
    ("entries_written", "entries written"),
    ("entries_failed", "rejected"),
    ("filtered_windows", "windows kept"),
)


class ProgressWriter:
    """Cumulative counts of one read DoFn instance, in its own file.

    Never raises: progress must not fail a run (an unwritable directory just
    turns it off for this instance).
    """

    __slots__ = ("directory", "fd", "bytes_done", "lines_done")

    def __init__(self, directory: str):
        self.directory = directory
        self.fd: Optional[int] = None
        self.bytes_done = 0  # of the ranges finished by this instance
        self.lines_done = 0

    def report(self, bytes_now: int, lines_now: int) -> None:
        """Counts so far, ``bytes_now``/``lines_now`` of the range being read added."""
        if self.fd is None:
            if not self.directory:
                return
            try:
                name = f"{os.getpid()}-{uuid.uuid4().hex}{SUFFIX}"
                self.fd = os.open(os.path.join(self.directory, name), os.O_WRONLY | os.O_CREAT, 0o644)
            except OSError:
                self.directory = ""
                return
        try:
            os.pwrite(self.fd, RECORD.pack(self.bytes_done + bytes_now, self.lines_done + lines_now), 0)
        except OSError:
            pass

    def finish_range(self, range_bytes: int, range_lines: int) -> None:
        self.bytes_done += range_bytes
        self.lines_done += range_lines
        self.report(0, 0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def read_totals(directory: str) -> tuple[int, int]:
    """Sum of every writer's (bytes, lines) in ``directory``."""
    done_bytes = done_lines = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0, 0
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as fh:
                data = fh.read(RECORD.size)
        except OSError:
            continue
        if len(data) == RECORD.size:
            b, n = RECORD.unpack(data)
            done_bytes += b
            done_lines += n
    return done_bytes, done_lines


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def format_progress(
    done_bytes: int, total_bytes: int, lines: int, elapsed_s: float, final: bool = False
) -> str:
    """One progress line, e.g. ``alm_beam: read 42.0% (29.6 of 70.4 MB), 840 lines,
    120 lines/s, elapsed 0:07, about 0:10 left``."""
    shown = min(done_bytes, total_bytes) if total_bytes else done_bytes
    pct = 100.0 * shown / total_bytes if total_bytes else 100.0
    rate = lines / elapsed_s if elapsed_s > 0 else 0.0
    text = (
        f"alm_beam: read {pct:.1f}% ({_size(shown)} of {_size(total_bytes)}), "
        f"{lines:,} lines, {rate:,.0f} lines/s, elapsed {_clock(elapsed_s)}"
    )
    if final:
        return text
    if 0 < shown < total_bytes and elapsed_s > 0:
        left = (total_bytes - shown) * elapsed_s / shown
        return text + f", about {_clock(left)} left"
    return text + (", finishing" if total_bytes and shown >= total_bytes else "")


def format_job_progress(runner: str, state: str, elapsed_s: float, counters: dict) -> str:
    """One job line, e.g. ``alm_beam: PrismRunner job RUNNING, elapsed 0:12,
    840 lines read, 830 entries written, 10 rejected, 41 windows kept``; only
    the counters the runner has reported are shown."""
    shown = [f"{counters[key]:,} {label}" for key, label in JOB_COUNTERS if key in counters]
    return f"alm_beam: {runner} job {state}, elapsed {_clock(elapsed_s)}" + "".join(", " + c for c in shown)


class ProgressMonitor:
    """A thread that prints the summed progress: a live line (carriage return)
    on a terminal, a log line every few seconds otherwise."""

    tty_interval_s = TTY_INTERVAL_S
    log_interval_s = LOG_INTERVAL_S

    def __init__(
        self,
        directory: str,
        total_bytes: int,
        stream: TextIO = sys.stderr,
        interval_s: Optional[float] = None,
    ):
        self.directory = directory
        self.total_bytes = total_bytes
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        if interval_s is None:
            env = os.environ.get(INTERVAL_ENV)
            interval_s = float(env) if env else (self.tty_interval_s if self.tty else self.log_interval_s)
        self.interval_s = interval_s
        self.cpu_s = 0.0  # CPU time the printing thread used (its cost, measured)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alm_beam-progress", daemon=True)
        self._started = 0.0
        self._width = 0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def _emit(self, text: str, final: bool) -> None:
        try:
            if self.tty:
                pad = " " * max(0, self._width - len(text))
                self._width = len(text)
                self.stream.write("\r" + text + pad + ("\n" if final else ""))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _line(self, final: bool) -> str:
        done_bytes, lines = read_totals(self.directory)
        return format_progress(done_bytes, self.total_bytes, lines, time.monotonic() - self._started, final)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            line = self._line(False)
            if line is not None:
                self._emit(line, False)
            self.cpu_s = time.thread_time()

    def _join(self) -> bool:
        """Wait for the thread; whether it ended."""
        self._thread.join()
        return True

    def stop(self, succeeded: bool) -> None:
        """Stop printing; a successful run ends with its final counts (100%)."""
        self._stop.set()
        line = None
        if self._join() and succeeded:
            line = self._line(True)
        if line is not None:
            self._emit(line, True)
        elif self.tty and self._width:
            self._emit("", True)  # end the live line before the error is printed


class JobMonitor(ProgressMonitor):
    """A thread that prints a job's state, elapsed time and counters, as ``poll()``
    (no arguments -> ``(state name, {counter name: value})``) reports them.

    ``poll`` asks the runner (a remote call): when it fails or takes longer than
    ``POLL_TIMEOUT_S``, that moment prints nothing; the run itself reports a
    runner that is gone. A successful run ends with the job's final state (its
    counts are the summary's, printed next).
    """

    tty_interval_s = JOB_TTY_INTERVAL_S
    log_interval_s = JOB_LOG_INTERVAL_S

    def __init__(self, poll, runner: str, stream: TextIO = sys.stderr, interval_s: Optional[float] = None):
        super().__init__("", 0, stream, interval_s)
        self.poll = poll
        self.runner = runner

    def _line(self, final: bool) -> Optional[str]:
        try:
            state, counters = self.poll()
        except Exception:  # noqa: BLE001 - progress must not fail or clutter a run
            return None
        if final:
            # A runner's counters at the job's end can lag its last bundles (Prism's
            # did: half the entries); the summary printed next has the exact counts.
            counters = {}
        return format_job_progress(self.runner, state, time.monotonic() - self._started, counters)

    def _join(self) -> bool:
        self._thread.join(POLL_TIMEOUT_S + 1.0)  # a poll in flight ends by its timeout
        return not self._thread.is_alive()


@contextlib.contextmanager
def watch(enabled: bool, total_bytes: int, stream: TextIO = sys.stderr) -> Iterator[Optional[str]]:
    """The progress directory to hand to the read step (None when disabled),
    printed from while the ``with`` body runs, removed afterwards."""
    if not enabled:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="alm_beam_progress_")
    monitor = ProgressMonitor(directory, total_bytes, stream)
    succeeded = False
    try:
        monitor.start()
        yield directory
        succeeded = True
    finally:
        monitor.stop(succeeded)
        shutil.rmtree(directory, ignore_errors=True)


class JobWatch:
    """What ``watch_job`` yields: ``attach(poll)`` once the job is submitted."""

    SUBMITTING = "SUBMITTING"  # before the runner has the job (shown as its state)

    def __init__(self):
        self._poll = None
        self.monitor: Optional[JobMonitor] = None

    def attach(self, poll) -> None:
        self._poll = poll

    def poll(self) -> tuple:
        poll = self._poll
        return (self.SUBMITTING, {}) if poll is None else poll()


@contextlib.contextmanager
def watch_job(enabled: bool, runner: str, stream: TextIO = sys.stderr) -> Iterator[JobWatch]:
    """A ``JobMonitor`` printing while the ``with`` body submits and waits for the
    job (nothing when disabled); the body calls ``attach`` with the job's poll."""
    watch = JobWatch()
    if not enabled:
        yield watch
        return
    watch.monitor = JobMonitor(watch.poll, runner, stream)
    succeeded = False
    try:
        watch.monitor.start()
        yield watch
        succeeded = True
    finally:
        watch.monitor.stop(succeeded)
