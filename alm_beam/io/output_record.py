"""An output directory's run record and the refusal of a non-empty directory,
without Beam (``preflight`` refuses a local one before Beam is imported;
``output_dir`` refuses it again under the directory's lock, for every scheme).

The record (``RECORD_NAME``) lists what an alm_beam run made in the directory;
``parse_record`` accepts only a record of ours, so that ``--overwrite`` never
deletes by a forged or foreign list.
"""

from __future__ import annotations

import json
import os
from typing import Optional

LOCK_NAME = ".alm_beam.lock"
RECORD_NAME = ".alm_beam-run.json"
STAGING_PREFIX = ".alm_beam-staging-"
RECORD_FORMAT = 1
RUNNING, COMMITTING, COMMITTED, FAILED = "running", "committing", "committed", "failed"
_RECORD_MAX_BYTES = 16 << 20  # a record lists file names; anything bigger is not ours


def parse_record(text: Optional[str]) -> Optional[dict]:
    """The record's content as ours, or None (missing, unreadable or not ours).

    An empty record is a run killed between creating it and writing it: it
    owns nothing but itself.
    """
    if text is None:
        return None
    if text == "":
        return {"tool": "alm_beam", "format": RECORD_FORMAT, "state": RUNNING, "staging": None, "files": []}
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not (
        isinstance(doc, dict)
        and doc.get("tool") == "alm_beam"
        and doc.get("format") == RECORD_FORMAT
        and isinstance(doc.get("files"), list)
        and all(isinstance(f, str) and f and "/" not in f and f not in (".", "..") for f in doc["files"])
    ):
        return None
    staging = doc.get("staging")
    if staging is not None and not (
        isinstance(staging, str) and staging.startswith(STAGING_PREFIX) and "/" not in staging
    ):
        return None
    return doc


def read_local_record(directory: str) -> Optional[dict]:
    """The record in a local ``directory`` if it is a regular file (never
    through a symbolic link), parsed as ``parse_record`` does."""
    try:
        fd = os.open(os.path.join(directory, RECORD_NAME), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(_RECORD_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > _RECORD_MAX_BYTES:
        return None
    return parse_record(data.decode("utf-8", "replace"))


def first_names(names: list, shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def describe_state(record: Optional[dict]) -> str:
    if record is None:
        return ""
    state = record.get("state")
    if state == RUNNING:
        return "; it holds an alm_beam run that did not finish (killed or interrupted)"
    if state == COMMITTING:
        return (
            "; it holds an alm_beam run killed while committing its result "
            "(no summary.json: the result is incomplete)"
        )
    if state == FAILED:
        return "; it holds a failed alm_beam run (no summary.json)"
    return "; it holds a previous alm_beam run's output"


def not_empty_message(path: str, names: list, record: Optional[dict]) -> str:
    """The refusal of a non-empty output directory without ``--overwrite``."""
    return (
        f"--output {path}: directory is not empty ({len(names)} entries: "
        f"{first_names(names)}){describe_state(record)}; "
        "pass --overwrite to replace a previous alm_beam run's output there, "
        "or choose another --output"
    )
