"""The default mode: on one generated workload, every run in a child process of
its own, timed, its output compared with b's.

The runs go in rounds, one per ``--repeat``: the pairs b and b2, the CPU-only
control x1 and x2, the pipeline runs d1 and d2 (d1m and d2m), each pair back
to back and in the other order every other round, so that the ceilings for
d2 vs d1 (what two processes gain on this machine) are measured beside it and
a drift in the machine's speed touches both sides of every ratio alike; then
the floor a. The slow references c and n, and the comparison of every
output with b's, come in the first round only. The report gives each run's
median (and best) over the rounds, and each two-worker fraction as the median
of the rounds' own.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
from typing import Optional, Sequence

from benchmarks.children import ChildRun, MachineWatch, run_child, run_children_together
from benchmarks.outputs import (
    compare_outputs,
    compare_values,
    count_lines,
    line_digests,
    output_files,
    shard_finish_times,
    without_fields,
)
from benchmarks.phases import train_path
from benchmarks.report import MIB, Measured, Result, environment, report_default, report_shapes, say
from benchmarks.workloads import (
    MANY_MOVED,
    MANY_TRAIN_IGNORE,
    SHAPES,
    Shape,
    Workload,
    copy_first_lines,
    prepare_workload,
    split_in_halves,
)

MANY_KEYS = ("d1m", "d2m")  # the pipeline runs on the workload cut into --many-files manifests
CONTROL_ITERATIONS = 20_000_000  # about 2 to 4 s of one CPU here: long enough that start-up is noise


def bench_cmd(args, phase: str, src: str, out: str, source: str = "", sizes: str = "") -> list:
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


def run_info(out_dir: str) -> dict:
    """The ``run`` section of a pipeline run's summary.json (runner, reshuffle, ranges)."""
    try:
        with open(os.path.join(out_dir, "summary.json"), "rb") as fh:
            return json.loads(fh.read()).get("run", {})
    except (OSError, ValueError):
        return {}


def read_ranges(out_dir: str) -> Optional[int]:
    return run_info(out_dir).get("read_ranges")


def phase_result(key, label, child: ChildRun, in_bytes: int) -> Result:
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


def pipeline_result(key, label, child: ChildRun, out_dir: str, in_bytes: int, shard_times=()) -> Result:
    files = (
        output_files(out_dir, "windows") + output_files(out_dir, "errors") + output_files(out_dir, "train")
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
        tuple(shard_times),
    )


