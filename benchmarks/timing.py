"""The default run: each phase (a, b, b2, c, n) and the pipeline (d1, d2) in a
child process of its own, timed, and its output compared with b's."""

from __future__ import annotations

import json
import os
import shutil
import types
from typing import Optional, Sequence

from benchmarks.children import ChildRun, best_of, run_child, run_children_together
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
from benchmarks.report import MB, MIB, Result, environment, report_default, say
from benchmarks.workloads import copy_first_lines, split_in_halves, split_into_files


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


def pipeline_result(key, label, child: ChildRun, out_dir: str, in_bytes: int) -> Result:
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
    )


def run_default(args, work: str, argv: Sequence[str]) -> int:
    from alm_beam import synth

    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    started = environment()
    say(f"alm_beam bench: {started}")
    say(f"generating {args.entries} entries (seed {args.seed}) with alm_beam.synth (not timed) ...")
    entries, in_bytes = synth.write_manifest(src, args.entries, args.seed)
    say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB")
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
        say(f"  cut into {args.files} manifests in {pipeline_src} for the pipeline runs")

    digests, checks = {}, {}

    def settle():
        # Each run writes as much output as the last one: flush the dirty pages
        # first, or the kernel throttles the next run's writes to disk speed.
        os.sync()

    def collect(key, paths, compare=True, train=None):
        """Compare a run's output (and its training lines, ``train``) with b's (not
        timed), then drop them unless --keep."""
        if key == "b":
            digests["b"] = line_digests(paths, False)
            digests["b train"] = line_digests(train, False)
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
        say(f"running {label} ...")

        def once():
            settle()
            child = run_child(bench_cmd(args, phase_name, src, out, **kw), logs, key, args.poll)
            return child, json.loads(child.stdout)["wall"]

        results[key] = phase_result(key, label, best_of(args.repeat, once), in_bytes)
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
    say(f"running {label_b2} ...")

    def once_b2():
        settle()
        docs, maxrss, other, wall = run_children_together(
            [
                bench_cmd(args, "logic", half, out, source=src, sizes=os.path.join(work, f"b2_{i}.sizes"))
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
        say(f"running {label_n} ({args.nemo_python}) ...")
        # The reference venv has NeMo Curator, not alm_beam: the phase code comes
        # from this checkout through PYTHONPATH (`env` execs, so the measured
        # process is the reference interpreter itself).
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = ["env", f"PYTHONPATH={root}", args.nemo_python] + bench_cmd(args, "nemo", src, out_n)[1:]

        def once_n():
            settle()
            child = run_child(cmd, logs, "n", args.poll)
            return child, child.wall

        child_n = best_of(args.repeat, once_n)
        nemo_info = json.loads(child_n.stdout)
        results["n"] = phase_result("n", label_n, child_n, in_bytes)
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
            say(
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
        results[key] = pipeline_result(key, label, fastest[key], out_dir, in_bytes)
        errors[key] = count_lines(output_files(out_dir, "errors"))
        ranges[key] = read_ranges(out_dir)
        units[key] = run_info(out_dir).get("work_units")
        train_files = output_files(out_dir, "train")
        if key == "d1c":
            checks[key] = compare_values(
                [out_b],
                output_files(out_dir, "windows"),
                without_fields("windows", "stats.lost_win_full_data", *moved),
            )
            # --compact does not change the training lines
            checks[f"{key} train"] = compare_outputs(
                digests["b train"], [train_path(out_b)], train_files, pipeline_train_ignore
            )
            if not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)
            continue
        collect(key, output_files(out_dir, "windows"), train=train_files)

    # The same pipeline runs on the first quarter of the input: the difference
    # is the per-entry cost, the rest is the fixed start-up/shutdown cost.
    probes, probe_n = {}, 0
    if args.files > 1 and not args.no_probe:
        say("(no runs on the first quarter with --files: the probe needs one manifest)")
    elif not args.no_probe:
        probe_src = os.path.join(work, "quarter.jsonl")
        probe_n = max(1, entries // 4)
        probe_bytes = copy_first_lines(src, probe_src, probe_n)
        probe_split_mb = max(1, -(-probe_bytes // args.ranges)) / MIB if args.ranges else None
        for key, workers in (("d1", 1), ("d2", 2)):
            out_dir = os.path.join(work, f"quarter_{key}_out")
            say(f"running {key} again on the first {probe_n} entries ...")

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

    measured = types.SimpleNamespace(
        results=results,
        checks=checks,
        entries=entries,
        in_bytes=in_bytes,
        started=started,
        nemo_info=nemo_info,
        probes=probes,
        probe_n=probe_n,
        ranges=ranges,
        units=units,
        errors=errors,
        shard_times=shard_times,
        split_mb=split_mb,
        moved=moved,
    )
    return report_default(args, argv, measured)
