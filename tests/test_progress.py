"""Progress on stderr while a run reads its input: files per reader, one printer thread."""

import gzip
import io
import os
import pty
import re
import select
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES

from alm_beam.results.progress import RECORD, ProgressMonitor, ProgressWriter, format_progress, read_totals

LINE = re.compile(r"alm_beam: read (\d+\.\d)% \((.+?) of (.+?)\), ([\d,]+) lines, ")


def test_writers_files_sum_to_the_totals(tmp_path):
    a, b = ProgressWriter(str(tmp_path)), ProgressWriter(str(tmp_path))
    a.report(100, 3)  # a range in progress
    b.finish_range(50, 2)
    b.report(10, 1)
    assert read_totals(str(tmp_path)) == (160, 6)
    a.finish_range(120, 4)  # the whole range, exactly
    assert read_totals(str(tmp_path)) == (180, 7)
    assert len(os.listdir(tmp_path)) == 2
    assert all(os.path.getsize(tmp_path / n) == RECORD.size for n in os.listdir(tmp_path))
    a.close()
    b.close()


def test_writer_in_a_missing_directory_stays_silent(tmp_path):
    writer = ProgressWriter(str(tmp_path / "gone"))
    writer.report(5, 1)  # no exception: progress never fails a run
    assert writer.fd is None


def test_format_progress_line():
    assert format_progress(25_000_000, 100_000_000, 1_500, 10.0) == (
        "alm_beam: read 25.0% (25.0 MB of 100.0 MB), 1,500 lines, 150 lines/s, elapsed 0:10, about 0:30 left"
    )
    assert format_progress(100_000_000, 100_000_000, 6_000, 3725.0, final=True) == (
        "alm_beam: read 100.0% (100.0 MB of 100.0 MB), 6,000 lines, 2 lines/s, elapsed 1:02:05"
    )
    assert format_progress(0, 2_000, 0, 0.0) == (
        "alm_beam: read 0.0% (0 B of 2.0 kB), 0 lines, 0 lines/s, elapsed 0:00"
    )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_monitor_plain_lines_and_final_line(tmp_path):
    writer = ProgressWriter(str(tmp_path))
    writer.finish_range(2_000, 7)
    out = io.StringIO()
    monitor = ProgressMonitor(str(tmp_path), 2_000, out, interval_s=0.01)
    monitor.start()
    monitor.stop(succeeded=True)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[-1].startswith("alm_beam: read 100.0% (2.0 kB of 2.0 kB), 7 lines, ")


def test_monitor_on_a_terminal_rewrites_one_line(tmp_path):
    out = _Terminal()
    monitor = ProgressMonitor(str(tmp_path), 10, out, interval_s=3600)
    monitor.start()
    monitor._emit("alm_beam: a longer first line", False)
    monitor.stop(succeeded=True)
    text = out.getvalue()
    assert text.startswith("\ralm_beam: a longer first line\ralm_beam: read 0.0%")
    assert text.endswith("\n") and text.count("\n") == 1


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two manifests (one gzip), cut into many ranges by input.split_mb."""
    base = tmp_path_factory.mktemp("progress_in")
    shutil.copy(FIXTURES / "sample_input.jsonl", base / "a.jsonl")
    with gzip.open(base / "b.jsonl.gz", "wb") as fh:
        fh.write((FIXTURES / "sample_input.jsonl").read_bytes())
    total = os.path.getsize(base / "a.jsonl") + os.path.getsize(base / "b.jsonl.gz")
    lines = 2 * sum(1 for raw in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if raw.strip())
    return base, total, lines


def _size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _args(inputs, out, *extra):
    base, _, _ = inputs
    return [
        sys.executable,
        "-m",
        "alm_beam.run",
        "--input",
        str(base),
        "--output",
        str(out),
        "--set",
        "input.split_mb=0.02",
        *extra,
    ]


def _env():
    return dict(os.environ, ALM_BEAM_PROGRESS_INTERVAL_S="0.1")


def _check_lines(stderr, inputs):
    _, total, lines = inputs
    found = LINE.findall(stderr)
    assert found, stderr[-2000:]
    assert all(of == _size(total) for _, _, of, _ in found)
    pct, done, _, count = found[-1]
    assert (pct, done, count) == ("100.0", _size(total), f"{lines:,}")
    assert stderr.rstrip("\n").splitlines()[-1].startswith("alm_beam: read 100.0%")
    return found


@pytest.mark.e2e
def test_run_prints_log_lines_when_stderr_is_not_a_terminal(inputs, tmp_path):
    proc = subprocess.run(
        _args(inputs, tmp_path / "out"), capture_output=True, text=True, timeout=600, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr
    _check_lines(proc.stderr, inputs)


@pytest.mark.e2e
def test_two_workers_report_progress_too(inputs, tmp_path):
    proc = subprocess.run(
        _args(
            inputs, tmp_path / "out", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"
        ),
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_lines(proc.stderr, inputs)


@pytest.mark.e2e
def test_quiet_prints_no_progress(inputs, tmp_path):
    proc = subprocess.run(
        _args(inputs, tmp_path / "out", "--quiet"), capture_output=True, text=True, timeout=600, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "alm_beam: read" not in proc.stderr
    assert "alm_beam run summary" in proc.stdout


@pytest.mark.e2e
def test_terminal_gets_one_live_line(inputs, tmp_path):
    """stderr on a pseudo-terminal: carriage-return updates, one newline at the end."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _args(inputs, tmp_path / "out"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=_env(),
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 600)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")  # the tty adds \r
    progress = text[text.index("\ralm_beam: read") :]
    updates = progress.split("\r")[1:]
    assert len(updates) >= 2, text[-2000:]
    assert all(u.startswith("alm_beam: read") for u in updates)
    assert "\n" not in "".join(updates[:-1])  # one line, rewritten in place
    assert updates[-1].rstrip().startswith("alm_beam: read 100.0%")
    _check_lines(progress.replace("\r", "\n"), inputs)
