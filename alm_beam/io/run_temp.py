"""One temporary directory per run, and the removal of those left by killed runs.

Beam makes ``beam-pipeline-temp*`` with ``tempfile.mkdtemp`` and the warm SDK
worker pool makes ``alm_beam_workers_*``; a run killed with SIGKILL cannot
remove them. So every run puts all of its temporary files under its own root,
``$TMPDIR/alm_beam-run-<pid>-<start ticks>-<random>/`` (``tempfile.tempdir``
and ``TMPDIR`` for child processes point there while the run lasts), removes
it at the end, and at start-up removes every other run root whose owner
process (pid and start time, see ``process_owner``) is gone. A live run's
root is never touched. Directories of the old layout (``alm_beam_workers_*``
directly in the temp directory) are removed when every worker pid they record
is gone. Beam's own ``beam-pipeline-temp*`` directories outside a run root
cannot be told apart from another Beam program's and are left alone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from typing import NamedTuple, Optional

from alm_beam.io.process_owner import is_alive, process_is_running, this_process

ROOT_PREFIX = "alm_beam-run-"
_ROOT = re.compile(r"^alm_beam-run-(\d+)-(\d+)-[0-9a-f]+$")
_OLD_POOL = re.compile(r"^alm_beam_workers_")
_OLD_POOL_RECORD = re.compile(r"^worker-\d+\.(?:free|taken)$")  # each holds a worker's pid


class RunTemp(NamedTuple):
    root: str
    previous_tempdir: Optional[str]
    previous_env: Optional[str]
    swept: list


def _remove(path: str) -> bool:
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.exists(path)


def _old_pool_is_dead(path: str) -> bool:
    """An ``alm_beam_workers_*`` directory of the old layout: dead once every
    worker pid it records has exited (one without a record is left alone)."""
    pids = []
    try:
        for name in os.listdir(path):
            if _OLD_POOL_RECORD.match(name):
                with open(os.path.join(path, name), "rb") as fh:
                    pids.append(int(fh.read() or 0))
    except (OSError, ValueError):
        return False
    # The old layout records no start time: a worker counts as alive while its pid runs.
    return bool(pids) and not any(process_is_running(pid) for pid in pids)


def sweep_dead_runs(temp_dir: str) -> list:
    """Remove what killed runs of ours left in ``temp_dir``; returns the paths removed."""
    removed = []
    try:
        names = sorted(os.listdir(temp_dir))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(temp_dir, name)
        found = _ROOT.match(name)
        if found:
            dead = not is_alive(int(found.group(1)), int(found.group(2)))
        elif _OLD_POOL.match(name):
            dead = _old_pool_is_dead(path)
        else:
            continue
        if dead and os.path.isdir(path) and not os.path.islink(path) and _remove(path):
            removed.append(path)
    return removed


def enter_run_temp() -> RunTemp:
    """Sweep dead runs' leftovers, then make this run's root the temp directory."""
    base = tempfile.gettempdir()
    swept = sweep_dead_runs(base)
    me = this_process()
    root = os.path.join(base, f"{ROOT_PREFIX}{me.pid}-{me.start_ticks}-{secrets.token_hex(3)}")
    os.mkdir(root, 0o700)
    state = RunTemp(root, tempfile.tempdir, os.environ.get("TMPDIR"), swept)
    tempfile.tempdir = root
    os.environ["TMPDIR"] = root  # SDK worker processes and their children
    return state


def leave_run_temp(state: RunTemp) -> None:
    """Remove this run's root and restore the temp directory (a caller may run again)."""
    tempfile.tempdir = state.previous_tempdir
    if state.previous_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = state.previous_env
    shutil.rmtree(state.root, ignore_errors=True)
