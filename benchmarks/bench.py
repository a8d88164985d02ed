"""Benchmark: the curation logic and the whole pipeline on one synthetic workload.

``python -m benchmarks.bench`` generates a manifest with ``alm_beam.synth``
(not timed) and runs, each in its own child process so that every peak RSS is
that run's own:

  a. floor      read every line, ``orjson.loads`` it, write as many bytes as
                the real output line has (sizes taken from run b);
  b. logic      ``alm_beam.core.curate.curate_line`` over every line, output lines
                written to a file;
  b2. logic x2  the same in two processes started together, each on half of
                the manifest: how much two processes doing this work gain on
                this machine, Beam left out (the ceiling for d2 vs d1);
  c. reference  ``literal_spec.literal_build`` + ``literal_filter`` +
                ``orjson.dumps`` per line (the stand-in for NeMo Curator's
                per-entry logic);
  n. NeMo      NeMo Curator's own ``ALMDataBuilderStage`` and
                ``ALMDataOverlapStage`` (``--reference nemo``; in the venv that
                ``pipelines/nemo-reference.sh`` installs), one entry at a time
                with orjson I/O; its output must equal b's but for
                ``manifest_filepath``, which NeMo Curator leaves null;
  d1. pipeline  ``python -m alm_beam.run`` as a user runs it, DirectRunner,
                1 worker (``--compact`` adds d1c, the same with ``--compact``);
  d2. pipeline  the same with ``--direct_num_workers 2
                --direct_running_mode multi_processing``.

For a-c the time is the timed loop inside the child (interpreter start and
imports excluded); for d it is the whole child process, Beam's start-up and
shutdown included. d1 and d2 run once more on the first quarter of the
manifest, so that the fixed start-up cost can be told apart from the
per-entry cost. For d1 and d2 the report also gives the time at which each
windows shard was last written (one shard per worker's curate bundle): how
far apart two workers finished, and how long the serial tail after the last
one took. Before every run the dirty pages of the previous one are
flushed (``os.sync``, not timed): the output is ~6x the input, and a run that
starts with another's half-gigabyte still unwritten gets its writes throttled
to disk speed. Outputs (and, apart from c, which has none, the training
lines: b's beside its output, the pipeline's train shards) are compared with
b's as multisets of lines (sorted
digests; parsed and compared by value only if the bytes differ). With
``--repeat K`` every run is made K times and the fastest kept; d1 and d2
alternate (d1, d2, d1, d2, ...) so that a drift in the machine's speed
touches both alike.

``--instructions`` counts CPU instructions instead of seconds (under
valgrind's callgrind; slow, so on a small workload): each of a, b, c and d1
runs on the first tenth of the workload and on all of it, and the difference
divided by the difference in entries is that run's instructions per entry,
start-up and imports cancelled out. Instruction counts do not depend on what
else the machine is doing, so their ratios are the noise-free view of the
per-entry work (they do not see memory stalls or the kernel's share of writes).

``--memory`` runs the memory checks instead: a single 10-hour conversation and
a ~1 GB manifest against one 4x smaller, each through the whole pipeline with
one worker, to show that memory does not grow with the input.

Pure standard library + orjson in this process; Beam runs only in the children.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import glob
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import NamedTuple, Optional, Sequence

import orjson

MB = 1_000_000  # throughput unit (input/output MB/s)
MIB = 1 << 20  # memory unit
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

DEFAULT_ENTRIES = 2000


def train_path(out: str) -> str:
    """Where the logic phase (b) writes its training lines, beside its output."""
    return out + ".train"


# --------------------------------------------------------------------------
# Child phases (a, b, c): run as ``python -m benchmarks.bench --phase ...``.
# Each prints one JSON object with its own timing on stdout.


def _phase_logic(src: str, out: str, source: str, sizes_path: str) -> dict:
    from alm_beam.core.curate import Curated, curate_line
    from alm_beam.core.params import make_params
    from alm_beam.io.reader import iter_lines

    params = make_params()
    sizes = array.array("I")
    entries = errors = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with (
        open(src, "rb") as fin,
        open(out, "wb", buffering=1 << 20) as fout,
        open(train_path(out), "wb", buffering=1 << 20) as ftrain,
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


# The steps of curate_line, by the name the product calls them under in
# alm_beam.core.curate; ``--profile`` times each by wrapping that name, so the
# code profiled is the product's own, not a copy of it.
PROFILE_STEPS = (
    ("parse", "parse_line_exact", "parse: orjson.loads (+ exact big ints)"),
    ("validate", "validate_entry", "validate"),
    ("build", "build_windows_serialized", "build windows (windows pre-serialized)"),
    ("filter", "filter_overlaps", "overlap filter"),
    ("record", "entry_record", "per-entry statistics record"),
    ("training", "training_lines", "training-manifest lines"),
)
PROFILE_ROWS = (
    (("read", "read lines (reader.iter_lines)"),)
    + tuple((key, label) for key, _, label in PROFILE_STEPS)
    + (
        ("serialize", "serialize the output entry (orjson.dumps)"),
        ("write", "write output and training lines"),
    )
)


def _phase_profile(src: str, out: str, source: str) -> dict:
    """Run b's loop (curate_line over every line, written to a file) with a
    timer around every step of curate_line; returns seconds per step. The
    cyclic collector is set as in the pipeline's curate worker, so the steps
    cost what they cost there."""
    import gc
    import types

    from alm_beam.beam.transforms import GC_GEN0_THRESHOLD
    from alm_beam.core import curate
    from alm_beam.core.curate import Curated, curate_line
    from alm_beam.core.params import make_params
    from alm_beam.io.reader import iter_lines

    clock = time.perf_counter
    spent = {key: 0.0 for key, _ in PROFILE_ROWS}

    def timed(key, func):
        def wrapper(*args, **kwargs):
            started = clock()
            try:
                return func(*args, **kwargs)
            finally:
                spent[key] += clock() - started

        return wrapper

    for key, name, _ in PROFILE_STEPS:
        setattr(curate, name, timed(key, getattr(curate, name)))
    curate.orjson = types.SimpleNamespace(
        loads=orjson.loads,
        dumps=timed("serialize", orjson.dumps),
        Fragment=orjson.Fragment,
        JSONDecodeError=orjson.JSONDecodeError,
        JSONEncodeError=orjson.JSONEncodeError,
        OPT_PASSTHROUGH_SUBCLASS=orjson.OPT_PASSTHROUGH_SUBCLASS,
    )
    params = make_params()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), gen1, gen2)  # as _CurateFn.setup
    entries = errors = 0
    wall0, cpu0 = clock(), time.process_time()
    with (
        open(src, "rb") as fin,
        open(out, "wb", buffering=1 << 20) as fout,
        open(train_path(out), "wb", buffering=1 << 20) as ftrain,
    ):
        lines = iter_lines(fin)
        while True:
            started = clock()
            raw = next(lines, None)
            spent["read"] += clock() - started
            if raw is None:
                break
            outcome = curate_line(raw.data, source, params, line=raw.line, offset=raw.offset)
            if outcome is None:
                continue
            if type(outcome) is Curated:
                started = clock()
                fout.write(outcome.line)
                fout.write(b"\n")
                if outcome.train:
                    ftrain.write(outcome.train)
                    ftrain.write(b"\n")
                spent["write"] += clock() - started
                entries += 1
            else:
                errors += 1
        started = clock()
    spent["write"] += clock() - started  # the buffered writers' last flush (the with's exit)
    wall, cpu = clock() - wall0, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "entries": entries, "errors": errors, "spent": spent}


def _phase_startup(run_args: Sequence[str]) -> dict:
    """``alm_beam.run.main(run_args)`` in this process, with the time at which
    each part of a run starts and ends: importing Beam, building the graph,
    the runner's set-up (proto, optimisation), its stages, the commit."""
    clock, t0 = time.perf_counter, time.perf_counter()
    marks = []

    def mark(name):
        marks.append((name, clock() - t0))

    import apache_beam  # noqa: F401

    mark("import apache_beam")
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    from alm_beam import run
    from alm_beam.beam import pipeline
    from alm_beam.io import output_dir

    mark("import alm_beam")

    def traced(owner, name, label):
        func = getattr(owner, name)

        def wrapper(*args, **kwargs):
            mark(f"{label} start")
            try:
                return func(*args, **kwargs)
            finally:
                mark(f"{label} end")

        setattr(owner, name, wrapper)

    traced(pipeline, "build_pipeline", "build graph")
    traced(fn_runner.FnApiRunner, "run_pipeline", "runner")
    traced(fn_runner.FnApiRunner, "run_stages", "stages")
    traced(output_dir.OutputRun, "commit", "commit")
    code = run.main(list(run_args))
    mark("main returned")
    return {"code": code, "marks": marks}


