"""The timed loops that run in a child process (``python -m benchmarks.bench
--phase ...``): a, the floor, b, the per-entry logic, and x, the CPU-only
control. Each returns its own timing; the child prints it as one JSON object."""

from __future__ import annotations

import array
import time

import orjson


def create_new(path: str):
    """A timed loop's output file, which must not exist yet: opening a previous
    run's multi-GB output with "wb" truncates it inside the timing (on this
    machine's ext4, mounted with discard, 3.1 to 3.2 s off the CPU in a 17 s
    loop over 218 MB of ``short``)."""
    return open(path, "xb", buffering=1 << 20)


def train_path(out: str) -> str:
    """Where the logic phase (b) writes its training lines, beside its output."""
    return out + ".train"


def phase_logic(src: str, out: str, source: str, sizes_path: str) -> dict:
    from alm_beam.core.curate import Curated, curate_line
    from alm_beam.core.params import make_params
    from alm_beam.io.reader import iter_lines

    params = make_params()
    sizes = array.array("I")
    entries = errors = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with (
        open(src, "rb") as fin,
        create_new(out) as fout,
        create_new(train_path(out)) as ftrain,
    ):
        for raw in iter_lines(fin):
            outcome = curate_line(raw.data, source, params, line=raw.line, offset=raw.offset)
            if outcome is None:
                continue
            if type(outcome) is Curated:
                fout.write(outcome.line)
                fout.write(b"\n")
                size = len(outcome.line) + 1
                if outcome.train:  # the training lines, as the pipeline's train shards
                    ftrain.write(outcome.train)
                    ftrain.write(b"\n")
                    size += len(outcome.train) + 1
                sizes.append(size)
                entries += 1
                out_bytes += size
            else:
                errors += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    with open(sizes_path, "wb") as fh:
        sizes.tofile(fh)
    return {"wall": wall, "cpu": cpu, "entries": entries, "errors": errors, "out_bytes": out_bytes}


def phase_floor(src: str, out: str, sizes_path: str) -> dict:
    sizes = array.array("I")
    with open(sizes_path, "rb") as fh:
        sizes.frombytes(fh.read())
    blob = memoryview(b"x" * (max(sizes) if sizes else 1))
    entries = out_bytes = 0
    loads = orjson.loads
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, create_new(out) as fout:
        for line in fin:
            if not line.strip():
                continue
            loads(line)
            size = sizes[entries] if entries < len(sizes) else 0
            fout.write(blob[:size])
            entries += 1
            out_bytes += size
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": entries,
        "errors": 0,
        "out_bytes": out_bytes,
    }


def phase_control(iterations: int) -> dict:
    """x: a fixed pure-Python arithmetic loop, no memory traffic and no I/O. Two of
    these at once against one after the other is what two CPU-bound processes gain
    on this machine at this moment: the ceiling for any two-process run beside it."""
    value = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        value = (value * 1103515245 + 12345) & 0x7FFFFFFF
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": iterations,
        "errors": 0,
        "out_bytes": 0,
        "value": value,
    }
