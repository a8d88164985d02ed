"""Pre-flight checks on the output directory (run before the pipeline starts).

A run never mixes its shards with an earlier run's: a non-empty output
directory is refused unless ``--overwrite`` is given, and then only files
alm_beam itself writes are removed (summary.json first, so a crash during
the new run can never leave a stale success marker next to new shards).
"""

from __future__ import annotations

import os
import re

from apache_beam.io.filesystems import FileSystems

OWN_OUTPUT = re.compile(
    r"^(summary\.json|(windows|errors)-\d{5}-of-\d{5}\.jsonl|"
    r"(beam-temp-|\.temp-beam|\.?temp)(windows|errors|summary)?.*)$")


class OutputDirError(ValueError):
    """The output directory cannot be used as asked."""


def _entries(path: str) -> list[str]:
    """Names directly inside ``path`` (files and directories)."""
    if "://" not in path:
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    prefix = path.rstrip("/") + "/"
    try:
        found = FileSystems.match([prefix + "**"])[0].metadata_list
    except Exception:
        return []
    return sorted({m.path[len(prefix):].split("/", 1)[0] for m in found})


def prepare_output_dir(path: str, overwrite: bool) -> list[str]:
    """Refuse or clean a non-empty output directory; returns what was removed."""
    if "://" not in path and os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirError(f"--output {path}: exists and is not a directory")
    names = _entries(path)
    if not names:
        return []
    if not overwrite:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise OutputDirError(
            f"--output {path}: directory is not empty ({len(names)} entries: {shown}); "
            "pass --overwrite to replace a previous alm_beam run's output there, "
            "or choose another --output")
    foreign = [n for n in names if not OWN_OUTPUT.match(n)]
    if foreign:
        raise OutputDirError(
            f"--output {path}: --overwrite only removes alm_beam's own output, and the "
            f"directory also holds {', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}; "
            "move those away or choose another --output")
    ordered = sorted(names, key=lambda n: n != "summary.json")  # the success marker goes first
    for name in ordered:
        FileSystems.delete([FileSystems.join(path, name)])
    return ordered