def startup_parts(marks: Sequence) -> list:
    """``[(label, seconds)]`` of a run's start-up trace (``_phase_startup``'s marks)."""
    at = dict(marks)
    spans = [
        ("import apache_beam", 0.0, at["import apache_beam"]),
        ("import alm_beam and the runner", at["import apache_beam"], at["import alm_beam"]),
        (
            "parse flags, find input, take the output directory",
            at["import alm_beam"],
            at["build graph start"],
        ),
        ("build the graph (build_pipeline)", at["build graph start"], at["build graph end"]),
        ("runner set-up: Runner API proto, stage fusion", at["runner start"], at["stages start"]),
        ("run the stages (the 40 entries and every sink)", at["stages start"], at["stages end"]),
        ("commit the result", at["commit start"], at["commit end"]),
        ("print the summary", at["commit end"], at["main returned"]),
    ]
    return [(label, end - start) for label, start, end in spans]


def _phase_reference(src: str, out: str, source: str) -> dict:
    from alm_beam.core.params import make_params
    from alm_beam.io.reader import iter_lines
    from tests.literal_spec import literal_build, literal_filter

    params = make_params()
    entries = errors = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, open(out, "wb", buffering=1 << 20) as fout:
        for raw in iter_lines(fin):
            if not raw.data.strip():
                continue
            try:
                entry = orjson.loads(raw.data)
                line = orjson.dumps(
                    literal_filter(literal_build(entry, params.builder), params.overlap, source)
                )
            except Exception:  # the reference has no error path; count, go on
                errors += 1
                continue
            fout.write(line)
            fout.write(b"\n")
            entries += 1
            out_bytes += len(line) + 1
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": entries,
        "errors": errors,
        "out_bytes": out_bytes,
    }


NEMO_STAGE_FILES = ("alm_data_builder", "alm_data_overlap")


def nemo_stage_modules():
    """NeMo Curator's two ALM stage modules, loaded from the installed wheel's files.

    The package ``nemo_curator.stages.audio.alm`` also imports the pretraining
    stages (torch, ...); loading the two files by path needs only the core
    import chain that ``pipelines/nemo-reference.sh`` installs. Returns
    ``(builder_module, overlap_module, {file: sha256})``.
    """
    import importlib.util

    import nemo_curator

    alm = os.path.join(os.path.dirname(nemo_curator.__file__), "stages", "audio", "alm")
    modules, digests = [], {}
    for name in NEMO_STAGE_FILES:
        path = os.path.join(alm, name + ".py")
        with open(path, "rb") as fh:
            digests[name + ".py"] = hashlib.sha256(fh.read()).hexdigest()
        spec = importlib.util.spec_from_file_location(f"nemo_alm_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1], digests


def _phase_nemo(src: str, out: str) -> dict:
    """NeMo Curator's own ALMDataBuilderStage + ALMDataOverlapStage, one entry at a
    time (as its Ray pipeline calls them), with orjson I/O. Runs in the reference
    venv; parameters are alm_beam's defaults (the tutorial's), passed the way the
    stages take them."""
    import nemo_curator
    from nemo_curator.tasks import AudioTask

    from alm_beam.core.params import make_params

    builder_mod, overlap_mod, digests = nemo_stage_modules()
    p = make_params()
    b, o = p.builder, p.overlap
    builder = builder_mod.ALMDataBuilderStage(
        target_window_duration=b.target_window_duration,
        tolerance=b.tolerance,
        min_bandwidth=b.min_bandwidth,
        min_sample_rate=b.min_sample_rate,
        min_speakers=b.min_speakers,
        max_speakers=b.max_speakers,
        truncation=b.truncation,
        drop_fields=",".join(b.drop_fields),
        drop_fields_top_level=",".join(b.drop_fields_top_level),
    )
    overlap = overlap_mod.ALMDataOverlapStage(
        overlap_percentage=o.overlap_percentage, target_duration=o.target_duration
    )
    entries = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, open(out, "wb", buffering=1 << 20) as fout:
        for line in fin:
            if not line.strip():
                continue
            task = overlap.process(builder.process(AudioTask(data=orjson.loads(line))))
            data = orjson.dumps(dict(task.data))
            fout.write(data)
            fout.write(b"\n")
            entries += 1
            out_bytes += len(data) + 1
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": entries,
        "errors": 0,
        "out_bytes": out_bytes,
        "nemo_curator": nemo_curator.__version__,
        "stage_sha256": digests,
    }


def _phase_floor(src: str, out: str, sizes_path: str) -> dict:
    sizes = array.array("I")
    with open(sizes_path, "rb") as fh:
        sizes.frombytes(fh.read())
    blob = memoryview(b"x" * (max(sizes) if sizes else 1))
    entries = out_bytes = 0
    loads = orjson.loads
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, open(out, "wb", buffering=1 << 20) as fout:
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


# --------------------------------------------------------------------------
# Measuring a child process: wall, CPU and memory of its whole process tree.


class TreeSampler(threading.Thread):
    """Polls /proc for the RSS of a process and all its descendants.

    ``os.wait4`` reports the largest single process of the tree (ru_maxrss);
    in multi_processing mode the SDK workers are grandchildren running at the
    same time as the runner, so the tree's summed RSS is sampled here too
    (it counts shared pages once per process), with the summed PSS (shared
    pages split between the processes that map them) read whenever the RSS
    sum reaches a new peak.
    """

    def __init__(self, root: int, interval: float):
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_rss = 0
        self.pss_at_peak = 0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()

    def _tree(self) -> list:
        children: dict = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
        tree, stack = [], [self.root]
        while stack:
            pid = stack.pop()
            tree.append(pid)
            stack.extend(children.get(pid, ()))
        return tree

    def sample(self):
        try:
            tree = self._tree()
        except OSError:
            return
        rss = 0
        alive = []
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm", "rb") as fh:
                    rss += int(fh.read().split()[1]) * PAGE
                alive.append(pid)
            except (OSError, IndexError, ValueError):
                continue
        self.max_procs = max(self.max_procs, len(alive))
        if rss > self.peak_rss:
            self.peak_rss = rss
            self.pss_at_peak = sum(_pss(pid) for pid in alive)


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class ChildRun(NamedTuple):
    wall: float  # whole child process, start-up included
    cpu: float  # user + sys of the child and every descendant it reaped
    maxrss: int  # bytes; largest single process of the tree (wait4)
    tree_rss: int  # bytes; sampled peak of the tree's summed RSS
    tree_pss: int  # bytes; the tree's summed PSS at that peak
    procs: int  # most processes seen in the tree at once
    other_cpu: float  # CPU seconds the rest of the machine used meanwhile
    stdout: bytes
    started: float  # time.time() at the start (output files' mtimes are compared with it)


def _machine_busy_seconds() -> Optional[float]:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = sum(int(fields[k]) for k in (1, 2, 3, 6, 7, 8))
    return busy / os.sysconf("SC_CLK_TCK")


