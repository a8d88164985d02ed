"""Find manifest files and plan how to read them, before the pipeline is built.

Uses Beam's FileSystems, so local paths, gs://, s3://, hdfs:// ... all work
where the matching Beam extra is installed. Runs in ``run.py`` as part of the
pre-flight checks: "no manifest matched" is reported before any pipeline
exists, and the plan (file byte ranges) is what the pipeline reads.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Iterable, NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

# .jsonl / .json, optionally compressed with any codec Beam detects by suffix.
MANIFEST_NAME = re.compile(r"\.(jsonl|json)(\.(gz|bz2|deflate|zst|zstd|xz|lzma))?$", re.I)
_GLOB_CHARS = re.compile(r"[*?\[]")

DEFAULT_SPLIT_BYTES = 64 << 20


class DiscoveryError(ValueError):
    """No usable manifest for an --input; raised before the pipeline starts."""


class ManifestFile(NamedTuple):
    path: str
    size: int
    compressed: bool


class ReadRange(NamedTuple):
    """Bytes [start, end) of a manifest; lines are owned by the range they start in."""

    path: str
    start: int
    end: int          # -1: to the end of the file (compressed files are read whole)
    compressed: bool


def is_manifest_name(path: str) -> bool:
    return bool(MANIFEST_NAME.search(path))


def _is_compressed(path: str) -> bool:
    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def _match(pattern: str) -> list:
    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # Beam raises BeamIOError for "nothing matched" on some filesystems
        return []
    return list(result.metadata_list)


def _under_directory(path: str) -> list:
    pattern = FileSystems.join(path.rstrip("/"), "**")
    return [m for m in _match(pattern) if is_manifest_name(m.path)]


def _is_local_dir(path: str) -> bool:
    return "://" not in path and os.path.isdir(path)


def discover(inputs: Iterable[str]) -> list[ManifestFile]:
    """Expand every --input (file, directory or glob) into manifest files.

    Directories, and directories matched by a glob, are searched recursively
    for ``.jsonl``/``.json`` (any case, optionally compressed); other files
    there are ignored. A file named explicitly is read whatever its name.
    Order is deterministic and each file appears once.
    """
    found: dict[str, ManifestFile] = {}

    def add(metadata_list):
        for m in sorted(metadata_list, key=lambda m: m.path):
            # Local paths are made absolute: they end up in every output entry
            # (manifest_filepath) and in error records, read long after the run.
            path = m.path if "://" in m.path else os.path.abspath(m.path)
            if path not in found:
                found[path] = ManifestFile(path, m.size_in_bytes, _is_compressed(path))

    inputs = list(inputs)
    if not inputs:
        raise DiscoveryError("no --input given")
    for raw in inputs:
        path = os.path.expanduser(raw)
        if _GLOB_CHARS.search(path):
            matched = _match(path)
            files = [m for m in matched if is_manifest_name(m.path)]
            dirs = [m.path for m in matched if _is_local_dir(m.path)]
            if "://" not in path:  # Beam's local match lists files only
                dirs += [d for d in glob.glob(path) if os.path.isdir(d)]
            for d in sorted(set(dirs)):
                files += _under_directory(d)
            if not files:
                raise DiscoveryError(
                    f"--input {raw!r}: the pattern matched no .jsonl/.json manifest")
            add(files)
            continue
        if _is_local_dir(path):
            files = _under_directory(path)
            if not files:
                raise DiscoveryError(
                    f"--input {raw!r}: directory holds no .jsonl/.json manifest (searched recursively)")
            add(files)
            continue
        exact = [m for m in _match(path) if m.path.rstrip("/") == path.rstrip("/")]
        if exact:
            add(exact)
            continue
        under = _under_directory(path) if "://" in path else []
        if under:  # an object-store "directory" prefix
            add(under)
            continue
        raise DiscoveryError(f"--input {raw!r}: no such file or directory")
    return list(found.values())


def plan_ranges(files: Iterable[ManifestFile], split_bytes: int = DEFAULT_SPLIT_BYTES
                ) -> list[ReadRange]:
    """Cut uncompressed files into byte ranges so big files are read in parallel.

    Compressed files cannot be seeked into and are read whole.
    """
    ranges = []
    for f in files:
        if f.compressed or f.size <= split_bytes:
            ranges.append(ReadRange(f.path, 0, -1, f.compressed))
            continue
        for start in range(0, f.size, split_bytes):
            end = min(start + split_bytes, f.size)
            ranges.append(ReadRange(f.path, start, -1 if end >= f.size else end, False))
    return ranges
