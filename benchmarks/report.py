"""The printed report: the markdown table of the runs, the ratios, and whether
the outputs agree."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shlex
import statistics
from typing import NamedTuple, Optional, Sequence

from benchmarks.children import median_run
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
    shard_times: tuple = ()  # d: when each windows shard was last written (outputs.shard_finish_times)

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


def markdown_table(results: Sequence[Result], best: Optional[dict] = None) -> str:
    """One row per run; with ``best`` ({key: Result}, from --repeat) a column with
    the best wall time beside the median one."""
    best_head, best_rule = (" | best wall s", " ---: |") if best else ("", "")
    rows = [
        f"| run | wall s{best_head} | CPU s | entries/s | input MB/s | output MB/s "
        "| peak RSS MiB (largest process) | peak RSS MiB (process tree, summed) "
        "| other processes' CPU s |",
        f"| --- | ---: |{best_rule} ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        best_cell = f" | {best[r.key].wall:.2f}" if best else ""
        rows.append(
            f"| {r.label} | {r.wall:.2f}{best_cell} | {r.cpu:.2f} | {r.rate_text} "
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


@dataclasses.dataclass
class Measured:
    """What one workload's runs measured (``timing.measure_workload``)."""

    workload: object  # workloads.Workload
    runs: dict  # key -> [Result], one per round
    checks: dict  # key -> verdict of its output against b's
    nemo_info: dict  # n's version and stage digests
    pipe_info: dict  # d key -> {"errors", "ranges", "units"}
    probes: dict  # d1, d2 -> [wall s on the first quarter], one per round
    probe_n: int  # entries in that quarter
    split_mb: Optional[float]
    started: str  # environment() at the start and the end
    ended: str
    wall: float  # seconds from the first run's start to the last one's end
    other_cpu: float  # CPU seconds the rest of the machine used meanwhile

    def measured(self, r: Result) -> float:
        """The seconds a run is ranked and compared by: n's whole process (the
        ratio against d1 is whole process against whole process), else its wall."""
        return r.proc_wall if r.key == "n" else r.wall

    def median(self, key: str) -> Result:
        return median_run(self.runs[key], self.measured)

    def best(self, key: str) -> Result:
        return min(self.runs[key], key=self.measured)

    @property
    def rounds(self) -> int:
        return len(self.runs["b"])

    def _seconds(self, r: Result, timed_loop: bool) -> float:
        return r.wall if timed_loop else self.measured(r)

    def ratio(self, slow: str, fast: str, timed_loop: bool = False) -> float:
        """Median time of ``slow`` over median time of ``fast`` (``timed_loop``: n's
        timed loop rather than its whole process)."""
        fast_s = self._seconds(self.median(fast), timed_loop)
        return self._seconds(self.median(slow), timed_loop) / fast_s if fast_s > 0 else math.nan

    def ratio_line(self, name: str, slow: str, fast: str, extra: str = "", timed_loop: bool = False) -> str:
        """``  name ...... 1.23x [best 1.30x]  (extra; other processes' CPU s: ...)``"""
        text = f"  {name} {self.ratio(slow, fast, timed_loop):.2f}x"
        if self.rounds > 1:
            best_fast = self._seconds(self.best(fast), timed_loop)
            text += f" [best {ratio_text(self._seconds(self.best(slow), timed_loop), best_fast)}]"
        other = f"other processes' CPU s: {self.median(slow).other_cpu:.1f} during {slow}, "
        other += f"{self.median(fast).other_cpu:.1f} during {fast}"
        return text + f"  ({extra}{'; ' if extra else ''}{other})"

    @property
    def outputs_agree(self) -> bool:
        return all(v == "identical" or v.startswith("same values") for v in self.checks.values())

    def reference(self) -> Optional[str]:
        """The reference run the one-worker pipeline is compared with: n
        (NeMo Curator's own stages) if it ran, else c (the literal spec)."""
        return next((key for key in ("n", "c") if key in self.runs), None)

    @property
    def many(self) -> bool:
        """d1m and d2m ran (--many-files)."""
        return "d2m" in self.runs

    def paired(self, slow: str, fast: str) -> list:
        """``slow``'s time over ``fast``'s, round by round (the two ran back to back)."""
        return [
            self.measured(s) / self.measured(f) if self.measured(f) > 0 else math.nan
            for s, f in zip(self.runs[slow], self.runs[fast])
        ]

    def fractions(self, one: str, two: str, ceiling: tuple) -> list:
        """Each round's two-worker gain (``one`` over ``two``) over that round's own
        ceiling (``ceiling``: the (slow, fast) pair it is judged against)."""
        return [d / c for d, c in zip(self.paired(one, two), self.paired(*ceiling))]

    def ceiling(self) -> dict:
        """The same-run ceilings for two processes against one, and d2 vs d1 as a
        fraction of each (with --many-files, d2m vs d1m too). The ratios are of
        the medians; each fraction is the median of the rounds' own fractions
        (a round's pairs ran back to back, so a drift between rounds cancels)."""
        d = self.ratio("d1", "d2")
        b, x = self.ratio("b", "b2"), self.ratio("x1", "x2")
        c = {"d2 vs d1": d, "b vs b2": b, "control": x}
        pairs = {"": ("d1", "d2")}
        if self.many:
            c["d2m vs d1m"] = self.ratio("d1m", "d2m")
            pairs["many "] = ("d1m", "d2m")
        for prefix, (one, two) in pairs.items():
            for name, ceiling in (("of b2", ("b", "b2")), ("of control", ("x1", "x2"))):
                rounds = self.fractions(one, two, ceiling)
                c[prefix + name] = statistics.median(rounds)
                c[prefix + name + " rounds"] = rounds
        return c


