"""``--instructions`` (CPU instructions per entry under valgrind's callgrind) and
``--memory`` (peak memory against the input's size)."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
from typing import Sequence

from benchmarks.children import run_child
from benchmarks.report import MB, MIB, environment, fmt_mib, ratio_text, say
from benchmarks.timing import bench_cmd, pipeline_cmd, pipeline_result, run_info
from benchmarks.workloads import SHAPES, copy_first_lines, write_shape

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
    if shutil.which("valgrind") is None:
        say("error: --instructions needs valgrind on PATH (e.g. apt-get install valgrind)")
        return 2
    say(f"alm_beam bench --instructions: {environment()}")
    src = os.path.join(work, "input.jsonl")
    n_all, _ = write_shape(src, SHAPES[args.shape[0]], args.entries, args.seed)
    if n_all < 2:
        say(f"error: --instructions needs at least 2 entries of shape {args.shape[0]}; raise --entries")
        return 2
    n_few = max(1, n_all // 10)
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
            say(f"running {label} on {size} entries under callgrind ...")
            out = os.path.join(work, f"{key}.out")
            sizes = os.path.join(work, f"b{size}.sizes")
            if key == "d1":
                out = os.path.join(work, f"d1_{size}")
                shutil.rmtree(out, ignore_errors=True)
                cmd = pipeline_cmd(args.python, path, out, 1, None)
            elif key == "b":
                cmd = bench_cmd(args, "logic", path, out, source=path, sizes=sizes)
            elif key == "c":
                cmd = bench_cmd(args, "reference", path, out, source=path)
            else:
                cmd = bench_cmd(args, "floor", path, out, sizes=sizes)
            per_size.append(_count_instructions(cmd, work, f"{key}_{size}"))
        counts[key] = (per_size[1] - per_size[0]) / (n_all - n_few)

    say()
    say(f"== alm_beam instructions per entry: {n_all} entries (minus the first {n_few}) ==")
    say()
    say("| run | million instructions per entry |")
    say("| --- | ---: |")
    for key, label in runs:
        say(f"| {label} | {counts[key] / 1e6:.2f} |")
    say()
    say("Ratios (instructions of the larger / of the smaller):")
    say(f"  b vs c  logic vs reference-like logic ............ {ratio_text(counts['c'], counts['b'])}")
    say(f"  d1 vs c pipeline per entry vs reference-like ..... {ratio_text(counts['c'], counts['d1'])}")
    say(f"  d1 vs b pipeline per entry / logic per entry ..... {ratio_text(counts['d1'], counts['b'])}")
    say(f"  b vs a  logic / floor ............................ {ratio_text(counts['b'], counts['a'])}")
    say()
    say("Command: python -m benchmarks.bench " + shlex.join(argv))
    return 0


def run_memory(args, work: str, argv: Sequence[str]) -> int:
    from alm_beam import synth

    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    started = environment()
    say(f"alm_beam bench --memory: {started}")
    rows = []

    reshuffled = set()

    def pipeline(key, label, src, entries, in_bytes):
        out_dir = os.path.join(work, f"{key}_out")
        os.sync()  # start without the previous run's dirty pages
        say(f"running {label} ...")
        child = run_child(pipeline_cmd(args.python, src, out_dir, 1, None), logs, key, args.poll)
        result = pipeline_result(key, label, child, out_dir, in_bytes)
        info = run_info(out_dir)
        reshuffled.add(info.get("reshuffle"))
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
        rows.append((result, info.get("read_ranges")))
        return result

    # (i) one long conversation: a single huge line
    long_src = os.path.join(work, "long.jsonl")
    say(f"generating one {args.memory_hours:g}-hour conversation (not timed) ...")
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
        say(
            f"error: {free / 1e9:.1f} GB free in {work}, about {need / 1e9:.1f} GB needed for "
            f"--memory-gb {args.memory_gb:g}; use --workdir elsewhere or a smaller --memory-gb"
        )
        return 2
    big = os.path.join(work, "big.jsonl")
    small = os.path.join(work, "small.jsonl")
    say(f"generating {n_big} entries (~{target / 1e9:g} GB; not timed, may take a while) ...")
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

    say()
    say("== alm_beam memory check: whole pipeline, DirectRunner, 1 worker ==")
    say(f"at start: {started}; at end: {environment()}")
    say()
    say(
        "| input | input MB | output MB | wall s | entries/s | read ranges "
        "| peak RSS MiB | sampled peak RSS MiB |"
    )
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r, ranges in rows:
        say(
            f"| {r.label} | {r.in_bytes / MB:,.1f} | {r.out_bytes / MB:,.1f} | {r.wall:.1f} "
            f"| {r.rate_text} | {ranges} | {fmt_mib(r.maxrss)} | {fmt_mib(r.tree_rss)} |"
        )
    say()
    say(
        "Peak RSS: ru_maxrss of the `python -m alm_beam.run` process from os.wait4 (with one "
        "DirectRunner worker everything runs in that one process). Sampled: the process "
        f"tree's RSS read from /proc every {args.poll:g} s, which can miss a short peak."
    )
    growth = big_result.maxrss - small_result.maxrss
    ratio = big_result.maxrss / small_result.maxrss if small_result.maxrss else math.inf
    say(f"{big_bytes / small_bytes:.1f}x the input -> peak RSS {ratio:.2f}x ({growth / MIB:+,.0f} MiB).")
    streams = ratio < 1.25
    shuffle_text = (
        "the runs did not reshuffle (summary.json run.reshuffle = false)"
        if reshuffled == {False}
        else f"run.reshuffle = {sorted(map(str, reshuffled))}"
    )
    say(
        "=> memory "
        + (
            "does NOT grow with the input size: read -> curate -> write streams; "
            if streams
            else "GROWS with the input size: the stage does not stream; "
        )
        + shuffle_text
    )
    say(
        f"The {args.memory_hours:g}-hour conversation is one {long_bytes / MB:.1f} MB line "
        f"whose output line is {long_result.out_bytes / MB:.1f} MB: peak RSS "
        f"{fmt_mib(long_result.maxrss)} MiB, "
        f"{(long_result.maxrss - small_result.maxrss) / MIB:+,.0f} MiB over the "
        f"{small_bytes / 1e9:.2f} GB run of ordinary entries (one entry is held at a time)."
    )
    say()
    say("Command: python -m benchmarks.bench " + shlex.join(argv))
    say("Pipeline runs: " + shlex.join(pipeline_cmd("python", "<input.jsonl>", "<out>", 1, None)))
    return 0 if streams else 1
