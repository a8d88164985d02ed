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
                --direct_running_mode multi_processing``;
  d1m, d2m      (``--many-files K``) d1 and d2 on the same lines cut into
                K manifests, in the same rounds: two workers on many small
                manifests beside one big one, against the same ceilings;
  x. control    a fixed pure-Python arithmetic loop, two processes one after
                the other (x1) and two at once (x2): what two CPU-bound
                processes gain on this machine at this moment, the second
                same-run ceiling for d2 vs d1 beside b vs b2.

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
digests; parsed and compared by value only if the bytes differ). The runs go
in rounds, one per ``--repeat``: the pairs b and b2, x1 and x2, d1 and d2 (d1m
and d2m) each back to back, in the other order every other round, then a; c
and n (minutes each) and the comparisons of the outputs in the first round
only. So a drift in the machine's speed touches both sides of a ratio alike
and the ceilings are measured beside the pipeline; the report gives each
run's median over the rounds and its best, and each two-worker fraction as
the median of the rounds' own fractions.
Every ratio is printed with the CPU the other processes on the machine used
during the two runs it compares, and the report's head gives their share of
the machine over all the runs.

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
import contextlib
import json
import os
import shutil
import sys
import tempfile
from typing import Optional, Sequence

from benchmarks.phases import phase_control, phase_floor, phase_logic
from benchmarks.profile import phase_profile, phase_startup, run_profile
from benchmarks.reference import phase_nemo, phase_reference, resolve_nemo_python
from benchmarks.report import say
from benchmarks.resources import run_instructions, run_memory
from benchmarks.timing import CONTROL_ITERATIONS, run_default
from benchmarks.workloads import ALL_SHAPES, SHAPES, parse_shape_count, parse_shapes

DEFAULT_ENTRIES = 2000