def _per_round(ceiling: dict, prefix: str) -> str:
    """With several rounds: each round's own fractions, of which the two above
    are the medians."""
    rounds = ceiling[prefix + "of b2 rounds"]
    if len(rounds) < 2:
        return ""
    listed = ", ".join(f"{v:.2f}" for v in rounds)
    control = ", ".join(f"{v:.2f}" for v in ceiling[prefix + "of control rounds"])
    return f"; medians of the rounds' own: {listed} of b vs b2, {control} of the control's"


def _dots(name: str, width: int = 64) -> str:
    return f"{name} {'.' * max(3, width - len(name) - 1)}"


def report_default(args, argv: Sequence[str], m: Measured) -> int:
    """Print one workload's table, ratios, ceiling and output checks; 0 when the
    outputs agree."""
    from benchmarks.timing import pipeline_cmd

    w, checks, nemo_info, probes, probe_n = m.workload, m.checks, m.nemo_info, m.probes, m.probe_n
    entries, in_bytes = w.entries, w.in_bytes
    results = {key: m.median(key) for key in m.runs}
    repeat = m.rounds
    order = [k for k in ("a", "b", "b2", "c", "n", "d1", "d1c", "d2", "d1m", "d2m") if k in results]
    cpus = os.cpu_count() or 1
    say()
    say(
        f"== alm_beam benchmark, shape {w.shape.name}: {entries} entries, {in_bytes / MB:.1f} MB input "
        f"({in_bytes / entries / 1000:.1f} KB an entry), {results['b'].out_bytes / MB:.1f} MB output =="
    )
    say(f"shape {w.shape.name}: {w.shape.what}")
    say(f"at start: {m.started}; at end: {m.ended}")
    say(
        f"other processes used {m.other_cpu:.1f} CPU s during the {m.wall:.1f} s of the runs: "
        f"{100 * m.other_cpu / (m.wall * cpus):.0f} % of the machine's {cpus} CPUs "
        "(/proc/stat busy time minus the bench's own and its children's)"
    )
    say()
    say(markdown_table([results[k] for k in order], {k: m.best(k) for k in order} if repeat > 1 else None))
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
        + (
            f" Each row is the median of {repeat} rounds (for an even count the faster of the "
            "two middle runs); best wall s: the fastest of them."
            if repeat > 1
            else ""
        )
    )
    noisy = [r.key for r in results.values() if r.other_cpu > 0.1 * r.proc_wall * cpus]
    if noisy:
        say(
            f"WARNING: other processes used more than 10% of the machine during {', '.join(noisy)}"
            "; those wall times are pessimistic (rerun on a quiet machine, or with --repeat)"
        )
    for key in [k for k in ("d1", "d2", "d1m", "d2m") if k in results]:
        r, info = results[key], m.pipe_info[key]
        say(
            f"{key}: {r.procs} process(es) in the tree at most, peak summed PSS "
            f"{fmt_mib(r.tree_pss)} MiB, {info['ranges']} read ranges "
            f"in {info['units']} work units (input.split_mb={m.split_mb or 'auto'}), "
            f"{info['errors']} error lines"
        )
        say(f"    {describe_shard_times(r.shard_times, r.wall)}")
    say()
    say(
        "Ratios (time of the slower / time of the faster"
        + (f"; of the medians of {repeat} rounds, [best]: of the fastest runs" if repeat > 1 else "")
        + "):"
    )
    b, d1 = results["b"], results["d1"]
    if "c" in results:
        c = results["c"]
        say(
            m.ratio_line(
                _dots("b vs c  logic speedup over the reference-like logic"),
                "c",
                "b",
                f"CPU: {ratio_text(c.cpu, b.cpu)}",
            )
        )
        say(m.ratio_line(_dots("d1 vs c whole pipeline, 1 worker, vs reference logic"), "c", "d1"))
    if "n" in results:
        n = results["n"]
        say(
            m.ratio_line(
                _dots("b vs n  logic vs NeMo Curator's stages (timed loops)"),
                "n",
                "b",
                f"CPU: {ratio_text(n.cpu, b.cpu)}",
                timed_loop=True,
            )
        )
        say(
            m.ratio_line(
                _dots("d1 vs n whole pipeline, 1 worker, vs NeMo Curator's stages"),
                "n",
                "d1",
                f"whole processes: {n.proc_wall:.2f} s vs {d1.wall:.2f} s; "
                f"NeMo Curator's timed loop alone: {n.wall:.2f} s",
            )
        )
        if "d1c" in results:
            say(m.ratio_line(_dots("d1c vs n the same with --compact"), "n", "d1c"))
    say(m.ratio_line(_dots("b vs a  logic time / floor time (1.00x = at the floor)"), "b", "a"))
    if probes and entries > probe_n:
        per_entry, fixed, quarter = {}, {}, {}
        for key in ("d1", "d2"):
            quarter[key] = median_run(probes[key], float)
            per_entry[key] = (results[key].wall - quarter[key]) / (entries - probe_n)
            fixed[key] = results[key].wall - entries * per_entry[key]
        say(
            f"  per-entry and fixed cost, from the same runs on the first {probe_n} entries "
            "(T(N) - T(N/4)) / (N - N/4); a difference of two wall times, so rough (a "
            "2-worker gain above 2x is noise):"
        )
        for key, workers in (("d1", "1 worker "), ("d2", "2 workers")):
            say(
                f"    {key} {workers}: {per_entry[key] * 1e3:.3f} ms/entry + {fixed[key]:.2f} s "
                f"fixed (start-up, shutdown); {probe_n} entries took {quarter[key]:.2f} s"
            )
        m1, m2, f1, f2 = per_entry["d1"], per_entry["d2"], fixed["d1"], fixed["d2"]
        if m1 > 0 and m2 > 0:
            if "c" in results:
                c_entry = results["c"].wall / entries
                say(f"  {_dots('d1 vs c  per entry (fixed cost left out)')} {ratio_text(c_entry, m1)}")
                say("           whole process reaches 6x at " + break_even(6, c_entry, 0.0, m1, f1))
            say(f"  {_dots('d2 vs d1 per entry (fixed cost left out)')} {ratio_text(m1, m2)}")
            say("           whole process reaches 1.6x at " + break_even(1.6, m1, f1, m2, f2))
    say()
    ceiling = m.ceiling()
    b2, x1, x2 = results["b2"], results["x1"], results["x2"]
    say("Two workers against this machine's own ceiling (two processes at once vs one, same rounds):")
    say(m.ratio_line(_dots("d2 vs d1 2 workers vs 1 (whole process)"), "d1", "d2"))
    say(
        m.ratio_line(
            _dots("b vs b2 the bare logic, 2 processes at once vs 1"),
            "b",
            "b2",
            f"CPU: {b2.cpu:.2f} s vs {b.cpu:.2f} s for the same entries",
        )
    )
    say(
        m.ratio_line(
            _dots("x1 vs x2 CPU-only control, 2 at once vs one after the other"),
            "x1",
            "x2",
            f"{x1.wall:.2f} s vs {x2.wall:.2f} s",
        )
    )
    say(
        f"  => d2 vs d1 is {ceiling['of b2']:.2f} of b vs b2 and {ceiling['of control']:.2f} of the "
        "control's gain (1.00 = two workers gain all that two processes gain here)" + _per_round(ceiling, "")
    )
    if m.many:
        say(m.ratio_line(_dots(f"d2m vs d1m the same on {args.many_files} manifests"), "d1m", "d2m"))
        say(
            f"  => d2m vs d1m is {ceiling['many of b2']:.2f} of b vs b2 and "
            f"{ceiling['many of control']:.2f} of the control's gain" + _per_round(ceiling, "many ")
        )
    alone = [r.wall / 2 for r in m.runs["x1"]]
    say(
        f"  one control process took {min(alone):.2f} to {max(alone):.2f} s across the rounds "
        f"(mean of each round's two): the machine's speed moved by "
        f"{100 * (max(alone) / min(alone) - 1):.0f} %"
    )
    say()
    if nemo_info:
        say(
            f"NeMo Curator {nemo_info.get('nemo_curator')} stage files (sha256): "
            + ", ".join(f"{k} {v[:16]}" for k, v in nemo_info.get("stage_sha256", {}).items())
        )
    say(
        "Outputs (as multisets of lines, compared with b; n ignoring manifest_filepath, which "
        "NeMo Curator leaves null; d1c ignoring the fields --compact omits; with --files, "
        "d (and d1m, d2m always) ignoring the source file and the place in it; `train`: the training lines):"
    )
    for key, verdict in checks.items():
        say(f"  {key} vs b{' train' if key.endswith(' train') else ''}: {verdict}")
    all_same = m.outputs_agree
    say(f"  => outputs of b and d are {'IDENTICAL' if all_same else 'NOT identical'}")
    say()
    say("Command: python -m benchmarks.bench " + shlex.join(argv))
    shown_input = f"<directory of {args.files} manifests>" if w.moved else "<input.jsonl>"
    say("Pipeline runs: " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 1, m.split_mb)))
    say("               " + shlex.join(pipeline_cmd("python", shown_input, "<out>", 2, m.split_mb)))
    if m.many:
        many_input = f"<directory of {args.many_files} manifests>"
        say("  d1m, d2m: the same with --input " + shlex.quote(many_input))
    return 0 if all_same else 1


