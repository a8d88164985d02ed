"""The workload: cutting a generated manifest into the pieces the runs read.

Pure standard library: the children inherit this process's memory, so
nothing here holds a whole manifest.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

from benchmarks.report import MB, say


class Shape(NamedTuple):
    name: str
    what: str  # what its entries look like
    synth: dict  # alm_beam.synth's options for it
    scale: float  # entries per --entries: every shape about as many bytes as the default


SHAPES = {
    shape.name: shape
    for shape in (
        Shape(
            "default",
            "3-6 minute conversations, word timings on 99 % of segments (about 36 KB an entry)",
            {},
            1.0,
        ),
        Shape(
            "long",
            "30-60 minute conversations, word timings on 10 % of segments (about 120 KB an entry)",
            {"min_minutes": 30.0, "max_minutes": 60.0, "words_rate": 0.1},
            0.3,
        ),
        Shape(
            "short",
            "3-6 minute conversations, word timings on 10 % of segments (about 12 KB an entry)",
            {"words_rate": 0.1},
            3.0,
        ),
        Shape(
            "words",
            "3-6 minute conversations, word timings on every segment (about 36 KB an entry)",
            {"words_rate": 1.0},
            1.0,
        ),
        Shape(
            "tiny",
            "0.5-2.5 minute conversations (no window or one each), word timings on 10 % of "
            "segments (about 4 KB an entry)",
            {"min_minutes": 0.5, "max_minutes": 2.5, "words_rate": 0.1},
            9.0,
        ),
    )
}
ALL_SHAPES = ("long", "short", "words", "tiny")  # --shape all


def parse_shapes(text: str) -> tuple:
    """``--shape``: one name, several separated by commas, or ``all``."""
    names = ALL_SHAPES if text == "all" else tuple(dict.fromkeys(p.strip() for p in text.split(",")))
    unknown = [name for name in names if name not in SHAPES]
    if unknown or not names:
        raise ValueError(
            f"unknown shape {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(SHAPES)}, or all ({', '.join(ALL_SHAPES)})"
        )
    return names


def parse_shape_count(text: str) -> tuple:
    """``--entries-of SHAPE=N``: ``(SHAPE, N)``."""
    name, sep, count = text.partition("=")
    name = name.strip()
    if not sep or name not in SHAPES:
        raise ValueError(f"expected SHAPE=N with SHAPE one of {', '.join(SHAPES)}, got {text!r}")
    try:
        entries = int(count)
    except ValueError:
        entries = 0
    if entries < 1:
        raise ValueError(f"{text!r}: N must be a whole number >= 1")
    return name, entries


def shape_entries(shape: Shape, entries: int) -> int:
    """How many entries of ``shape`` make about the bytes of ``entries`` default ones."""
    return max(1, round(entries * shape.scale))


class Workload(NamedTuple):
    shape: Shape
    src: str  # the generated manifest (a, b, b2, c, n read it)
    entries: int
    in_bytes: int
    pipeline_src: str  # what the pipeline runs (d) read: src, or with --files a directory
    moved: tuple  # fields the pipeline's output differs in by design (--files: the source file)
    pipeline_train_ignore: tuple  # fields of the training lines not compared with b's
    many_src: str = ""  # --many-files: the directory of K manifests d1m and d2m read


MANY_MOVED = ("manifest_filepath",)
# A manifest of its own per piece: where a line sits in its file, and the ids
# made from it, differ from b's too.
MANY_TRAIN_IGNORE = ("line", "byte_offset", "window_id") + MANY_MOVED


def write_shape(src: str, shape: Shape, entries: int, seed: int, count: Optional[int] = None) -> tuple:
    """Write ``shape``'s manifest of ``count`` entries (default:
    ``shape_entries(shape, entries)``) with alm_beam.synth (not timed); returns
    (entries, bytes)."""
    from alm_beam import synth

    count = count or shape_entries(shape, entries)
    say(f"generating {count} entries of shape {shape.name} (seed {seed}) with alm_beam.synth (not timed) ...")
    return synth.write_manifest(src, count, seed, **shape.synth)


def prepare_workload(args, work: str, shape: Shape) -> Workload:
    """Generate the workload in ``work``, and cut it into ``--files`` manifests
    for the pipeline runs."""
    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    count = getattr(args, "entries_of", {}).get(shape.name)
    entries, in_bytes = write_shape(src, shape, args.entries, args.seed, count)
    say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB ({shape.what})")
    # --files K: the pipeline runs read K manifests (the same lines, cut in K);
    # their output then names K source files, so manifest_filepath (and in the
    # training lines where a line sits in its file) is left out of the comparison.
    pipeline_src, moved = src, ()
    # A pipeline reading byte ranges does not know the line number in the middle
    # of one (null): the training lines' `line` is not compared.
    pipeline_train_ignore = ("line",)
    if args.files > 1:
        pipeline_src = os.path.join(work, "manifests")
        split_into_files(src, pipeline_src, args.files)
        moved, pipeline_train_ignore = MANY_MOVED, MANY_TRAIN_IGNORE
        say(f"  cut into {args.files} manifests in {pipeline_src} for the pipeline runs")
    many_src = ""
    if args.many_files:
        many_src = os.path.join(work, "many")
        split_into_files(src, many_src, args.many_files)
        say(f"  cut into {args.many_files} manifests in {many_src} for d1m and d2m")
    return Workload(shape, src, entries, in_bytes, pipeline_src, moved, pipeline_train_ignore, many_src)


def copy_first_lines(src: str, dst: str, count: int) -> int:
    """Write the first ``count`` lines of ``src`` to ``dst``; returns the bytes written."""
    written = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for _ in range(count):
            line = fin.readline()
            written += len(line)
            fout.write(line)
    return written


def split_into_files(src: str, directory: str, count: int) -> list:
    """Cut ``src`` into ``count`` manifests of consecutive lines (as equal in lines
    as can be) in ``directory``; returns their paths. ``--files``: the pipeline
    runs read many manifests instead of one."""
    # Streamed, never held whole: the bench's own RSS is inherited by the
    # children it forks, and would show in their ru_maxrss.
    with open(src, "rb") as fh:
        total = sum(1 for _ in fh)
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"part-{index:05d}.jsonl") for index in range(count)]
    with open(src, "rb") as fh:
        for index, path in enumerate(paths):
            with open(path, "wb") as out:
                for _ in range(total * (index + 1) // count - total * index // count):
                    out.write(fh.readline())
    return paths


def split_in_halves(src: str, first: str, second: str) -> None:
    """Write the lines of ``src`` to two files of about half its bytes each."""
    half = os.path.getsize(src) / 2
    written = 0
    with open(src, "rb") as fin, open(first, "wb") as f1, open(second, "wb") as f2:
        for line in fin:
            (f1 if written < half else f2).write(line)
            written += len(line)
