"""Progress on runners other than the DirectRunner: the job's state, elapsed time
and the counters the runner reports, every few seconds, on stderr (--quiet: none)."""

import io
import json
import os
import re
import subprocess
import sys
import threading

import pytest
from conftest import beam_test_pipeline, require_or_skip
from runner_helpers import free_ports, script

from alm_beam.execution.job_progress import counter_values
from alm_beam.execution.runners import prism_binary_path
from alm_beam.results import progress
from alm_beam.results.progress import JobMonitor, format_job_progress, watch_job

PRISM = prism_binary_path()
JOB_LINE = re.compile(
    r"^alm_beam: (?:PrismRunner|PortableRunner) job ([A-Z]+), elapsed (\d+):(\d\d)"
    r"(?:, ([\d,]+) lines read)?(?:, ([\d,]+) entries written)?(?:, ([\d,]+) rejected)?"
    r"(?:, ([\d,]+) windows kept)?$"
)


def test_format_job_progress():
    counters = {"lines_read": 1500, "entries_written": 1490, "entries_failed": 10, "filtered_windows": 2345}
    assert format_job_progress("PrismRunner", "RUNNING", 72.4, dict(counters, bytes_read=9)) == (
        "alm_beam: PrismRunner job RUNNING, elapsed 1:12, 1,500 lines read, 1,490 entries written, "
        "10 rejected, 2,345 windows kept"
    )
    # only what the runner has reported so far
    assert (
        format_job_progress("FlinkRunner", "STARTING", 3.0, {})
        == "alm_beam: FlinkRunner job STARTING, elapsed 0:03"
    )
    assert format_job_progress("SparkRunner", "RUNNING", 3725.0, {"filtered_windows": 7}) == (
        "alm_beam: SparkRunner job RUNNING, elapsed 1:02:05, 7 windows kept"
    )


class _Answers:
    """A job as the monitor sees it: each poll gives the next answer (the last
    one repeats); an exception instance is raised instead."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0
        self.asked = threading.Event()

    def __call__(self):
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if self.calls >= len(self.answers):
            self.asked.set()
        if isinstance(answer, Exception):
            raise answer
        return answer


def _without_time(text: str) -> list:
    """The lines of ``text`` with the elapsed time blanked (a busy machine may take seconds)."""
    return [re.sub(r"elapsed \d+:\d\d", "elapsed T", line) for line in text.splitlines()]


def test_monitor_prints_each_answer_skips_failed_polls_and_ends_with_the_final_state():
    job = _Answers(
        ("STARTING", {}),
        ("RUNNING", {"lines_read": 40}),
        ConnectionError("the job service did not answer"),
        ("RUNNING", {"lines_read": 80, "entries_written": 79, "entries_failed": 1}),
    )
    out = io.StringIO()
    monitor = JobMonitor(job, "PrismRunner", out, interval_s=0.01)
    monitor.start()
    assert job.asked.wait(60)
    job.answers.append(("DONE", {"lines_read": 80, "entries_written": 79, "entries_failed": 1}))
    monitor.stop(succeeded=True)
    lines = _without_time(out.getvalue())
    assert lines[0] == "alm_beam: PrismRunner job STARTING, elapsed T"
    assert lines[1] == "alm_beam: PrismRunner job RUNNING, elapsed T, 40 lines read"
    assert lines[2].startswith("alm_beam: PrismRunner job RUNNING, elapsed T, 80 lines read")
    # the final line: the state alone (the summary printed next has the exact counts)
    assert lines[-1] == "alm_beam: PrismRunner job DONE, elapsed T"
    assert "did not answer" not in out.getvalue()  # a failed poll prints nothing
    assert monitor.cpu_s >= 0.0


def test_a_failed_run_gets_no_final_line_and_a_hung_poll_does_not_hold_it(monkeypatch):
    monkeypatch.setattr(progress, "POLL_TIMEOUT_S", 0.2)
    release, started, answered = threading.Event(), threading.Event(), threading.Event()

    def hung():
        started.set()
        release.wait(600)
        answered.set()
        return "RUNNING", {}

    out = io.StringIO()
    monitor = JobMonitor(hung, "FlinkRunner", out, interval_s=0.01)
    monitor.start()
    assert started.wait(60)
    monitor.stop(succeeded=False)  # returns although the runner has not answered
    assert not answered.is_set()
    release.set()
    assert out.getvalue() == ""


def test_watch_job_says_submitting_until_attached_and_nothing_when_disabled():
    out = io.StringIO()
    with watch_job(False, "PrismRunner", out) as job:
        job.attach(lambda: ("RUNNING", {}))
    assert job.monitor is None and out.getvalue() == ""

    with watch_job(True, "PrismRunner", out) as job:
        assert job.poll() == ("SUBMITTING", {})
        job.attach(lambda: ("DONE", {"lines_read": 3}))
    assert _without_time(out.getvalue())[-1] == "alm_beam: PrismRunner job DONE, elapsed T"


def test_counter_values_sums_alm_beam_counters_over_steps():
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    def count(element, name):
        Metrics.counter("alm_beam", name).inc(element)
        Metrics.counter("other", name).inc(100)
        return element

    pipeline = beam_test_pipeline()
    numbers = pipeline | beam.Create([1, 2, 3])
    _ = numbers | "A" >> beam.Map(count, "lines_read")
    _ = numbers | "B" >> beam.Map(count, "lines_read")
    _ = numbers | "C" >> beam.Map(count, "entries_written")
    result = pipeline.run()
    result.wait_until_finish()
    assert counter_values(result.metrics()) == {"lines_read": 12, "entries_written": 6}


# ---------------------------------------------------------------- on Prism


@pytest.fixture
def prism():
    require_or_skip(
        os.access(PRISM, os.X_OK),
        f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
    )
    return PRISM


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("job_progress") / "m.jsonl"
    subprocess.run(
        [sys.executable, "-m", "alm_beam.synth", "--entries", "300", "--seed", "3", "--out", str(path)],
        check=True,
        capture_output=True,
    )
    with open(path, "ab") as fh:
        fh.write(b"[1]\n")  # one rejected line
    return path


def _check_job_lines(stderr: str, runner: str, out) -> None:
    """Job lines in order, RUNNING among them, the last one DONE with the summary's counts."""
    assert "\r" not in stderr  # not a terminal: plain lines
    lines = [line for line in stderr.splitlines() if line.startswith(f"alm_beam: {runner} job ")]
    assert len(lines) >= 2, stderr[-3000:]
    matches = [JOB_LINE.match(line) for line in lines]
    assert all(matches), lines
    elapsed = [int(m.group(2)) * 60 + int(m.group(3)) for m in matches]
    assert elapsed == sorted(elapsed)
    assert "RUNNING" in {m.group(1) for m in matches}
    summary = json.loads((out / "summary.json").read_text())
    last = matches[-1]
    assert last.group(1) == "DONE"
    # The final line has no counts (the runner's may lag; the summary's are exact),
    # and no line ever counts more than the run did.
    assert last.groups()[3:] == (None, None, None, None), lines[-1]
    truth = [summary[k] for k in ("lines_read", "entries_written", "entries_failed", "filtered_windows")]
    for m in matches:
        for shown, exact in zip(m.groups()[3:], truth):
            assert shown is None or int(shown.replace(",", "")) <= exact, m.group(0)
    assert summary["entries_failed"] == 1