def _other_cpu(busy0: Optional[float], busy1: Optional[float], ours: float) -> float:
    """CPU seconds the rest of the machine used between two /proc/stat readings."""
    if busy0 is None or busy1 is None:
        return math.nan
    return max(0.0, (busy1 - busy0) - ours)


def _child_failed(name: str, cmd: Sequence[str], code: int, err_path: str) -> RuntimeError:
    with open(err_path, "rb") as fh:
        tail = fh.read()[-3000:].decode("utf-8", "replace")
    return RuntimeError(f"{name} failed with exit status {code}:\n  {shlex.join(cmd)}\n{tail}")


def run_child(cmd: Sequence[str], log_dir: str, name: str, poll: float) -> ChildRun:
    out_path = os.path.join(log_dir, f"{name}.stdout")
    err_path = os.path.join(log_dir, f"{name}.stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy0, own0 = _machine_busy_seconds(), time.process_time()
        started = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid, poll)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        busy1, own1 = _machine_busy_seconds(), time.process_time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as fh:
        stdout = fh.read()
    if proc.returncode != 0:
        raise _child_failed(name, cmd, proc.returncode, err_path)
    cpu = usage.ru_utime + usage.ru_stime
    other = _other_cpu(busy0, busy1, cpu + own1 - own0)
    return ChildRun(
        wall,
        cpu,
        usage.ru_maxrss * 1024,
        sampler.peak_rss,
        sampler.pss_at_peak,
        sampler.max_procs,
        other,
        stdout,
        started,
    )


def run_children_together(cmds: Sequence[Sequence[str]], log_dir: str, name: str) -> tuple:
    """Start every command at once, wait for all of them.

    Returns (each child's JSON line from stdout, each child's ru_maxrss in
    bytes, the CPU seconds the rest of the machine used meanwhile, the time
    until the last one ended).
    """
    busy0, own0 = _machine_busy_seconds(), time.process_time()
    start = time.perf_counter()
    running = []
    for i, cmd in enumerate(cmds):
        out_path = os.path.join(log_dir, f"{name}_{i}.stdout")
        err_path = os.path.join(log_dir, f"{name}_{i}.stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            running.append((subprocess.Popen(list(cmd), stdout=out, stderr=err), cmd, out_path, err_path))
    docs, maxrss, cpu = [], [], 0.0
    for proc, cmd, out_path, err_path in running:
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise _child_failed(name, cmd, code, err_path)
        with open(out_path, "rb") as fh:
            docs.append(json.loads(fh.read()))
        maxrss.append(usage.ru_maxrss * 1024)
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - start
    busy1, own1 = _machine_busy_seconds(), time.process_time()
    return docs, maxrss, _other_cpu(busy0, busy1, cpu + own1 - own0), wall


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


def best_of(repeat: int, run) -> ChildRun:
    """The run with the shortest measured time out of ``repeat``."""
    best = None
    for _ in range(repeat):
        child, seconds = run()
        if best is None or seconds < best[1]:
            best = (child, seconds)
    return best[0]


# --------------------------------------------------------------------------
# Results.


class Result(NamedTuple):
    key: str
    label: str
    wall: float  # timed seconds (a-c: the loop; d: the whole process)
    cpu: float
    entries: int
    in_bytes: int
    out_bytes: int
    maxrss: int
    tree_rss: int
    tree_pss: int
    procs: int
    other_cpu: float  # CPU seconds other processes on the machine used during the run
    proc_wall: float  # the child process's whole life (the span other_cpu is measured over)

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.wall if self.wall else math.inf

    @property
    def rate_text(self) -> str:
        rate = self.entries_per_s
        return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"

    def mb_per_s(self, size: int) -> float:
        return size / MB / self.wall if self.wall else math.inf


def _phase_result(key, label, child: ChildRun, in_bytes: int) -> Result:
    doc = json.loads(child.stdout)
    return Result(
        key,
        label,
        doc["wall"],
        doc["cpu"],
        doc["entries"],
        in_bytes,
        doc["out_bytes"],
        child.maxrss,
        child.tree_rss,
        child.tree_pss,
        child.procs,
        child.other_cpu,
        child.wall,
    )


def _output_files(out_dir: str, prefix: str) -> list:
    return sorted(glob.glob(os.path.join(out_dir, f"{prefix}-*.jsonl")))


def shard_finish_times(out_dir: str, started: float) -> list:
    """Seconds after ``started`` at which each windows shard was last written,
    earliest first.

    With ``num_shards: 0`` each bundle of the curate stage writes one shard and
    its last write is the bundle's end; on the DirectRunner each worker runs
    one such bundle. So the spread of these times is how long one worker sat
    idle waiting for the other, and the run's end minus the last of them is
    the serial tail (the sinks' finalize steps, the summary, exit).
    """
    return sorted(os.stat(path).st_mtime - started for path in _output_files(out_dir, "windows"))


def describe_shard_times(times: Sequence[float], wall: float) -> str:
    if not times:
        return "no windows shard written"
    at = ", ".join(f"{t:.2f}" for t in times)
    text = f"windows shard{'s' if len(times) > 1 else ''} last written at {at} s of the run's {wall:.2f} s"
    if len(times) > 1:
        text += f"; the first finished {times[-1] - times[0]:.2f} s before the last"
    return text + f"; {wall - times[-1]:.2f} s from the last write to the process's exit"


def _count_lines(paths: Sequence[str]) -> int:
    count = 0
    for path in paths:
        with open(path, "rb") as fh:
            count += sum(1 for line in fh if line.strip())
    return count


def _pipeline_result(key, label, child: ChildRun, out_dir: str, in_bytes: int) -> Result:
    files = (
        _output_files(out_dir, "windows") + _output_files(out_dir, "errors") + _output_files(out_dir, "train")
    )
    with open(os.path.join(out_dir, "summary.json"), "rb") as fh:
        summary = json.loads(fh.read())
    return Result(
        key,
        label,
        child.wall,
        child.cpu,
        summary["entries_read"],
        in_bytes,
        sum(os.path.getsize(f) for f in files),
        child.maxrss,
        child.tree_rss,
        child.tree_pss,
        child.procs,
        child.other_cpu,
        child.wall,
    )


# --------------------------------------------------------------------------
# Output comparison: the same multiset of lines.


def _digests(paths: Sequence[str], canonical: bool, ignore: Sequence[str] = ()) -> list:
    """Sorted 16-byte digests of every non-blank line (parsed and re-serialized
    with sorted keys when ``canonical``: compares values and types, not layout;
    top-level keys in ``ignore`` left out)."""
    out = []
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                if canonical:
                    value = orjson.loads(line)
                    for key in ignore:
                        value.pop(key, None)
                    line = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                out.append(hashlib.blake2b(line, digest_size=16).digest())
    out.sort()
    return out


def without_fields(*paths: str):
    """A transform for ``compare_values``: drops dotted fields (``stats.x``) from an entry."""

    def transform(entry):
        for path in paths:
            *parents, last = path.split(".")
            target = entry
            for key in parents:
                target = target.get(key) if isinstance(target, dict) else None
            if isinstance(target, dict):
                target.pop(last, None)
        return entry

    return transform


def compare_values(expected: Sequence[str], got: Sequence[str], transform) -> str:
    """'same values' when the two multisets of parsed lines agree once ``transform``
    has been applied to every line on both sides (for an output that differs from
    b's by design: NeMo Curator's null manifest_filepath, --compact's dropped lists)."""

    def digests(paths):
        out = []
        for path in paths:
            with open(path, "rb") as fh:
                for line in fh:
                    if line.strip():
                        value = orjson.dumps(transform(orjson.loads(line)), option=orjson.OPT_SORT_KEYS)
                        out.append(hashlib.blake2b(value, digest_size=16).digest())
        return sorted(out)

    want, have = digests(expected), digests(got)
    if want == have:
        return "same values"
    return (
        f"DIFFERENT: {len(want)} vs {len(have)} lines, {len(set(want) - set(have))} "
        f"expected lines missing, {len(set(have) - set(want))} unexpected"
    )


def compare_outputs(
    expected_digests: list, expected: Sequence[str], got: Sequence[str], ignore: Sequence[str] = ()
) -> str:
    """'identical' (the same bytes, line for line), 'same values' (the same parsed
    values and types, laid out differently, or differing only in the top-level
    keys ``ignore``) or what differs. Line order is not compared: both sides are
    multisets."""
    if expected_digests == _digests(got, False):
        return "identical"
    want, have = _digests(expected, True, ignore), _digests(got, True, ignore)
    if want == have:
        if ignore:
            return f"same values apart from {', '.join(ignore)}"
        return "same values (key order or number layout differs)"
    missing = len(set(want) - set(have))
    extra = len(set(have) - set(want))
    return (
        f"DIFFERENT: {len(want)} vs {len(have)} lines, {missing} expected lines missing, {extra} unexpected"
    )


# --------------------------------------------------------------------------
# Reporting.


def _fmt_mib(value: int) -> str:
    return f"{value / MIB:,.0f}" if value else "-"


def markdown_table(results: Sequence[Result]) -> str:
    rows = [
        "| run | wall s | CPU s | entries/s | input MB/s | output MB/s "
        "| peak RSS MiB (largest process) | peak RSS MiB (process tree, summed) "
        "| other processes' CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows.append(
            f"| {r.label} | {r.wall:.2f} | {r.cpu:.2f} | {r.rate_text} "
            f"| {r.mb_per_s(r.in_bytes):.1f} | {r.mb_per_s(r.out_bytes):.1f} "
            f"| {_fmt_mib(r.maxrss)} | {_fmt_mib(r.tree_rss)} | {r.other_cpu:.1f} |"
        )
    return "\n".join(rows)


def _break_even(
    target: float, slow_entry: float, slow_fixed: float, fast_entry: float, fast_fixed: float
) -> str:
    """Smallest N with (slow_fixed + N slow_entry) >= target (fast_fixed + N fast_entry)."""
    gain = slow_entry - target * fast_entry
    if gain <= 0:
        return "no input size (the per-entry costs alone do not allow it)"
    n = max(0.0, (target * fast_fixed - slow_fixed) / gain)
    return (
        f"about {math.ceil(n):,} entries of this workload (extrapolated; the disk's write "
        "speed is not modelled)"
    )


def _ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.2f}x" if fast > 0 else "n/a"


