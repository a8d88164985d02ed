"""Start, pause and kill real alm_beam runs, and compare results.

A run is started through one of the three entry points a user has
(``ENTRY_POINTS``): ``python -m alm_beam.run``, the ``alm-beam`` console
script, or ``main()`` called from Python; they must behave alike.

A run started with ``pause_at=STAGE`` stops at that stage (``output_dir.test_pause``):
it creates a marker file and waits until the file is removed. The test then
kills the run's process group, or removes the marker to let it go on.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Optional

from bad_inputs.corpus import REPO

from alm_beam.io.output_dir import PAUSE_AT_ENV, PAUSE_FILE_ENV

MODULE = "python -m alm_beam.run"
CONSOLE_SCRIPT = "alm-beam"
FROM_PYTHON = "main() from Python"
ENTRY_POINTS = (MODULE, CONSOLE_SCRIPT, FROM_PYTHON)


def entry_command(entry: str) -> list:
    """The command line (without alm_beam's flags) that starts a run through ``entry``."""
    if entry == MODULE:
        return [sys.executable, "-m", "alm_beam.run"]
    if entry == CONSOLE_SCRIPT:
        # pip puts the console script beside the interpreter it installed alm_beam for
        script = os.path.join(os.path.dirname(sys.executable), "alm-beam")
        assert os.access(script, os.X_OK), f"no {script}: install alm_beam (pip install -e .)"
        return [script]
    if entry == FROM_PYTHON:
        return [
            sys.executable,
            "-c",
            "import sys; from alm_beam.run import main; sys.exit(main(sys.argv[1:]))",
        ]
    raise ValueError(f"unknown entry point {entry!r}")


class Run:
    def __init__(self, proc: subprocess.Popen, marker: Optional[pathlib.Path]):
        self.proc = proc
        self.marker = marker

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_paused(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(
                    f"the run ended (exit {self.proc.returncode}) before pausing:\n{err[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError("the run did not reach its pause point")
            time.sleep(0.02)

    def resume(self) -> None:
        self.marker.unlink()

    def kill(self) -> None:
        """SIGKILL the run's whole process group (the run and its SDK workers)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)

    def finish(self, timeout: float = 300) -> tuple:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.kill()
        self.proc.communicate()


def start_run(
    args,
    *,
    pause_at: Optional[str] = None,
    marker_dir: Optional[pathlib.Path] = None,
    env: Optional[dict] = None,
    entry: str = MODULE,
) -> Run:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    marker = None
    if pause_at is not None:
        marker = pathlib.Path(marker_dir) / f"paused-{pause_at.replace(':', '-')}-{time.monotonic_ns()}"
        environment[PAUSE_AT_ENV] = pause_at
        environment[PAUSE_FILE_ENV] = str(marker)
    proc = subprocess.Popen(
        [*entry_command(entry), *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )
    return Run(proc, marker)


def visible_names(out_dir) -> list:
    """What a consumer lists: every entry not starting with a dot."""
    return sorted(n for n in os.listdir(out_dir) if not n.startswith("."))


def result_of(out_dir) -> tuple:
    """(file names, multiset of lines per output kind, summary.json without its
    wall-clock times) of a finished run."""
    out_dir = pathlib.Path(out_dir)
    names = visible_names(out_dir)
    lines = {}
    for kind in ("windows", "errors", "train"):
        lines[kind] = collections.Counter(
            line
            for name in names
            if name.startswith(kind + "-")
            for line in (out_dir / name).read_bytes().splitlines()
        )
    summary = json.loads((out_dir / "summary.json").read_text())
    for clock in ("started_at", "finished_at", "duration_s", "process_duration_s"):  # differ run to run
        summary["run"].pop(clock, None)
    return names, lines, summary


def run_record(out_dir) -> Optional[dict]:
    path = pathlib.Path(out_dir) / ".alm_beam-run.json"
    return json.loads(path.read_text()) if path.exists() else None