def _prism_run(manifest, out, *extra):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--runner",
            "PrismRunner",
            "--input",
            str(manifest),
            "--output",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, ALM_BEAM_PROGRESS_INTERVAL_S="0.2"),
    )


@pytest.mark.e2e
def test_a_prism_run_shows_state_elapsed_and_the_runners_counts(prism, manifest, tmp_path):
    done = _prism_run(manifest, tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    _check_job_lines(done.stderr, "PrismRunner", tmp_path / "out")


@pytest.mark.e2e
def test_quiet_silences_it_on_prism(prism, manifest, tmp_path):
    done = _prism_run(manifest, tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert " job " not in done.stderr
    assert done.stderr.splitlines() == [
        line for line in done.stderr.splitlines() if "serving jobs at" in line
    ]


@pytest.mark.e2e
def test_a_job_on_the_portable_deployment_shows_progress_too(prism, manifest, tmp_path):
    """--runner PortableRunner against pipelines/portable.sh's Prism job service and
    worker pool: the same job lines (the PortableRunner calls Flink and Spark use)."""
    ports = free_ports(3)
    env = dict(
        os.environ,
        ALM_PORTABLE_STATE_DIR=str(tmp_path / "state"),
        ALM_PRISM_JOB_PORT=str(ports[0]),
        ALM_PRISM_WEB_PORT=str(ports[1]),
        ALM_WORKER_POOL_PORT=str(ports[2]),
        ALM_BEAM_PROGRESS_INTERVAL_S="0.2",
    )
    up = script("portable.sh", "up", env=env)
    assert up.returncode == 0, up.stderr
    try:
        out = tmp_path / "out"
        done = script("portable.sh", "submit", "--input", str(manifest), "--output", str(out), env=env)
    finally:
        down = script("portable.sh", "down", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_job_lines(done.stderr, "PortableRunner", out)
    assert down.returncode == 0, down.stderr
