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

# Exactly the names a run creates in its output directory (see pipeline.py):
# the final shards ``windows-SSSSS-of-NNNNN.jsonl`` / ``errors-...`` / ``train-...`` (Beam
# formats shard numbers with at least 5 digits), ``summary.json``, and the
# temporary directories of Beam's file sinks, which a killed or failed run
# leaves behind: FileBasedSink names them ``beam-temp-<last component of the
# file prefix>-<uuid1 hex>``, i.e. beam-temp-windows-..., beam-temp-errors-...,
# beam-temp-summary.json-... Anything else is not ours and is never deleted.
OWN_OUTPUT = re.compile(
    r"^(?:summary\.json"
    r"|(?:windows|errors|train)-\d{5,}-of-\d{5,}\.jsonl"
    r"|beam-temp-(?:windows|errors|train|summary\.json)-[0-9a-f]{32})$")


def is_own_output(name: str, is_dir: bool) -> bool:
    """Is ``name`` something an alm_beam run writes (temp directories are directories,
    everything else files)?"""
    return bool(OWN_OUTPUT.match(name)) and is_dir == name.startswith("beam-temp-")


class OutputDirError(ValueError):
    """The output directory cannot be used as asked."""


def _entries(path: str) -> dict[str, bool]:
    """Names directly inside ``path`` (files and directories) -> is it a directory."""
    if "://" not in path:
        if not os.path.isdir(path):
            return {}
        return {name: os.path.isdir(os.path.join(path, name))
                for name in sorted(os.listdir(path))}
    prefix = path.rstrip("/") + "/"
    try:
        found = FileSystems.match([prefix + "**"])[0].metadata_list
    except Exception:
        return {}
    names: dict[str, bool] = {}
    for m in found:
        name, sep, _ = m.path[len(prefix):].partition("/")
        if name:
            names[name] = names.get(name, False) or bool(sep)
    return dict(sorted(names.items()))


def _first_names(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def prepare_output_dir(path: str, overwrite: bool) -> list[str]:
    """Refuse or clean a non-empty output directory; returns what was removed."""
    if "://" not in path and os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirError(f"--output {path}: exists and is not a directory")
    entries = _entries(path)
    names = list(entries)
    if not names:
        return []
    if not overwrite:
        raise OutputDirError(
            f"--output {path}: directory is not empty ({len(names)} entries: "
            f"{_first_names(names)}); "
            "pass --overwrite to replace a previous alm_beam run's output there, "
            "or choose another --output")
    foreign = [n for n in names if not is_own_output(n, entries[n])]
    if foreign:
        raise OutputDirError(
            f"--output {path}: --overwrite only removes alm_beam's own output, and the "
            f"directory also holds {_first_names(foreign)}; "
            "move those away or choose another --output")
    ordered = sorted(names, key=lambda n: n != "summary.json")  # the success marker goes first
    for name in ordered:
        target = FileSystems.join(path, name)
        if entries[name] and "://" in path:
            target += "/"  # object stores delete a "directory" prefix only with the slash
        FileSystems.delete([target])
    return ordered
