"""--runner PrismRunner: Beam's Prism, built from source by pipelines/prism.sh, started
by the CLI and never outliving it.

Needs the Prism binary (`bash pipelines/prism.sh build`): skipped without it locally,
required in CI (ALM_BEAM_REQUIRE_ALL=1; .ci/run builds it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES, require_or_skip
from runner_helpers import (
    GOLDEN_CASES,
    assert_matches_golden,
    children,
    golden_input,
    pid_alive,
    run_cli,
    same_result,
    script,
    wait_closed,
    wait_gone,
)

from alm_beam.execution.runners import prism_binary_path

pytestmark = pytest.mark.e2e

PRISM = prism_binary_path()
STARTED = re.compile(r"Prism (\S+) \(pid (\d+)\) serving jobs at localhost:(\d+)")


@pytest.fixture
def prism():
    require_or_skip(
        os.access(PRISM, os.X_OK),
        f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
    )
    return PRISM


def _started(stderr: str) -> tuple:
    """(pid, job port) of the Prism the CLI reported starting."""
    match = STARTED.search(stderr)
    assert match, stderr[-3000:]
    return int(match.group(2)), int(match.group(3))


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_case_on_prism(case, prism, tmp_path):
    out = tmp_path / "out"
    done = run_cli(
        ["--runner", "PrismRunner", "--input", golden_input(case), "--output", str(out)] + GOLDEN_CASES[case],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "alm_beam run summary" in done.stdout
    assert_matches_golden(out, case)
    pid, port = _started(done.stderr)
    assert prism in done.stderr  # the cached build, not a download
    assert not pid_alive(pid), "the Prism process outlived the run"
    assert wait_closed(port)
    import json

    assert json.loads((out / "summary.json").read_text())["run"]["runner"] == "PrismRunner"


def test_prism_split_input_equals_direct_one_and_two_workers(prism, tmp_path):
    """Many byte ranges as separate bundles on Prism give the DirectRunner's result,
    with one worker and with two (Prism runs one SDK worker per environment and
    several bundles at once inside it)."""
    args = ["--input", str(FIXTURES / "nested_manifests"), "--set", "input.split_mb=0.01"]
    runs = {
        "prism": ["--runner", "PrismRunner"],
        "direct1": ["--direct_num_workers", "1"],
        "direct2": ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
    }
    for name, flags in runs.items():
        done = run_cli(args + flags + ["--output", str(tmp_path / name)], cwd=tmp_path)
        assert done.returncode == 0, (name, done.stderr[-3000:])
    same_result(tmp_path / "direct1", tmp_path / "prism")
    same_result(tmp_path / "direct2", tmp_path / "prism")


def _serving_prism(cli: subprocess.Popen, binary: str, stderr_path, seconds: float = 120.0):
    """(pid, port) of the Prism the CLI started, once the CLI reports it serving:
    from then on the run is under way."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        match = STARTED.search(stderr_path.read_text())
        if match:
            pid = int(match.group(2))
            assert pid in children(cli.pid)
            assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(binary)
            return pid, int(match.group(3))
        assert cli.poll() is None, "the CLI ended before starting Prism"
        time.sleep(0.02)
    raise AssertionError("the CLI did not start Prism")


def _failing_input(tmp_path) -> str:
    good = (FIXTURES / "sample_input.jsonl").read_text().splitlines()[0]
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n{not json\n")
    return str(path)


@pytest.mark.parametrize("ending", ["normal", "pipeline_error", "SIGINT", "SIGTERM", "SIGKILL"])
def test_prism_never_outlives_the_run(ending, prism, tmp_path):
    """However the run ends, the Prism process it started is gone and its port closed.

    ``--prism_location`` is given explicitly, as a user with their own build would:
    with Beam's own job server handling, the normal end already left Prism running
    (the CLI's quick exit skips Beam's atexit clean-up)."""
    local = tmp_path / "bin" / "prism"
    local.parent.mkdir()
    shutil.copy(prism, local)
    args = [
        sys.executable,
        "-m",
        "alm_beam.run",
        "--runner",
        "PrismRunner",
        "--prism_location",
        str(local),
        "--output",
        str(tmp_path / "out"),
    ]
    if ending == "pipeline_error":
        args += ["--input", _failing_input(tmp_path), "--max_error_fraction", "0"]
    else:
        args += ["--input", str(FIXTURES / "nested_manifests")]
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        cli = subprocess.Popen(
            args, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL
        )
        try:
            pid, port = _serving_prism(cli, str(local), stderr_path)
            if ending.startswith("SIG"):
                cli.send_signal(getattr(signal, ending))
            code = cli.wait(timeout=300)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
    text = stderr_path.read_text()
    expected = {"normal": 0, "pipeline_error": 1, "SIGINT": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL}[
        ending
    ]
    if ending in ("SIGINT", "SIGTERM"):  # run.py's one line (alm_beam/interrupts.py)
        assert f"alm_beam: interrupted by {ending};" in text, text[-3000:]
    assert code == expected, text[-3000:]
    assert wait_gone([pid]) == [], f"Prism (pid {pid}) outlived a run that ended by {ending}"
    assert wait_closed(port)


def test_prism_sh_build_is_idempotent_and_prints_the_path(prism):
    first = script("prism.sh", "build")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == prism
    assert "building" not in first.stderr  # already built: nothing rebuilt
    assert script("prism.sh", "path").stdout.strip() == prism
