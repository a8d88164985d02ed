"""The workload: cutting a generated manifest into the pieces the runs read.

Pure standard library: the children inherit this process's memory, so
nothing here holds a whole manifest.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from benchmarks.report import MB, say


class Workload(NamedTuple):
    src: str  # the generated manifest (a, b, b2, c, n read it)
    entries: int
    in_bytes: int
    pipeline_src: str  # what the pipeline runs (d) read: src, or with --files a directory
    moved: tuple  # fields the pipeline's output differs in by design (--files: the source file)
    pipeline_train_ignore: tuple  # fields of the training lines not compared with b's


def prepare_workload(args, work: str) -> Workload:
    """Generate the workload with alm_beam.synth (not timed) in ``work``, and cut it
    into ``--files`` manifests for the pipeline runs."""
    from alm_beam import synth

    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    say(f"generating {args.entries} entries (seed {args.seed}) with alm_beam.synth (not timed) ...")
    entries, in_bytes = synth.write_manifest(src, args.entries, args.seed)
    say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB")
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
        moved = ("manifest_filepath",)
        pipeline_train_ignore = ("line", "byte_offset", "window_id") + moved
        say(f"  cut into {args.files} manifests in {pipeline_src} for the pipeline runs")
    return Workload(src, entries, in_bytes, pipeline_src, moved, pipeline_train_ignore)


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
