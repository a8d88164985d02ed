"""Checks on ``--output`` that can be made before a pipeline exists.

Beam's file sinks find an unusable output location only when their first step
runs (``InitializeWrite``), after the input was planned and the graph built,
and report it as a traceback. ``preflight_output`` finds it first, as one line
(``PreflightError``; exit 2).

Local paths: the output directory, or the nearest ancestor that exists when
it does not exist yet (the sinks create the rest), must be a directory in
which a file can be created: a probe file is created there and removed at once
(a read-only file system, an immutable directory or a missing permission all
show up as the error the sinks would meet). Remote schemes (``s3://``,
``gs://``, ...) go to ``preflight_remote``: the hook for scheme-specific
checks (a missing Beam extra, credentials), which belong with the object-store
support.
"""

from __future__ import annotations

import os
import tempfile

from alm_beam.core.params import clip
from alm_beam.io.output_record import LOCK_NAME, RECORD_NAME, not_empty_message, read_local_record

PROBE_PREFIX = ".alm_beam_probe_"


def preflight_not_empty(path: str, overwrite: bool) -> None:
    """Without ``--overwrite``, refuse a local output directory that holds
    anything, with the message ``output_dir.prepare_output_dir`` gives under
    the directory's lock once Beam is imported. A directory holding a lock
    file (a run is using it, or was killed there) is left to that check,
    which tells the two apart."""
    if overwrite or "://" in path:
        return
    target = os.path.abspath(path)
    if os.path.islink(target) or not os.path.isdir(target):
        return  # refused or created later, as before
    try:
        names = sorted(os.listdir(target))
    except OSError:
        return  # the locked check reports it
    if not names or LOCK_NAME in names:
        return
    record_is_file = os.path.isfile(os.path.join(target, RECORD_NAME)) and not os.path.islink(
        os.path.join(target, RECORD_NAME)
    )
    record = read_local_record(target) if record_is_file else None
    raise PreflightError(not_empty_message(path, names, record))


class PreflightError(ValueError):
    """The output location cannot be written; found before the pipeline starts."""


def preflight_output(path: str) -> None:
    """Raise PreflightError if a run could not write its result to ``path``."""
    if "://" in path:
        preflight_remote(path)
    else:
        preflight_local(path)


def preflight_remote(path: str) -> None:  # noqa: ARG001 - extension point
    """Scheme-specific checks for an object-store ``path``; none yet."""
    return None


def _nearest_existing(path: str) -> str:
    current = path
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def preflight_local(path: str) -> None:
    shown = clip(path, 200)
    target = os.path.abspath(path)
    existing = _nearest_existing(target)
    if not os.path.isdir(existing):
        if os.path.islink(existing) and not os.path.exists(existing):
            what = "a symbolic link to a path that does not exist"
        else:
            what = "not a directory"
        where = "exists and is" if existing == target else f"its parent {clip(existing, 200)} is"
        raise PreflightError(f"--output {shown}: {where} {what}; choose another --output")
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=existing)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "" if existing == target else f" (in {clip(existing, 200)}, where it would be created)"
        raise PreflightError(
            f"--output {shown}: cannot write there{where}: {reason}; choose a writable --output"
        ) from None
    os.close(fd)
    os.unlink(probe)
