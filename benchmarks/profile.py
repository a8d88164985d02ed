"""``--profile``: where one worker's time goes (each step of curate_line timed,
against the whole 1-worker pipeline), and the fixed cost of a run by part."""

from __future__ import annotations

import json
import os
import time
from typing import Sequence

import orjson

from benchmarks.children import run_child
from benchmarks.outputs import compare_outputs, line_digests, output_files
from benchmarks.phases import train_path
from benchmarks.report import MB, environment, say
from benchmarks.timing import bench_cmd, pipeline_cmd
from benchmarks.workloads import SHAPES, write_shape

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


def phase_profile(src: str, out: str, source: str) -> dict:
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


def phase_startup(run_args: Sequence[str]) -> dict:
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
    """``[(label, seconds)]`` of a run's start-up trace (``phase_startup``'s marks)."""
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
    shape = SHAPES[args.shape[0]]
    src = os.path.abspath(os.path.join(work, "input.jsonl"))
    say(f"alm_beam bench --profile: {environment()}")
    entries, in_bytes = write_shape(src, shape, args.entries, args.seed)
    say(f"  {src}: {entries} entries, {in_bytes / MB:.1f} MB (shape {shape.name}: {shape.what})")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)

    out_p = os.path.join(work, "profile.jsonl")
    say("running b with a timer around each step of curate_line ...")
    os.sync()
    doc = json.loads(
        run_child(bench_cmd(args, "profile", src, out_p, source=src), logs, "profile", args.poll).stdout
    )
    out_d1 = os.path.join(work, "d1")
    say("running d1. pipeline, DirectRunner, 1 worker (whole process) ...")
    os.sync()
    d1 = run_child(pipeline_cmd(args.python, src, out_d1, 1, None) + ["--quiet"], logs, "d1", args.poll)
    same = compare_outputs(line_digests([out_p], False), [out_p], output_files(out_d1, "windows"))
    same_train = compare_outputs(
        line_digests([train_path(out_p)], False),
        [train_path(out_p)],
        output_files(out_d1, "train"),
        ("line",),
    )

    say("")
    say(f"Where the time goes: {entries} entries, {in_bytes / MB:.1f} MB in, one worker")
    say("")
    say(profile_table(doc["spent"], doc["wall"], d1.wall))
    say("")
    say(f"  profiled b vs d1: {same}; training lines: {same_train}")

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
    say("")
    say(
        "One run on the bundled sample (1 worker), its parts (one traced run; the "
        "interpreter's exit not included):"
    )
    say("")
    say("| part | s |")
    say("| --- | ---: |")
    for label, seconds in startup_parts(trace["marks"]):
        say(f"| {label} | {seconds:.2f} |")
    say(f"| **= until main returned** | {dict(trace['marks'])['main returned']:.2f} |")
    say("")
    say(f"Fixed cost, whole processes (best of {STARTUP_RUNS}):")
    say("")
    say("| process | best s | all runs s |")
    say("| --- | ---: | --- |")
    for label, cmd in runs.items():
        walls = [run_child(cmd, logs, "startup", args.poll).wall for _ in range(STARTUP_RUNS)]
        say(f"| {label} | {min(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} |")
    return 0 if same == "identical" else 1
