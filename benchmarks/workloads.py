"""The workload: cutting a generated manifest into the pieces the runs read.

Pure standard library: the children inherit this process's memory, so
nothing here holds a whole manifest.
"""

from __future__ import annotations

import os


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