def report_shapes(measured: Sequence[Measured], argv: Sequence[str]) -> int:
    """The ratios of every shape of one invocation side by side; 0 when every
    shape's outputs agree."""
    cpus = os.cpu_count() or 1
    refs = {m.reference() for m in measured} - {None}
    ref = refs.pop() if len(refs) == 1 else None
    rounds = measured[0].rounds
    say()
    say("== every shape, one invocation" + (f" (medians of {rounds} rounds)" if rounds > 1 else "") + " ==")
    say()
    ref_head = f" | d1 vs {ref} | b vs {ref}" if ref else ""
    many = all(m.many for m in measured)
    many_head = " | d2m vs d1m | d2m vs d1m / b vs b2 | d2m vs d1m / x1 vs x2" if many else ""
    say(
        f"| shape | entries | MB in | KB an entry{ref_head} | d2 vs d1 | b vs b2 | x1 vs x2 "
        f"| d2 vs d1 / b vs b2 | d2 vs d1 / x1 vs x2{many_head} | other processes' share of the machine "
        "| outputs |"
    )
    say("| --- |" + " ---: |" * (9 + (2 if ref else 0) + (3 if many else 0)) + " --- |")
    for m in measured:
        w, c = m.workload, m.ceiling()
        ref_cells = f" | {m.ratio(ref, 'd1'):.2f}x | {m.ratio(ref, 'b', timed_loop=True):.2f}x" if ref else ""
        many_cells = (
            f" | {c['d2m vs d1m']:.2f}x | {c['many of b2']:.2f} | {c['many of control']:.2f}" if many else ""
        )
        say(
            f"| {w.shape.name} | {w.entries:,} | {w.in_bytes / MB:.1f} | {w.in_bytes / w.entries / 1000:.1f}"
            f"{ref_cells} | {c['d2 vs d1']:.2f}x | {c['b vs b2']:.2f}x | {c['control']:.2f}x "
            f"| {c['of b2']:.2f} | {c['of control']:.2f}{many_cells} "
            f"| {100 * m.other_cpu / (m.wall * cpus):.0f} % "
            f"| {'identical' if m.outputs_agree else 'NOT identical'} |"
        )
    say()
    if ref:
        whole = (
            "whole process against whole process" if ref == "n" else "whole process against the timed loop"
        )
        say(
            f"d1 vs {ref}: the one-worker pipeline against "
            + ("NeMo Curator's own stages" if ref == "n" else "the literal spec")
            + f", {whole}; b vs {ref}: the bare logic against it, timed loops."
        )
    say(
        "x1 vs x2: the CPU-only control; the two fractions are d2 vs d1 over each same-run ceiling "
        "(1.00 = two workers gain all that two processes gain here)"
        + ("; d2m vs d1m: the same on the workload cut into many manifests" if many else "")
        + ". Other processes' share: "
        "their CPU seconds over the shape's runs, against the machine's CPUs times that time."
    )
    say("Command: python -m benchmarks.bench " + shlex.join(argv))
    return 0 if all(m.outputs_agree for m in measured) else 1
