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
  With a directory the workers share (``plan_shared_units``: the
  DirectRunner's SDK workers on one machine), equal bytes are not equal work,
  so the ``W`` units instead list the same finer pieces, and a worker reads a
  piece only if it claims it first (``claim``): whoever is free takes the
  next one. The pieces are claimed largest first and the last ones taper
  (``taper_range``: a half, a quarter, ... of a piece), so the workers finish
  within a small piece of each other without cutting the whole input finer.
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
import os
from typing import Iterable, NamedTuple, Optional, Sequence

from alm_beam.io.discovery import ManifestFile, ReadRange

MAX_PIECE_BYTES = 64 << 20  # never a larger range than this (retry granularity)
MIN_PIECE_BYTES = 64 << 10  # a range costs an open and a seek: not finer than this
PIECES_PER_WORKER = 4  # enough pieces for the packing to even out the units
SHARED_PIECES_PER_WORKER = 32  # claimed on demand: finer pieces, a shorter wait for the last
TAPER_STEPS = 4  # the last pieces claimed halve this many times: the last is 1/16 of a piece


class SharedRanges(NamedTuple):
    """One worker's unit when the workers share the pieces (``plan_shared_units``).

    Every worker's unit lists the same ``ranges``; a range is read by the
    worker that creates ``claim_dir/<index>`` first. Each worker tries every
    range in turn, so each one is claimed, and O_EXCL lets only one claim it:
    every range is read exactly once, as long as every worker runs its unit to
    the end (the FnApiRunner fails the job if one fails; it never retries a
    bundle, which would find its own claims taken).
    """

    claim_dir: str
    ranges: tuple
    worker: int


def claim(claim_dir: str, index: int) -> bool:
    """True for the one caller that claims range ``index`` (the file's creation is atomic)."""
    try:
        fd = os.open(
            os.path.join(claim_dir, str(index)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
    except FileExistsError:
        return False
    os.close(fd)
    return True


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
    ranges, sizes = _pieces(files, workers, split_bytes, PIECES_PER_WORKER)
    if not workers or workers <= 1:
        return [(r,) for r in ranges]
    return [tuple(unit) for unit in pack(ranges, lambda r: range_bytes(r, sizes[r.path]), workers) if unit]


def _pieces(files: Sequence, workers: Optional[int], split_bytes: Optional[int], per_worker: int):
    """(the ranges the files are cut into, {path: size})."""
    total = sum(f.size for f in files)
    if split_bytes is not None:
        piece = max(1, split_bytes)
    elif workers and workers > 1:
        piece = -(-total // (workers * per_worker)) if total else MAX_PIECE_BYTES
        piece = min(MAX_PIECE_BYTES, max(MIN_PIECE_BYTES, piece))
    else:
        # One worker gains nothing from cuts, and a line read from the middle of
        # a file has no line number (error records then give only its offset).
        piece = MAX_PIECE_BYTES
    return [r for f in files for r in cut_file(f, piece)], {f.path: f.size for f in files}


def plan_shared_units(
    files: Sequence[ManifestFile], workers: int, claim_dir: str, split_bytes: Optional[int] = None
) -> list[SharedRanges]:
    """``workers`` units over the same pieces, claimed on demand (see the module doc).

    The pieces come largest first, so the last ones taken are the small ones.
    ``claim_dir``: an empty directory every worker can write (the run's temp root).
    """
    ranges, sizes = _pieces(list(files), workers, split_bytes, SHARED_PIECES_PER_WORKER)
    ranges = _largest_first(ranges, sizes)
    # Whoever finishes its piece while the other still reads one takes the next:
    # the last claims decide how long one worker waits for the other. Taper the
    # last ``workers`` pieces that already start mid-file (a range from a
    # file's start keeps its line numbers; one from its middle has none to lose).
    tapered, left = [], workers
    for position in range(len(ranges) - 1, -1, -1):
        if left == 0:
            break
        r = ranges[position]
        if r.start > 0 and not r.compressed:
            pieces = taper_range(r, sizes[r.path], MIN_PIECE_BYTES, TAPER_STEPS)
            if len(pieces) > 1:
                tapered.append((position, pieces))
                left -= 1
    for position, pieces in tapered:  # from the back: the positions before stay valid
        ranges[position : position + 1] = pieces
    shared = tuple(_largest_first(ranges, sizes))
    return [SharedRanges(claim_dir, shared, k) for k in range(workers)]


def _largest_first(ranges: Sequence[ReadRange], sizes: dict) -> list[ReadRange]:
    """The claim order: by size, largest first; equal sizes in their given order."""
    order = sorted(range(len(ranges)), key=lambda i: (-range_bytes(ranges[i], sizes[ranges[i].path]), i))
    return [ranges[i] for i in order]


def taper_range(r: ReadRange, file_size: int, min_bytes: int, steps: int) -> list[ReadRange]:
    """``r`` cut into its first half, the next quarter, ... (``steps`` halvings,
    none below ``min_bytes``) and what is left: together exactly ``r``'s bytes."""
    start, end = r.start, range_bytes(r, file_size) + r.start
    pieces = []
    for _ in range(steps):
        half = (end - start) // 2
        if half < min_bytes or end - start - half < min_bytes:
            break
        pieces.append(ReadRange(r.path, start, start + half, r.compressed))
        start += half
    pieces.append(ReadRange(r.path, start, r.end, r.compressed))
    return pieces


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
