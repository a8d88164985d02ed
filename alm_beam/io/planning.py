"""How the input is cut into units of work, before the pipeline is built (pure).

A manifest is read as byte ranges (``discovery.ReadRange``): an uncompressed
file can be cut anywhere, a compressed one is read whole. This module decides
the cuts and groups the ranges into *work units*, the elements the read step
receives.

* Known worker count (the DirectRunner, whose FnApiRunner hands each of its
  ``W`` workers a fixed share of a stage's elements and never rebalances):
  exactly ``W`` units of nearly equal bytes, so that every worker gets the
  same amount of work whatever the file sizes. Big files are cut into pieces
  small enough to even out the units (longest-processing-time packing).
* One worker: files are cut only above 64 MB, as with dynamically
  scheduling runners (a range that starts mid-file cannot number its lines).
* Unknown worker count (Flink, Spark, Dataflow, Prism: they schedule many
  small elements dynamically): one range per unit, pieces of at most
  ``split_bytes``.

A fixed ``input.split_mb`` gives pieces of at most that size in both cases.
Memory does not depend on the plan: a range is streamed line by line.
"""

from __future__ import annotations

import heapq
from typing import Iterable, Optional, Sequence

from alm_beam.io.discovery import ManifestFile, ReadRange

MAX_PIECE_BYTES = 64 << 20  # never a larger range than this (retry granularity)
MIN_PIECE_BYTES = 64 << 10  # a range costs an open and a seek: not finer than this
PIECES_PER_WORKER = 4  # enough pieces for the packing to even out the units


def cut_file(f: ManifestFile, piece_bytes: int) -> list[ReadRange]:
    """Ranges of at most ``piece_bytes`` and nearly equal size (compressed: whole)."""
    if f.compressed or f.size <= piece_bytes:
        return [ReadRange(f.path, 0, -1, f.compressed)]
    count = -(-f.size // piece_bytes)
    step = -(-f.size // count)
    ranges = []
    for start in range(0, f.size, step):
        end = start + step
        ranges.append(ReadRange(f.path, start, -1 if end >= f.size else end, False))
    return ranges


def range_bytes(r: ReadRange, file_size: int) -> int:
    return (file_size if r.end < 0 else r.end) - r.start


def plan_units(
    files: Sequence[ManifestFile], workers: Optional[int], split_bytes: Optional[int] = None
) -> list[tuple[ReadRange, ...]]:
    """The read step's elements: tuples of ranges (see the module doc).

    ``workers``: how many workers share the read statically (None: the runner
    schedules dynamically). ``split_bytes``: a fixed largest piece
    (``input.split_mb``), or None to choose it from the input and the workers.
    """
    files = list(files)
    total = sum(f.size for f in files)
    if split_bytes is not None:
        piece = max(1, split_bytes)
    elif workers and workers > 1:
        piece = -(-total // (workers * PIECES_PER_WORKER)) if total else MAX_PIECE_BYTES
        piece = min(MAX_PIECE_BYTES, max(MIN_PIECE_BYTES, piece))
    else:
        # One worker gains nothing from cuts, and a line read from the middle of
        # a file has no line number (error records then give only its offset).
        piece = MAX_PIECE_BYTES
    sizes = {f.path: f.size for f in files}
    ranges = [r for f in files for r in cut_file(f, piece)]
    if not workers or workers <= 1:
        return [(r,) for r in ranges]
    return [tuple(unit) for unit in pack(ranges, lambda r: range_bytes(r, sizes[r.path]), workers) if unit]


def pack(items: Iterable, weight, bins: int) -> list[list]:
    """Longest-processing-time packing into ``bins`` lists of nearly equal weight.

    Deterministic: ties are broken by the items' order and the bins' index. Each
    bin keeps its items in their original order (files are read front to back).
    """
    indexed = sorted(enumerate(items), key=lambda iw: (-weight(iw[1]), iw[0]))
    heap = [(0, b) for b in range(bins)]
    chosen: list[list] = [[] for _ in range(bins)]
    for index, item in indexed:
        load, b = heapq.heappop(heap)
        chosen[b].append((index, item))
        heapq.heappush(heap, (load + weight(item), b))
    return [[item for _, item in sorted(unit, key=lambda t: t[0])] for unit in chosen]