class WorkloadBench:
    """Every run of the default mode on one workload, round after round."""

    def __init__(self, args, work: str, workload: Workload):
        self.args, self.work, self.w = args, work, workload
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.runs = collections.defaultdict(list)  # key -> [Result], one per round
        self.digests, self.checks, self.nemo_info, self.pipe_info = {}, {}, {}, {}
        self.parsed: dict = {}  # b's parsed digests, by ignored fields (compare_outputs' cache)
        self.judged: dict = {}  # (reference, ignored fields) -> [(an output's digests, its verdict)]
        self.out_b = os.path.join(work, "b.jsonl")
        self.sizes = os.path.join(work, "b.sizes")
        # Default: the pipeline plans its own reads (input.split_mb auto: pieces the
        # workers claim on demand); --ranges R fixes the largest range at 1/R of the input.
        self.split_mb = max(1, -(-workload.in_bytes // args.ranges)) / MIB if args.ranges else None
        self.pipelines = (
            ("d1", 1, "d1. pipeline, DirectRunner, 1 worker"),
            ("d2", 2, "d2. pipeline, DirectRunner, 2 workers (multi_processing)"),
        )
        if args.compact:
            self.pipelines += (("d1c", 1, "d1c. pipeline, DirectRunner, 1 worker, --compact"),)
        if workload.many_src:
            many = f"{args.many_files} manifests"
            self.pipelines += (
                ("d1m", 1, f"d1m. pipeline, DirectRunner, 1 worker, {many}"),
                ("d2m", 2, f"d2m. pipeline, DirectRunner, 2 workers (multi_processing), {many}"),
            )

    def settle(self):
        """Each run writes as much output as the last one: flush the dirty pages
        first, or the kernel throttles the next run's writes to disk speed."""
        os.sync()

    def collect(self, key, paths, compare=True, train=None):
        """Compare a run's output (and its training lines, ``train``) with b's (not
        timed), then drop them unless --keep."""
        w, out_b = self.w, self.out_b
        if key == "b":
            if "b" not in self.digests:
                self.digests["b"] = line_digests(paths, False)
                self.digests["b train"] = line_digests(train, False)
            return  # kept until the end: the reference for the others
        if compare:
            in_pipeline = key.startswith("d")
            many = key in MANY_KEYS
            moved = MANY_MOVED if many else w.moved if in_pipeline else ()
            self.checks[key] = self.judge("b", [out_b], paths, moved)
            if train is not None:
                # b2's second half is a file of its own, so its byte offsets, and
                # the ids made from them, differ too.
                ignore = w.pipeline_train_ignore if in_pipeline else ("line", "byte_offset", "window_id")
                ignore = MANY_TRAIN_IGNORE if many else ignore
                self.checks[f"{key} train"] = self.judge("b train", [train_path(out_b)], train, ignore)
        if not self.args.keep:
            for path in paths + (train or []):
                os.remove(path)

    def judge(self, reference: str, expected: Sequence[str], got: Sequence[str], ignore) -> str:
        """``got`` against b's output (``reference``: "b" or "b train"). An output
        with the same bytes as one judged before, the same way, gets its verdict
        (d2m's windows are d1m's, byte for byte); b's parsed side is parsed once.
        Parsing a run's gigabytes takes minutes: this keeps the first round short."""
        got_digests = line_digests(got, False)
        judged = self.judged.setdefault((reference, tuple(ignore)), [])
        for digests, verdict in judged:
            if digests == got_digests:
                return verdict
        verdict = compare_outputs(
            self.digests[reference], expected, got, ignore, cache=self.parsed, got_digests=got_digests
        )
        judged.append((got_digests, verdict))
        return verdict

    def phase(self, key, label, phase_name, out, tag, **kw) -> Result:
        say(f"running {label} ...{tag}")
        self.settle()
        cmd = bench_cmd(self.args, phase_name, self.w.src, out, **kw)
        result = phase_result(key, label, run_child(cmd, self.logs, key, self.args.poll), self.w.in_bytes)
        self.runs[key].append(result)
        return result

    def together(self, key, label, cmds, in_bytes, tag) -> Result:
        """Two children started at once; the time is the slower one's timed loop."""
        say(f"running {label} ...{tag}")
        self.settle()
        docs, maxrss, other, wall = run_children_together(cmds, self.logs, key)
        result = Result(
            key,
            label,
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
        self.runs[key].append(result)
        return result

    def control(self, tag, flip=False):
        """x1, x2: the CPU-only control, two processes one after the other, and
        two at once (first, when ``flip``)."""
        cmd = bench_cmd(self.args, "control", "", "") + [
            "--phase-iterations",
            str(self.args.control_iterations),
        ]
        if flip:
            self.together("x2", "x2. control: arithmetic loop, 2 processes at once", [cmd, cmd], 0, tag)
        say(f"running x1. the CPU-only control, 2 processes one after the other ...{tag}")
        alone = []
        for i in (0, 1):
            child = run_child(cmd, self.logs, f"x1_{i}", self.args.poll)
            alone.append((json.loads(child.stdout), child))
        docs = [doc for doc, _ in alone]
        self.runs["x1"].append(
            Result(
                "x1",
                "x1. control: arithmetic loop, 2 processes one after the other",
                sum(d["wall"] for d in docs),
                sum(d["cpu"] for d in docs),
                sum(d["entries"] for d in docs),
                0,
                0,
                max(c.maxrss for _, c in alone),
                max(c.tree_rss for _, c in alone),
                0,
                1,
                sum(c.other_cpu for _, c in alone),
                sum(c.wall for _, c in alone),
            )
        )
        if not flip:
            self.together("x2", "x2. control: arithmetic loop, 2 processes at once", [cmd, cmd], 0, tag)

    def round(self, round_no: int):
        """One round: each pair that a ceiling or d2 vs d1 is made of runs back to
        back (b and b2, x1 and x2, d1 and d2, d1m and d2m), in the other order
        every other round, so that a drift in the machine's speed touches both
        sides of a ratio alike. The slow references (c, n) and the outputs'
        comparisons come in the first round only, after the pairs."""
        args, w, work = self.args, self.w, self.work
        first = round_no == 0
        flip = round_no % 2 == 1
        tag = f" (round {round_no + 1} of {args.repeat})" if args.repeat > 1 else ""
        out_b = self.out_b
        for key in ("b2", "b") if flip else ("b", "b2"):
            if key == "b":
                # b's output stays between rounds (the others are compared with
                # it): drop it now, untimed, or the next b truncates it in its loop
                for path in (out_b, train_path(out_b)):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                self.phase(
                    "b",
                    "b. logic: curate_line, 1 process",
                    "logic",
                    out_b,
                    tag,
                    source=w.src,
                    sizes=self.sizes,
                )
                self.collect("b", [out_b], train=[train_path(out_b)])
            else:
                self.logic_in_two(tag, first)
        self.control(tag, flip)
        for key, workers, label in reversed(self.pipelines) if flip else self.pipelines:
            self.pipeline(key, workers, label, tag, first)
        out_a = os.path.join(work, "a.out")
        self.phase("a", "a. floor: read + orjson.loads + write", "floor", out_a, tag, sizes=self.sizes)
        self.collect("a", [out_a], compare=False)
        if first and not args.skip_reference:
            out_c = os.path.join(work, "c.jsonl")
            self.phase(
                "c", "c. reference-like: literal_spec, 1 process", "reference", out_c, tag, source=w.src
            )
            self.collect("c", [out_c])
        if first and args.nemo_python:
            self.nemo(tag)

    def logic_in_two(self, tag, first):
        """b2: the same logic in two processes at once, each on half the input:
        what this machine gives two processes doing this work, whatever Beam
        does (the ceiling for d2 vs d1)."""
        args, w, work = self.args, self.w, self.work
        halves = [os.path.join(work, f"half{i}.jsonl") for i in (0, 1)]
        split_in_halves(w.src, *halves)
        outs_b2 = [os.path.join(work, f"b2_{i}.jsonl") for i in (0, 1)]
        cmds = [
            bench_cmd(args, "logic", half, out, source=w.src, sizes=os.path.join(work, f"b2_{i}.sizes"))
            for i, (half, out) in enumerate(zip(halves, outs_b2))
        ]
        label_b2 = "b2. logic: curate_line, 2 processes at once (half the input each)"
        self.together("b2", label_b2, cmds, w.in_bytes, tag)
        self.collect("b2", outs_b2, compare=first, train=[train_path(o) for o in outs_b2])
        for path in halves:
            os.remove(path)

    def nemo(self, tag):
        args, w = self.args, self.w
        out_n = os.path.join(self.work, "n.jsonl")
        label_n = "n. NeMo Curator's own ALM stages, 1 process"
        say(f"running {label_n} ({args.nemo_python}) ...{tag}")
        # The reference venv has NeMo Curator, not alm_beam: the phase code comes
        # from this checkout through PYTHONPATH (`env` execs, so the measured
        # process is the reference interpreter itself).
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = ["env", f"PYTHONPATH={root}", args.nemo_python] + bench_cmd(args, "nemo", w.src, out_n)[1:]
        self.settle()
        child = run_child(cmd, self.logs, "n", args.poll)
        self.nemo_info = json.loads(child.stdout)
        self.checks["n"] = self.judge("b", [self.out_b], [out_n], MANY_MOVED)
        self.runs["n"].append(phase_result("n", label_n, child, w.in_bytes))
        if not args.keep:
            os.remove(out_n)

    def pipeline(self, key, workers, label, tag, first):
        args, w = self.args, self.w
        out_dir = os.path.join(self.work, f"{key}_out")
        say(f"running {label} ...{tag}")
        shutil.rmtree(out_dir, ignore_errors=True)
        self.settle()
        src = w.many_src if key in MANY_KEYS else w.pipeline_src
        cmd = pipeline_cmd(args.python, src, out_dir, workers, self.split_mb)
        if key == "d1c":
            cmd.append("--compact")
        child = run_child(cmd, self.logs, key, args.poll)
        times = shard_finish_times(out_dir, child.started)
        self.runs[key].append(pipeline_result(key, label, child, out_dir, w.in_bytes, times))
        if first:
            self.pipe_info[key] = {
                "errors": count_lines(output_files(out_dir, "errors")),
                "ranges": read_ranges(out_dir),
                "units": run_info(out_dir).get("work_units"),
            }
            train_files = output_files(out_dir, "train")
            if key == "d1c":
                self.checks[key] = compare_values(
                    [self.out_b],
                    output_files(out_dir, "windows"),
                    without_fields("windows", "stats.lost_win_full_data", *w.moved),
                )
                # --compact does not change the training lines
                self.checks[f"{key} train"] = compare_outputs(
                    self.digests["b train"], [train_path(self.out_b)], train_files, w.pipeline_train_ignore
                )
            else:
                self.collect(key, output_files(out_dir, "windows"), train=train_files)
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)

    def probe(self) -> tuple:
        """d1 and d2 on the first quarter of the input, once per round: the
        difference is the per-entry cost, the rest is the fixed start-up/shutdown
        cost. Returns ``({key: [wall, ...]}, entries in the quarter)``."""
        args, w = self.args, self.w
        probes = collections.defaultdict(list)
        if args.no_probe:
            return {}, 0
        if args.files > 1:
            say("(no runs on the first quarter with --files: the probe needs one manifest)")
            return {}, 0
        probe_src = os.path.join(self.work, "quarter.jsonl")
        probe_n = max(1, w.entries // 4)
        probe_bytes = copy_first_lines(w.src, probe_src, probe_n)
        probe_split_mb = max(1, -(-probe_bytes // args.ranges)) / MIB if args.ranges else None
        for _ in range(args.repeat):
            for key, workers in (("d1", 1), ("d2", 2)):
                out_dir = os.path.join(self.work, f"quarter_{key}_out")
                say(f"running {key} again on the first {probe_n} entries ...")
                shutil.rmtree(out_dir, ignore_errors=True)
                self.settle()
                cmd = pipeline_cmd(args.python, probe_src, out_dir, workers, probe_split_mb)
                probes[key].append(run_child(cmd, self.logs, f"quarter_{key}", args.poll).wall)
                if not args.keep:
                    shutil.rmtree(out_dir, ignore_errors=True)
        return dict(probes), probe_n


def measure_workload(args, work: str, shape: Shape) -> Measured:
    """Generate the workload, run every round and the probes, and return what
    the report needs. The other processes' CPU is watched over all of it."""
    started = environment()
    say(f"alm_beam bench: {started}")
    workload = prepare_workload(args, work, shape)
    bench = WorkloadBench(args, work, workload)
    watch = MachineWatch()
    for round_no in range(args.repeat):
        bench.round(round_no)
    probes, probe_n = bench.probe()
    wall, other = watch.stop()
    return Measured(
        workload=workload,
        runs=dict(bench.runs),
        checks=bench.checks,
        nemo_info=bench.nemo_info,
        pipe_info=bench.pipe_info,
        probes=probes,
        probe_n=probe_n,
        split_mb=bench.split_mb,
        started=started,
        ended=environment(),
        wall=wall,
        other_cpu=other,
    )


def run_default(args, work: str, argv: Sequence[str]) -> int:
    """Each ``--shape`` in turn, its report printed as soon as it is measured;
    with several, a table of their ratios at the end."""
    measured, code = [], 0
    for name in args.shape:
        shape_work = os.path.join(work, name) if len(args.shape) > 1 else work
        os.makedirs(shape_work, exist_ok=True)
        m = measure_workload(args, shape_work, SHAPES[name])
        code = max(code, report_default(args, argv, m))
        measured.append(m)
        if not args.keep and shape_work != work:
            shutil.rmtree(shape_work, ignore_errors=True)
    if len(measured) > 1:
        code = max(code, report_shapes(measured, argv))
    return code