def _shapes(text: str) -> tuple:
    try:
        return parse_shapes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shape_count(text: str) -> tuple:
    try:
        return parse_shape_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        "--shape",
        type=_shapes,
        default=("default",),
        metavar="SHAPE",
        help="the workload's shape: "
        + "; ".join(f"{s.name}: {s.what}".replace("%", "%%") for s in SHAPES.values())
        + f". Several separated by commas, or all ({', '.join(ALL_SHAPES)}): each is "
        "measured in turn, and their ratios are set side by side at the end. --entries "
        "is the default shape's count; the others scale it to about the same bytes "
        "(default: default)",
    )
    parser.add_argument(
        "--entries-of",
        type=_shape_count,
        action="append",
        default=[],
        metavar="SHAPE=N",
        help="N entries of SHAPE instead of its share of --entries (repeatable): to give a "
        "shape that is fast per byte (words) as much work as the others, so that the fixed "
        "start of a run weighs alike",
    )
    parser.add_argument(
        "--ranges",
        type=int,
        default=None,
        metavar="R",
        help="fix the pipeline runs' largest byte range at 1/R of the input "
        "(input.split_mb = input size / R, the same for 1 and 2 workers); "
        "default: the pipeline's own planning (input.split_mb auto: one "
        "piece for one worker; for two, 32 pieces per worker, claimed on demand, the last few cut smaller)",
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
        "--many-files",
        type=int,
        default=0,
        metavar="K",
        help="also run d1m and d2m: the pipeline with 1 and 2 workers on the workload "
        "cut into K manifests of consecutive lines, in the same rounds as d1 and d2, "
        "so that two workers on one big manifest and on many small ones are judged "
        "against the same ceilings in one invocation (default: off)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run every measurement K times, in K rounds, and report the median "
        "and the best; each pair (b and b2, x1 and x2, d1 and d2) back to back, "
        "in the other order every other round; c and n, minutes each, in the "
        "first round only (the machine is shared: other processes' CPU use is "
        "reported per run; default: %(default)s)",
    )
    parser.add_argument(
        "--control-iterations",
        type=int,
        default=CONTROL_ITERATIONS,
        metavar="N",
        help="iterations of the CPU-only control's arithmetic loop, per process "
        "(x1, x2; default: %(default)s, about 2 to 4 s)",
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
        choices=("floor", "logic", "reference", "nemo", "profile", "startup", "control"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--phase-input", help=argparse.SUPPRESS)
    parser.add_argument("--phase-output", help=argparse.SUPPRESS)
    parser.add_argument("--phase-source", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phase-sizes", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phase-iterations", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def compile_alm_beam_bytecode() -> None:
    """Compile alm_beam's modules to bytecode before any timed run, as a normal
    install has them (pip compiles at install; Python writes them on first
    import). Where PYTHONDONTWRITEBYTECODE is set (this sandbox) and alm_beam is
    an editable install, every run would otherwise compile them from source:
    about 0.4 s of each pipeline run. Same-run ratios are timed either way."""
    import compileall

    import alm_beam

    package = os.path.dirname(alm_beam.__file__)
    done = compileall.compile_dir(package, quiet=2)
    say(f"alm_beam bench: alm_beam's bytecode {'compiled' if done else 'NOT compiled'} in {package}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_arg_parser()
    args = parser.parse_args(argv)

    if args.phase:
        if args.phase == "logic":
            doc = phase_logic(args.phase_input, args.phase_output, args.phase_source, args.phase_sizes)
        elif args.phase == "reference":
            doc = phase_reference(args.phase_input, args.phase_output, args.phase_source)
        elif args.phase == "nemo":
            doc = phase_nemo(args.phase_input, args.phase_output)
        elif args.phase == "profile":
            doc = phase_profile(args.phase_input, args.phase_output, args.phase_source)
        elif args.phase == "control":
            doc = phase_control(args.phase_iterations)
        elif args.phase == "startup":  # the bundled sample, its run summary on stderr
            with contextlib.redirect_stdout(sys.stderr):
                doc = phase_startup(["--output", args.phase_output, "--quiet"])
        else:
            doc = phase_floor(args.phase_input, args.phase_output, args.phase_sizes)
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
    if args.many_files == 1 or args.many_files < 0:
        parser.error("--many-files must be >= 2 (or 0: off)")
    if args.many_files and args.files > 1:
        parser.error(
            "--files cuts the input of every pipeline run; --many-files adds runs on a cut one: give one"
        )
    if args.many_files and (args.memory or args.instructions or args.profile):
        parser.error(
            "--many-files adds runs to the benchmark; --memory, --instructions and --profile take none"
        )
    if args.control_iterations < 1:
        parser.error("--control-iterations must be >= 1")
    if args.memory_gb <= 0 or args.memory_hours <= 0:
        parser.error("--memory-gb and --memory-hours must be > 0")
    if args.poll <= 0:
        parser.error("--poll must be > 0")
    if sum(map(bool, (args.memory, args.instructions, args.profile))) > 1:
        parser.error("--memory, --instructions and --profile are separate runs; give one")
    if args.instructions and args.entries < 2:
        parser.error("--instructions needs --entries >= 2")
    args.entries_of = dict(args.entries_of)
    stray = sorted(set(args.entries_of) - set(args.shape))
    if stray:
        parser.error(f"--entries-of {stray[0]}=...: that shape is not in --shape {','.join(args.shape)}")
    if args.entries_of and (args.memory or args.instructions or args.profile):
        parser.error(
            "--entries-of sizes the benchmark's shapes; --memory, --instructions and --profile take none"
        )
    if args.memory and args.shape != ("default",):
        parser.error("--memory makes its own workloads; it takes no --shape")
    if (args.instructions or args.profile) and len(args.shape) > 1:
        parser.error("--instructions and --profile take one --shape")

    args.nemo_python = resolve_nemo_python(args.reference, args.nemo_python)
    if args.reference == "nemo" and not args.nemo_python:
        parser.error(
            "--reference nemo: NeMo Curator's reference venv is not installed; run "
            "`bash pipelines/nemo-reference.sh` (or give --nemo-python)"
        )
    compile_alm_beam_bytecode()
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
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