def _environment() -> str:
    try:
        load = os.getloadavg()
        load_text = f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    except OSError:
        load_text = "load average n/a"
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, {load_text}"
    )


# --------------------------------------------------------------------------
# The two modes.


def _bench_cmd(args, phase: str, src: str, out: str, source: str = "", sizes: str = "") -> list:
    cmd = [
        args.python,
        "-m",
        "benchmarks.bench",
        "--phase",
        phase,
        "--phase-input",
        src,
        "--phase-output",
        out,
    ]
    if source:
        cmd += ["--phase-source", source]
    if sizes:
        cmd += ["--phase-sizes", sizes]
    return cmd


def pipeline_cmd(python: str, src: str, out_dir: str, workers: int, split_mb: Optional[float]) -> list:
    cmd = [python, "-m", "alm_beam.run", "--input", src, "--output", out_dir]
    if split_mb is not None:
        cmd += ["--set", f"input.split_mb={split_mb!r}"]
    cmd += ["--direct_num_workers", str(workers)]
    if workers > 1:
        cmd += ["--direct_running_mode", "multi_processing"]
    return cmd


def _run_info(out_dir: str) -> dict:
    """The ``run`` section of a pipeline run's summary.json (runner, reshuffle, ranges)."""
    try:
        with open(os.path.join(out_dir, "summary.json"), "rb") as fh:
            return json.loads(fh.read()).get("run", {})
    except (OSError, ValueError):
        return {}


