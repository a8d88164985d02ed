"""The printed report: the markdown table of the runs, the ratios, and whether
the outputs agree."""

from __future__ import annotations

import math
import os
import platform
import shlex
from typing import NamedTuple, Sequence

from benchmarks.outputs import describe_shard_times

MB = 1_000_000  # throughput unit (input/output MB/s)
MIB = 1 << 20  # memory unit


def say(text: str = "") -> None:
    print(text, flush=True)


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


def fmt_mib(value: int) -> str:
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
            f"| {fmt_mib(r.maxrss)} | {fmt_mib(r.tree_rss)} | {r.other_cpu:.1f} |"
        )
    return "\n".join(rows)


def break_even(
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


def ratio_text(slow: float, fast: float) -> str:
    return f"{slow / fast:.2f}x" if fast > 0 else "n/a"


def environment() -> str:
    try:
        load = os.getloadavg()
        load_text = f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    except OSError:
        load_text = "load average n/a"
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, {load_text}"
    )


def report_default(args, argv: Sequence[str], m) -> int:
    """Print the default run's table, ratios and output checks from ``m``
    (``timing.run_default``'s measurements); 0 when the outputs agree."""
    from benchmarks.timing import pipeline_cmd

    results, checks, entries, in_bytes = m.results, m.checks, m.entries, m.in_bytes
    started, nemo_info, probes, probe_n = m.started, m.nemo_info, m.probes, m.probe_n
    ranges, units, errors, shard_times = m.ranges, m.units, m.errors, m.shard_times
    split_mb, moved = m.split_mb, m.moved
    order = [k for k in ("a", "b", "b2", "c", "n", "d1", "d1c", "d2") if k in results]
    say()
    say(
        f"== alm_beam benchmark: {entries} entries, {in_bytes / MB:.1f} MB input, "
        f"{results['b'].out_bytes / MB:.1f} MB output =="
    )
    say(f"at start: {started}; at end: {environment()}")
    say()
    say(markdown_table([results[k] for k in order]))
    say()
    say(
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
        say(
            f"WARNING: other processes used more than 10% of the machine during {', '.join(noisy)}"
            "; those wall times are pessimistic (rerun on a quiet machine, or with --repeat)"
        )
    for key in ("d1", "d2"):
        r = results[key]
        say(
            f"{key}: {r.procs} process(es) in the tree at most, peak summed PSS "
            f"{fmt_mib(r.tree_pss)} MiB, {ranges[key]} read ranges "
            f"in {units[key]} work units (input.split_mb={split_mb or 'auto'}), "
            f"{errors[key]} error lines"
        )
        say(f"    {describe_shard_times(shard_times[key], r.wall)}")
    say()
    say("Ratios (time of the slower / time of the faster):")
    b, d1, d2, a = results["b"], results["d1"], results["d2"], results["a"]
    if "c" in results:
        c = results["c"]
        say(
            f"  b vs c  logic speedup over the reference-like logic ......... "
            f"{ratio_text(c.wall, b.wall)}  (CPU: {ratio_text(c.cpu, b.cpu)})"
        )
        say(f"  d1 vs c whole pipeline, 1 worker, vs reference logic ....... {ratio_text(c.wall, d1.wall)}")
    if "n" in results:
        n = results["n"]
        whole = nemo_info["whole_process"]
        say(
            f"  b vs n  logic vs NeMo Curator's stages (timed loops) ......... "
            f"{ratio_text(n.wall, b.wall)}  (CPU: {ratio_text(n.cpu, b.cpu)})"
        )
        say(
            f"  d1 vs n whole pipeline, 1 worker, vs NeMo Curator's stages .. "
            f"{ratio_text(whole, d1.wall)}  (whole processes: {whole:.2f} s vs {d1.wall:.2f} s; "
            f"NeMo Curator's timed loop alone: {n.wall:.2f} s)"
        )
        if "d1c" in results:
            say(
                f"  d1c vs n the same with --compact ........................... "
                f"{ratio_text(whole, results['d1c'].wall)}"
            )
    say(f"  d2 vs d1 2 workers vs 1 (whole process) ..................... {ratio_text(d1.wall, d2.wall)}")
    b2 = results["b2"]
    say(
        f"  b vs b2 the bare logic, 2 processes at once vs 1 ............ "
        f"{ratio_text(b.wall, b2.wall)}  (what two processes gain on this machine in this run, "
        f"Beam left out; CPU: {b2.cpu:.2f} s vs {b.cpu:.2f} s for the same entries)"
    )
    say(f"  b vs a  logic time / floor time (1.00x = at the floor) ....... {ratio_text(b.wall, a.wall)}")
    if probes and entries > probe_n:
        per_entry, fixed = {}, {}
        for key in ("d1", "d2"):
            per_entry[key] = (results[key].wall - probes[key].wall) / (entries - probe_n)
            fixed[key] = results[key].wall - entries * per_entry[key]
        say(
            f"  per-entry and fixed cost, from the same runs on the first {probe_n} entries "
            "(T(N) - T(N/4)) / (N - N/4); a difference of two wall times, so rough (a "
            "2-worker gain above 2x is noise):"
        )
        for key, workers in (("d1", "1 worker "), ("d2", "2 workers")):
            say(
                f"    {key} {workers}: {per_entry[key] * 1e3:.3f} ms/entry + {fixed[key]:.2f} s "
                f"fixed (start-up, shutdown); {probe_n} entries took {probes[key].wall:.2f} s"
            )
        m1, m2, f1, f2 = per_entry["d1"], per_entry["d2"], fixed["d1"], fixed["d2"]
        if m1 > 0 and m2 > 0:
            if "c" in results:
                c_entry = results["c"].wall / entries
                say(
                    f"  d1 vs c  per entry (fixed cost left out) ....................... "
                    f"{ratio_text(c_entry, m1)}"
                )
                say("           whole process reaches 6x at " + break_even(6, c_entry, 0.0, m1, f1))
            say(f"  d2 vs d1 per entry (fixed cost left out) ....................... {ratio_text(m1, m2)}")
            say("           whole process reaches 1.6x at " + break_even(1.6, m1, f1, m2, f2))
    say()
    if nemo_info:
        say(
            f"NeMo Curator {nemo_info.get('nemo_curator')} stage files (sha256): "
            + ", ".join(f"{k} {v[:16]}" for k, v in nemo_info.get("stage_sha256", {}).items())
        )
    say(
        "Outputs (as multisets of lines, compared with b; n ignoring manifest_filepath, which "
        "NeMo Curator leaves null; d1c ignoring the fields --compact omits; with --files, "
        "d ignoring the source file and the place in it; `train`: the training lines):"
    )
    for key, verdict in checks.items():
        say(f"  {key} vs b{' train' if key.endswith(' train') else ''}: {verdict}")
    all_same = all(v == "identical" or v.startswith("same values") for v in checks.values())
    say(f"  => outputs of b and d are {'IDENTICAL' if all_same else 'NOT identical'}")
    say()
    say("Command: python -m benchmarks.bench " + shlex.join(argv))
    shown_input = f"<directory of {args.files} manifests>" if moved else "<input.jsonl>"
    say("Pipeline runs: " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 1, split_mb)))
    say("               " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 2, split_mb)))
    return 0 if all_same else 1