def _read_ranges(out_dir: str) -> Optional[int]:
    return _run_info(out_dir).get("read_ranges")


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_default(args, work: str, argv: Sequence[str]) -> int:
    from alm_beam import synth

    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    started = _environment()
    _say(f"alm_beam bench: {started}")
    _say(f"generating {args.entries} entries (seed {args.seed}) with alm_beam.synth (not timed) ...")
    entries, in_bytes = synth.write_manifest(src, args.entries, args.seed)
    _say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    results = {}
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
        _say(f"  cut into {args.files} manifests in {pipeline_src} for the pipeline runs")

    digests, checks = {}, {}

    def settle():
        # Each run writes as much output as the last one: flush the dirty pages
        # first, or the kernel throttles the next run's writes to disk speed.
        os.sync()

    def collect(key, paths, compare=True, train=None):
        """Compare a run's output (and its training lines, ``train``) with b's (not
        timed), then drop them unless --keep."""
        if key == "b":
            digests["b"] = _digests(paths, False)
            digests["b train"] = _digests(train, False)
            return  # kept until the end: the reference for the others
        if compare:
            in_pipeline = key.startswith("d")
            checks[key] = compare_outputs(digests["b"], [out_b], paths, moved if in_pipeline else ())
            if train is not None:
                # b2's second half is a file of its own, so its byte offsets, and
                # the ids made from them, differ too.
                ignore = pipeline_train_ignore if in_pipeline else ("line", "byte_offset", "window_id")
                checks[f"{key} train"] = compare_outputs(
                    digests["b train"], [train_path(out_b)], train, ignore
                )
        if not args.keep:
            for path in paths + (train or []):
                os.remove(path)

    def phase(key, label, phase_name, out, **kw):
        _say(f"running {label} ...")

        def once():
            settle()
            child = run_child(_bench_cmd(args, phase_name, src, out, **kw), logs, key, args.poll)
            return child, json.loads(child.stdout)["wall"]

        results[key] = _phase_result(key, label, best_of(args.repeat, once), in_bytes)
        return results[key]

    sizes = os.path.join(work, "b.sizes")
    out_b = os.path.join(work, "b.jsonl")
    out_c = os.path.join(work, "c.jsonl")
    phase("b", "b. logic: curate_line, 1 process", "logic", out_b, source=src, sizes=sizes)
    collect("b", [out_b], train=[train_path(out_b)])
    phase("a", "a. floor: read + orjson.loads + write", "floor", os.path.join(work, "a.out"), sizes=sizes)
    collect("a", [os.path.join(work, "a.out")], compare=False)

    # b2: the same logic in two processes at once, each on half the input:
    # what this machine gives two processes doing this work, whatever Beam
    # does (the ceiling for d2 vs d1).
    halves = [os.path.join(work, f"half{i}.jsonl") for i in (0, 1)]
    split_in_halves(src, *halves)
    outs_b2 = [os.path.join(work, f"b2_{i}.jsonl") for i in (0, 1)]
    label_b2 = "b2. logic: curate_line, 2 processes at once (half the input each)"
    _say(f"running {label_b2} ...")

    def once_b2():
        settle()
        docs, maxrss, other, wall = run_children_together(
            [
                _bench_cmd(args, "logic", half, out, source=src, sizes=os.path.join(work, f"b2_{i}.sizes"))
                for i, (half, out) in enumerate(zip(halves, outs_b2))
            ],
            logs,
            "b2",
        )
        result = Result(
            "b2",
            label_b2,
            max(d["wall"] for d in docs),
            sum(d["cpu"] for d in docs),
            sum(d["entries"] for d in docs),
            in_bytes,
            sum(d["out_bytes"] for d in docs),
            max(maxrss),
            sum(maxrss),
            0,
            len(docs),
            other,
            wall,
        )
        return result, result.wall

    results["b2"] = best_of(args.repeat, once_b2)
    collect("b2", outs_b2, train=[train_path(o) for o in outs_b2])
    for path in halves:
        os.remove(path)
    if not args.skip_reference:
        phase("c", "c. reference-like: literal_spec, 1 process", "reference", out_c, source=src)
        collect("c", [out_c])
    nemo_info = {}
    if args.nemo_python:
        out_n = os.path.join(work, "n.jsonl")
        label_n = "n. NeMo Curator's own ALM stages, 1 process"
        _say(f"running {label_n} ({args.nemo_python}) ...")
        # The reference venv has NeMo Curator, not alm_beam: the phase code comes
        # from this checkout through PYTHONPATH (`env` execs, so the measured
        # process is the reference interpreter itself).
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = ["env", f"PYTHONPATH={root}", args.nemo_python] + _bench_cmd(args, "nemo", src, out_n)[1:]

        def once_n():
            settle()
            child = run_child(cmd, logs, "n", args.poll)
            return child, child.wall

        child_n = best_of(args.repeat, once_n)
        nemo_info = json.loads(child_n.stdout)
        results["n"] = _phase_result("n", label_n, child_n, in_bytes)
        nemo_info["whole_process"] = child_n.wall
        checks["n"] = compare_values([out_b], [out_n], without_fields("manifest_filepath"))
        if not args.keep:
            os.remove(out_n)

    # Default: the pipeline plans its own reads (input.split_mb auto: one balanced
    # unit per worker); --ranges R fixes the largest range at 1/R of the input.
    split_mb = max(1, -(-in_bytes // args.ranges)) / MIB if args.ranges else None
    pipe_dirs, errors, ranges, units = {}, {}, {}, {}
    pipelines = (
        ("d1", 1, "d1. pipeline, DirectRunner, 1 worker"),
        ("d2", 2, "d2. pipeline, DirectRunner, 2 workers (multi_processing)"),
    )
    if args.compact:
        pipelines += (("d1c", 1, "d1c. pipeline, DirectRunner, 1 worker, --compact"),)
    # With --repeat the two alternate (d1, d2, d1, d2, ...): on a machine whose
    # speed drifts, both then get the same chances.
    fastest, shard_times = {}, {}
    for round_no in range(args.repeat):
        for key, workers, label in pipelines:
            out_dir = pipe_dirs.setdefault(key, os.path.join(work, f"{key}_out"))
            _say(
                f"running {label} ..."
                + (f" (round {round_no + 1} of {args.repeat})" if args.repeat > 1 else "")
            )
            shutil.rmtree(out_dir, ignore_errors=True)
            settle()
            cmd = pipeline_cmd(args.python, pipeline_src, out_dir, workers, split_mb)
            if key == "d1c":
                cmd.append("--compact")
            child = run_child(cmd, logs, key, args.poll)
            if key not in fastest or child.wall < fastest[key].wall:
                fastest[key] = child
                shard_times[key] = shard_finish_times(out_dir, child.started)
    for key, _, label in pipelines:
        out_dir = pipe_dirs[key]
        results[key] = _pipeline_result(key, label, fastest[key], out_dir, in_bytes)
        errors[key] = _count_lines(_output_files(out_dir, "errors"))
        ranges[key] = _read_ranges(out_dir)
        units[key] = _run_info(out_dir).get("work_units")
        train_files = _output_files(out_dir, "train")
        if key == "d1c":
            checks[key] = compare_values(
                [out_b],
                _output_files(out_dir, "windows"),
                without_fields("windows", "stats.lost_win_full_data", *moved),
            )
            # --compact does not change the training lines
            checks[f"{key} train"] = compare_outputs(
                digests["b train"], [train_path(out_b)], train_files, pipeline_train_ignore
            )
            if not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)
            continue
        collect(key, _output_files(out_dir, "windows"), train=train_files)

    # The same pipeline runs on the first quarter of the input: the difference
    # is the per-entry cost, the rest is the fixed start-up/shutdown cost.
    probes = {}
    if args.files > 1 and not args.no_probe:
        _say("(no runs on the first quarter with --files: the probe needs one manifest)")
    elif not args.no_probe:
        probe_src = os.path.join(work, "quarter.jsonl")
        probe_n = max(1, entries // 4)
        probe_bytes = copy_first_lines(src, probe_src, probe_n)
        probe_split_mb = max(1, -(-probe_bytes // args.ranges)) / MIB if args.ranges else None
        for key, workers in (("d1", 1), ("d2", 2)):
            out_dir = os.path.join(work, f"quarter_{key}_out")
            _say(f"running {key} again on the first {probe_n} entries ...")

            def once(out_dir=out_dir, workers=workers, key=key):
                shutil.rmtree(out_dir, ignore_errors=True)
                settle()
                child = run_child(
                    pipeline_cmd(args.python, probe_src, out_dir, workers, probe_split_mb),
                    logs,
                    f"quarter_{key}",
                    args.poll,
                )
                return child, child.wall

            probes[key] = best_of(args.repeat, once)
            if not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)

    # ---- report
    order = [k for k in ("a", "b", "b2", "c", "n", "d1", "d1c", "d2") if k in results]
    _say()
    _say(
        f"== alm_beam benchmark: {entries} entries, {in_bytes / MB:.1f} MB input, "
        f"{results['b'].out_bytes / MB:.1f} MB output =="
    )
    _say(f"at start: {started}; at end: {_environment()}")
    _say()
    _say(markdown_table([results[k] for k in order]))
    _say()
    _say(
        "a-c: seconds of the timed loop in a fresh process (interpreter start and imports "
        "excluded); d1/d2: the whole `python -m alm_beam.run` process, Beam start-up and "
        "shutdown included. CPU s: user+sys of the process and every descendant it waited "
        "for. MB = 10^6 bytes. Peak RSS (largest process): ru_maxrss from os.wait4, the "
        "biggest single process of the tree (with 2 workers: the runner or one SDK worker). "
        "Peak RSS (process tree, summed): sampled every "
        f"{args.poll:g} s from /proc over the child and all its descendants (the SDK workers "
        "are grandchildren, started through /bin/sh); shared pages count once per process. "
        "Other processes' CPU s: what the rest of the machine used during the child's life "
        "(/proc/stat busy time minus this run's); near 0 on a quiet machine. b2: the slower "
        "of the two processes' timed loops; its RSS columns are the larger and the sum of "
        "the two processes' peaks."
        + (f" Each figure is the fastest of {args.repeat} runs." if args.repeat > 1 else "")
    )
    noisy = [r.key for r in results.values() if r.other_cpu > 0.1 * r.proc_wall * (os.cpu_count() or 1)]
    if noisy:
        _say(
            f"WARNING: other processes used more than 10% of the machine during {', '.join(noisy)}"
            "; those wall times are pessimistic (rerun on a quiet machine, or with --repeat)"
        )
    for key in ("d1", "d2"):
        r = results[key]
        _say(
            f"{key}: {r.procs} process(es) in the tree at most, peak summed PSS "
            f"{_fmt_mib(r.tree_pss)} MiB, {ranges[key]} read ranges "
            f"in {units[key]} work units (input.split_mb={split_mb or 'auto'}), "
            f"{errors[key]} error lines"
        )
        _say(f"    {describe_shard_times(shard_times[key], r.wall)}")
    _say()
    _say("Ratios (time of the slower / time of the faster):")
    b, d1, d2, a = results["b"], results["d1"], results["d2"], results["a"]
    if "c" in results:
        c = results["c"]
        _say(
            f"  b vs c  logic speedup over the reference-like logic ......... "
            f"{_ratio(c.wall, b.wall)}  (CPU: {_ratio(c.cpu, b.cpu)})"
        )
        _say(f"  d1 vs c whole pipeline, 1 worker, vs reference logic ....... {_ratio(c.wall, d1.wall)}")
    if "n" in results:
        n = results["n"]
        whole = nemo_info["whole_process"]
        _say(
            f"  b vs n  logic vs NeMo Curator's stages (timed loops) ......... "
            f"{_ratio(n.wall, b.wall)}  (CPU: {_ratio(n.cpu, b.cpu)})"
        )
        _say(
            f"  d1 vs n whole pipeline, 1 worker, vs NeMo Curator's stages .. "
            f"{_ratio(whole, d1.wall)}  (whole processes: {whole:.2f} s vs {d1.wall:.2f} s; "
            f"NeMo Curator's timed loop alone: {n.wall:.2f} s)"
        )
        if "d1c" in results:
            _say(
                f"  d1c vs n the same with --compact ........................... "
                f"{_ratio(whole, results['d1c'].wall)}"
            )
    _say(f"  d2 vs d1 2 workers vs 1 (whole process) ..................... {_ratio(d1.wall, d2.wall)}")
    b2 = results["b2"]
    _say(
        f"  b vs b2 the bare logic, 2 processes at once vs 1 ............ "
        f"{_ratio(b.wall, b2.wall)}  (what two processes gain on this machine in this run, "
        f"Beam left out; CPU: {b2.cpu:.2f} s vs {b.cpu:.2f} s for the same entries)"
    )
    _say(f"  b vs a  logic time / floor time (1.00x = at the floor) ....... {_ratio(b.wall, a.wall)}")
    if probes and entries > probe_n:
        per_entry, fixed = {}, {}
        for key in ("d1", "d2"):
            per_entry[key] = (results[key].wall - probes[key].wall) / (entries - probe_n)
            fixed[key] = results[key].wall - entries * per_entry[key]
        _say(
            f"  per-entry and fixed cost, from the same runs on the first {probe_n} entries "
            "(T(N) - T(N/4)) / (N - N/4); a difference of two wall times, so rough (a "
            "2-worker gain above 2x is noise):"
        )
        for key, workers in (("d1", "1 worker "), ("d2", "2 workers")):
            _say(
                f"    {key} {workers}: {per_entry[key] * 1e3:.3f} ms/entry + {fixed[key]:.2f} s "
                f"fixed (start-up, shutdown); {probe_n} entries took {probes[key].wall:.2f} s"
            )
        m1, m2, f1, f2 = per_entry["d1"], per_entry["d2"], fixed["d1"], fixed["d2"]
        if m1 > 0 and m2 > 0:
            if "c" in results:
                c_entry = results["c"].wall / entries
                _say(
                    f"  d1 vs c  per entry (fixed cost left out) ....................... "
                    f"{_ratio(c_entry, m1)}"
                )
                _say("           whole process reaches 6x at " + _break_even(6, c_entry, 0.0, m1, f1))
            _say(f"  d2 vs d1 per entry (fixed cost left out) ....................... {_ratio(m1, m2)}")
            _say("           whole process reaches 1.6x at " + _break_even(1.6, m1, f1, m2, f2))
    _say()
    if nemo_info:
        _say(
            f"NeMo Curator {nemo_info.get('nemo_curator')} stage files (sha256): "
            + ", ".join(f"{k} {v[:16]}" for k, v in nemo_info.get("stage_sha256", {}).items())
        )
    _say(
        "Outputs (as multisets of lines, compared with b; n ignoring manifest_filepath, which "
        "NeMo Curator leaves null; d1c ignoring the fields --compact omits; with --files, "
        "d ignoring the source file and the place in it; `train`: the training lines):"
    )
    for key, verdict in checks.items():
        _say(f"  {key} vs b{' train' if key.endswith(' train') else ''}: {verdict}")
    all_same = all(v == "identical" or v.startswith("same values") for v in checks.values())
    _say(f"  => outputs of b and d are {'IDENTICAL' if all_same else 'NOT identical'}")
    _say()
    _say("Command: python -m benchmarks.bench " + shlex.join(argv))
    shown_input = f"<directory of {args.files} manifests>" if moved else "<input.jsonl>"
    _say("Pipeline runs: " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 1, split_mb)))
    _say("               " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 2, split_mb)))
    return 0 if all_same else 1


CALLGRIND_TOTAL = re.compile(rb"Collected : (\d+)")


def callgrind_instructions(stderr: bytes) -> int:
    """Instructions a callgrind run reports ("Collected : N") in its stderr."""
    found = CALLGRIND_TOTAL.findall(stderr)
    if not found:
        raise ValueError("no 'Collected : N' line in valgrind's output")
    return int(found[-1])


def _count_instructions(cmd: Sequence[str], work: str, name: str) -> int:
    out_file = os.path.join(work, f"{name}.callgrind")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{name} failed under valgrind ({proc.returncode}):\n"
            + proc.stderr[-2000:].decode("utf-8", "replace")
        )
    os.remove(out_file)
    return callgrind_instructions(proc.stderr)


def run_instructions(args, work: str, argv: Sequence[str]) -> int:
    from alm_beam import synth

    if shutil.which("valgrind") is None:
        _say("error: --instructions needs valgrind on PATH (e.g. apt-get install valgrind)")
        return 2
    n_all = args.entries
    n_few = max(1, n_all // 10)
    _say(f"alm_beam bench --instructions: {_environment()}")
    _say(f"generating {n_all} entries (seed {args.seed}) with alm_beam.synth (not timed) ...")
    src = os.path.join(work, "input.jsonl")
    synth.write_manifest(src, n_all, args.seed)
    few = os.path.join(work, "few.jsonl")
    copy_first_lines(src, few, n_few)

    counts = {}
    runs = (
        ("b", "b. logic: curate_line"),
        ("a", "a. floor: read + orjson.loads + write"),
        ("c", "c. reference-like: literal_spec"),
        ("d1", "d1. pipeline, DirectRunner, 1 worker (whole process)"),
    )
    for key, label in runs:
        per_size = []
        for size, path in ((n_few, few), (n_all, src)):
            _say(f"running {label} on {size} entries under callgrind ...")
            out = os.path.join(work, f"{key}.out")
            sizes = os.path.join(work, f"b{size}.sizes")
            if key == "d1":
                out = os.path.join(work, f"d1_{size}")
                shutil.rmtree(out, ignore_errors=True)
                cmd = pipeline_cmd(args.python, path, out, 1, None)
            elif key == "b":
                cmd = _bench_cmd(args, "logic", path, out, source=path, sizes=sizes)
            elif key == "c":
                cmd = _bench_cmd(args, "reference", path, out, source=path)
            else:
                cmd = _bench_cmd(args, "floor", path, out, sizes=sizes)
            per_size.append(_count_instructions(cmd, work, f"{key}_{size}"))
        counts[key] = (per_size[1] - per_size[0]) / (n_all - n_few)

    _say()
    _say(f"== alm_beam instructions per entry: {n_all} entries (minus the first {n_few}) ==")
    _say()
    _say("| run | million instructions per entry |")
    _say("| --- | ---: |")
    for key, label in runs:
        _say(f"| {label} | {counts[key] / 1e6:.2f} |")
    _say()
    _say("Ratios (instructions of the larger / of the smaller):")
    _say(f"  b vs c  logic vs reference-like logic ............ {_ratio(counts['c'], counts['b'])}")
    _say(f"  d1 vs c pipeline per entry vs reference-like ..... {_ratio(counts['c'], counts['d1'])}")
    _say(f"  d1 vs b pipeline per entry / logic per entry ..... {_ratio(counts['d1'], counts['b'])}")
    _say(f"  b vs a  logic / floor ............................ {_ratio(counts['b'], counts['a'])}")
    _say()
    _say("Command: python -m benchmarks.bench " + shlex.join(argv))
    return 0


def run_memory(args, work: str, argv: Sequence[str]) -> int:
    from alm_beam import synth

    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    started = _environment()
    _say(f"alm_beam bench --memory: {started}")
    rows = []

    reshuffled = set()

    def pipeline(key, label, src, entries, in_bytes):
        out_dir = os.path.join(work, f"{key}_out")
        os.sync()  # start without the previous run's dirty pages
        _say(f"running {label} ...")
        child = run_child(pipeline_cmd(args.python, src, out_dir, 1, None), logs, key, args.poll)
        result = _pipeline_result(key, label, child, out_dir, in_bytes)
        info = _run_info(out_dir)
        reshuffled.add(info.get("reshuffle"))
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
        rows.append((result, info.get("read_ranges")))
        return result

    # (i) one long conversation: a single huge line
    long_src = os.path.join(work, "long.jsonl")
    _say(f"generating one {args.memory_hours:g}-hour conversation (not timed) ...")
    _, long_bytes = synth.write_manifest(long_src, 1, args.seed, hours=args.memory_hours)
    long_result = pipeline(
        "long", f"{args.memory_hours:g}-hour conversation (1 entry)", long_src, 1, long_bytes
    )

    # (ii) a big manifest against one 4x smaller (its first quarter)
    probe = os.path.join(work, "size_probe.jsonl")
    _, probe_bytes = synth.write_manifest(probe, 64, args.seed)
    os.remove(probe)
    target = args.memory_gb * 1e9
    n_big = max(4, math.ceil(target / (probe_bytes / 64)))
    need = target * 1.25 * 8  # input plus ~6-7x as much output, both runs
    free = shutil.disk_usage(work).free
    if free < need:
        _say(
            f"error: {free / 1e9:.1f} GB free in {work}, about {need / 1e9:.1f} GB needed for "
            f"--memory-gb {args.memory_gb:g}; use --workdir elsewhere or a smaller --memory-gb"
        )
        return 2
    big = os.path.join(work, "big.jsonl")
    small = os.path.join(work, "small.jsonl")
    _say(f"generating {n_big} entries (~{target / 1e9:g} GB; not timed, may take a while) ...")
    _, big_bytes = synth.write_manifest(big, n_big, args.seed)
    n_small = n_big // 4
    # synth: the first N entries of a longer manifest are the N-entry manifest
    small_bytes = copy_first_lines(big, small, n_small)
    small_result = pipeline(
        "small", f"{small_bytes / 1e9:.2f} GB manifest ({n_small} entries)", small, n_small, small_bytes
    )
    big_result = pipeline(
        "big", f"{big_bytes / 1e9:.2f} GB manifest ({n_big} entries)", big, n_big, big_bytes
    )

    _say()
    _say("== alm_beam memory check: whole pipeline, DirectRunner, 1 worker ==")
    _say(f"at start: {started}; at end: {_environment()}")
    _say()
    _say(
        "| input | input MB | output MB | wall s | entries/s | read ranges "
        "| peak RSS MiB | sampled peak RSS MiB |"
    )
    _say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r, ranges in rows:
        _say(
            f"| {r.label} | {r.in_bytes / MB:,.1f} | {r.out_bytes / MB:,.1f} | {r.wall:.1f} "
            f"| {r.rate_text} | {ranges} | {_fmt_mib(r.maxrss)} | {_fmt_mib(r.tree_rss)} |"
        )
    _say()
    _say(
        "Peak RSS: ru_maxrss of the `python -m alm_beam.run` process from os.wait4 (with one "
        "DirectRunner worker everything runs in that one process). Sampled: the process "
        f"tree's RSS read from /proc every {args.poll:g} s, which can miss a short peak."
    )
    growth = big_result.maxrss - small_result.maxrss
    ratio = big_result.maxrss / small_result.maxrss if small_result.maxrss else math.inf
    _say(f"{big_bytes / small_bytes:.1f}x the input -> peak RSS {ratio:.2f}x ({growth / MIB:+,.0f} MiB).")
    streams = ratio < 1.25
    shuffle_text = (
        "the runs did not reshuffle (summary.json run.reshuffle = false)"
        if reshuffled == {False}
        else f"run.reshuffle = {sorted(map(str, reshuffled))}"
    )
    _say(
        "=> memory "
        + (
            "does NOT grow with the input size: read -> curate -> write streams; "
            if streams
            else "GROWS with the input size: the stage does not stream; "
        )
        + shuffle_text
    )
    _say(
        f"The {args.memory_hours:g}-hour conversation is one {long_bytes / MB:.1f} MB line "
        f"whose output line is {long_result.out_bytes / MB:.1f} MB: peak RSS "
        f"{_fmt_mib(long_result.maxrss)} MiB, "
        f"{(long_result.maxrss - small_result.maxrss) / MIB:+,.0f} MiB over the "
        f"{small_bytes / 1e9:.2f} GB run of ordinary entries (one entry is held at a time)."
    )
    _say()
    _say("Command: python -m benchmarks.bench " + shlex.join(argv))
    _say("Pipeline runs: " + shlex.join(pipeline_cmd("python", "<input.jsonl>", "<out>", 1, None)))
    return 0 if streams else 1


# --------------------------------------------------------------------------
# Command line.

STARTUP_RUNS = 3


def profile_table(spent: dict, logic_wall: float, pipeline_wall: float) -> str:
    """The markdown table of ``--profile``: each step's seconds and share of the
    one-worker pipeline's wall time; the rest of the pipeline is Beam's and the
    process's (start-up, reading through the source, the DoFn, the sinks, the
    summary)."""
    rows = ["| step | seconds | % of d1 |", "| --- | ---: | ---: |"]

    def row(label, seconds):
        rows.append(f"| {label} | {seconds:.2f} | {100 * seconds / pipeline_wall:.1f} |")

    for key, label in PROFILE_ROWS:
        row(label, spent[key])
    row("loop, timers and the rest of curate_line", max(0.0, logic_wall - sum(spent.values())))
    row("**= the logic in one process (b, timed loop)**", logic_wall)
    row(
        "Beam and the process: start-up, source, DoFn, sinks, summary (d1 - b; noisy, may be < 0)",
        pipeline_wall - logic_wall,
    )
    row("**= d1: the pipeline, 1 worker, whole process**", pipeline_wall)
    return "\n".join(rows)


def run_profile(args, work: str, argv: Sequence[str]) -> int:
    """Where one worker's time goes, and the fixed cost of a run (issue 14)."""
    from alm_beam import synth

    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    _say(f"alm_beam bench --profile: {_environment()}")
    entries, in_bytes = synth.write_manifest(src, args.entries, args.seed)
    _say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB (alm_beam.synth, seed {args.seed})")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)

    out_p = os.path.join(work, "profile.jsonl")
    _say("running b with a timer around each step of curate_line ...")
    os.sync()
    doc = json.loads(
        run_child(_bench_cmd(args, "profile", src, out_p, source=src), logs, "profile", args.poll).stdout
    )
    out_d1 = os.path.join(work, "d1")
    _say("running d1. pipeline, DirectRunner, 1 worker (whole process) ...")
    os.sync()
    d1 = run_child(pipeline_cmd(args.python, src, out_d1, 1, None) + ["--quiet"], logs, "d1", args.poll)
    same = compare_outputs(_digests([out_p], False), [out_p], _output_files(out_d1, "windows"))
    same_train = compare_outputs(
        _digests([train_path(out_p)], False), [train_path(out_p)], _output_files(out_d1, "train"), ("line",)
    )

    _say("")
    _say(f"Where the time goes: {entries} entries, {in_bytes / MB:.1f} MB in, one worker")
    _say("")
    _say(profile_table(doc["spent"], doc["wall"], d1.wall))
    _say("")
    _say(f"  profiled b vs d1: {same}; training lines: {same_train}")

    # The fixed cost: one 1-worker run on the bundled sample (40 entries) in
    # one process with its parts timed, then whole processes.
    trace_out = os.path.join(work, "sample_trace")
    trace = json.loads(
        run_child(
            [
                args.python,
                "-m",
                "benchmarks.bench",
                "--phase",
                "startup",
                "--phase-input",
                "",
                "--phase-output",
                trace_out,
            ],
            logs,
            "startup_trace",
            args.poll,
        ).stdout.splitlines()[-1]
    )
    sample_out = os.path.join(work, "sample_out")
    runs = {
        "python -m alm_beam.run (bundled sample, 1 worker)": [
            args.python,
            "-m",
            "alm_beam.run",
            "--output",
            sample_out,
            "--overwrite",
            "--quiet",
        ],
        "python -m alm_beam.run (bundled sample, 2 workers)": [
            args.python,
            "-m",
            "alm_beam.run",
            "--output",
            sample_out,
            "--overwrite",
            "--quiet",
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ],
        "python -c 'import apache_beam'": [args.python, "-c", "import apache_beam"],
        "python -c 'pass' (the interpreter alone)": [args.python, "-c", "pass"],
    }
    _say("")
    _say(
        "One run on the bundled sample (1 worker), its parts (one traced run; the "
        "interpreter's exit not included):"
    )
    _say("")
    _say("| part | s |")
    _say("| --- | ---: |")
    for label, seconds in startup_parts(trace["marks"]):
        _say(f"| {label} | {seconds:.2f} |")
    _say(f"| **= until main returned** | {dict(trace['marks'])['main returned']:.2f} |")
    _say("")
    _say(f"Fixed cost, whole processes (best of {STARTUP_RUNS}):")
    _say("")
    _say("| process | best s | all runs s |")
    _say("| --- | ---: | --- |")
    for label, cmd in runs.items():
        walls = [run_child(cmd, logs, "startup", args.poll).wall for _ in range(STARTUP_RUNS)]
        _say(f"| {label} | {min(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} |")
    return 0 if same == "identical" else 1


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Benchmark alm_beam on a synthetic workload: a. the floor (read + parse + "
        "write), b. the per-entry logic (curate_line), b2. the same in two processes "
        "at once (half the input each), c. the reference-like literal logic, d. the "
        "whole pipeline (python -m alm_beam.run) with 1 and 2 DirectRunner workers; "
        "prints a markdown table, the ratios, and whether "
        "the outputs of b and d are identical. With --memory: peak RSS for a "
        "10-hour conversation and a ~1 GB manifest vs one 4x smaller.",
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=DEFAULT_ENTRIES,
        metavar="N",
        help="conversations in the generated workload (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="alm_beam.synth seed (default: %(default)s)"
    )
    parser.add_argument(
        "--ranges",
        type=int,
        default=None,
        metavar="R",
        help="fix the pipeline runs' largest byte range at 1/R of the input "
        "(input.split_mb = input size / R, the same for 1 and 2 workers); "
        "default: the pipeline's own planning (input.split_mb auto: one "
        "balanced unit of work per worker)",
    )
    parser.add_argument(
        "--files",
        type=int,
        default=1,
        metavar="K",
        help="the pipeline runs (d) read the workload cut into K manifests "
        "of consecutive lines, in one directory, instead of one file "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run every measurement K times and report the fastest (the "
        "machine is shared: other processes' CPU use is reported per run; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="do not run c (the slow reference-like logic)"
    )
    parser.add_argument(
        "--reference",
        choices=("auto", "nemo", "literal"),
        default="auto",
        help="nemo: also run n, NeMo Curator's own ALMDataBuilderStage and "
        "ALMDataOverlapStage (installed by pipelines/nemo-reference.sh into "
        "its own venv), and compare its output with ours; literal: only c. "
        "auto (default): nemo when that venv exists",
    )
    parser.add_argument(
        "--nemo-python",
        metavar="PYTHON",
        help="the reference venv's python (default: the one pipelines/nemo-reference.sh installs)",
    )
    parser.add_argument(
        "--compact", action="store_true", help="also run d1c, the 1-worker pipeline with --compact"
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the second pair of pipeline runs (on the first quarter of "
        "the input) that splits their time into per-entry and fixed cost",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per entry under valgrind's callgrind "
        "instead of timing (noise-free; slow: use with --entries 200)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="run the memory checks instead of the throughput benchmark"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the benchmark: where one worker's time goes (each "
        "step of curate_line timed, against the whole 1-worker pipeline) "
        "and the fixed cost of a run on the bundled sample",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=1.0,
        metavar="G",
        help="--memory: size of the big manifest in GB (10^9 bytes); the "
        "comparison run uses its first quarter. Needs ~8x G of free disk "
        "(the output is ~6-7x the input); default: %(default)s",
    )
    parser.add_argument(
        "--memory-hours",
        type=float,
        default=10.0,
        metavar="H",
        help="--memory: hours of the single long conversation (default: %(default)s)",
    )
    parser.add_argument(
        "--workdir", metavar="DIR", help="where inputs and outputs go (default: a new temporary directory)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (inputs, outputs, child logs)"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="interval of the /proc sampling of the process tree's memory (default: %(default)s)",
    )
    parser.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    # Internal: one measured phase, run in a child process.
    parser.add_argument(
        "--phase",
        choices=("floor", "logic", "reference", "nemo", "profile", "startup"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--phase-input", help=argparse.SUPPRESS)
    parser.add_argument("--phase-output", help=argparse.SUPPRESS)
    parser.add_argument("--phase-source", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phase-sizes", default="", help=argparse.SUPPRESS)
    return parser


NEMO_CURATOR_VERSION = "1.4.0"


def default_nemo_python() -> str:
    """Where pipelines/nemo-reference.sh installs the reference venv's python."""
    cache = os.environ.get("ALM_BEAM_CACHE", os.path.expanduser("~/.cache/alm_beam"))
    return os.path.join(cache, "nemo-curator", NEMO_CURATOR_VERSION, "venv", "bin", "python")


def resolve_nemo_python(reference: str, given: Optional[str]) -> Optional[str]:
    """The reference python to run n with, or None (``--reference literal``, or
    ``auto`` without an installed reference)."""
    if reference == "literal":
        return None
    path = given or default_nemo_python()
    return path if os.path.exists(path) else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_arg_parser()
    args = parser.parse_args(argv)

    if args.phase:
        if args.phase == "logic":
            doc = _phase_logic(args.phase_input, args.phase_output, args.phase_source, args.phase_sizes)
        elif args.phase == "reference":
            doc = _phase_reference(args.phase_input, args.phase_output, args.phase_source)
        elif args.phase == "nemo":
            doc = _phase_nemo(args.phase_input, args.phase_output)
        elif args.phase == "profile":
            doc = _phase_profile(args.phase_input, args.phase_output, args.phase_source)
        elif args.phase == "startup":  # the bundled sample, its run summary on stderr
            with contextlib.redirect_stdout(sys.stderr):
                doc = _phase_startup(["--output", args.phase_output, "--quiet"])
        else:
            doc = _phase_floor(args.phase_input, args.phase_output, args.phase_sizes)
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0

    if args.entries < 1:
        parser.error("--entries must be >= 1")
    if args.ranges is not None and args.ranges < 1:
        parser.error("--ranges must be >= 1")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.files < 1:
        parser.error("--files must be >= 1")
    if args.memory_gb <= 0 or args.memory_hours <= 0:
        parser.error("--memory-gb and --memory-hours must be > 0")
    if args.poll <= 0:
        parser.error("--poll must be > 0")
    if sum(map(bool, (args.memory, args.instructions, args.profile))) > 1:
        parser.error("--memory, --instructions and --profile are separate runs; give one")
    if args.instructions and args.entries < 2:
        parser.error("--instructions needs --entries >= 2")

    args.nemo_python = resolve_nemo_python(args.reference, args.nemo_python)
    if args.reference == "nemo" and not args.nemo_python:
        parser.error(
            "--reference nemo: NeMo Curator's reference venv is not installed; run "
            "`bash pipelines/nemo-reference.sh` (or give --nemo-python)"
        )
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        work = tempfile.mkdtemp(prefix="alm_beam_bench_", dir=args.workdir)
    else:
        work = tempfile.mkdtemp(prefix="alm_beam_bench_")
    try:
        if args.memory:
            return run_memory(args, work, argv)
        if args.instructions:
            return run_instructions(args, work, argv)
        if args.profile:
            return run_profile(args, work, argv)
        return run_default(args, work, argv)
    finally:
        if args.keep:
            _say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
