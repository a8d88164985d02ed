"""Entry point: ``python -m alm_beam.run [options] [Beam pipeline options]``.

Order of work: parse flags -> load and validate config -> check the Beam
options (unknown flags, stray arguments, the runner) -> check the output
location -> discover input -> check the output directory -> build and run the
pipeline -> print the summary. Every user error is reported before a pipeline
object exists, and the first one is the only line printed. Ctrl-C and SIGTERM:
see ``interrupts``.
"""

from __future__ import annotations

import os
import sys

# First of all, when this process is the command (``python -m alm_beam.run``, or
# the ``alm-beam`` console script of setup.py, which imports this module and then
# calls main()): a Ctrl-C during start-up is one line too.
if __name__ == "__main__" or os.path.basename(sys.argv[0] if sys.argv else "") == "alm-beam":
    from alm_beam.execution import interrupts

    interrupts.install()

import argparse
import errno
import json
import logging
import platform
import re
import tempfile
import textwrap
import time
from importlib import resources
from typing import TYPE_CHECKING, Optional, Sequence

from alm_beam import __version__
from alm_beam.config import (
    COMPRESSION_CHOICES,
    ConfigError,
    RunConfig,
    build_config,
    load_yaml,
    merge_overrides,
    parse_set,
    pipeline_option_flags,
)
from alm_beam.core.display import terminal_safe
from alm_beam.core.params import clip
from alm_beam.execution import interrupts
from alm_beam.execution.lean_import import (
    HIDDEN_IN_A_WHOLE_PROCESS,
    REMOTE_CLIENTS,
    hide_more,
    unused_modules_hidden_from_beam,
)
from alm_beam.io.beam_noise import filter_start_up_noise

if TYPE_CHECKING:
    from alm_beam.execution.direct_workers import WarmWorkerPool

# The worker pool, the runners and the run's temp root are imported once the
# checks have passed: a refusal answers without them (issue 20).

SAMPLE_MANIFEST = "sample_manifest.jsonl.gz"
BUDGET_MARKER = "ALM_BEAM_ERROR_BUDGET: "  # summary.check_error_budget's message prefix
BALANCE_MARKER = "ALM_BEAM_LINE_BALANCE: "  # summary.check_line_balance's message prefix
JOB_FAILURE_MARKERS = (BUDGET_MARKER, BALANCE_MARKER)  # reported in one line by main
DISK_FULL_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"

EPILOG = textwrap.dedent("""\
    Any other flag is passed to Apache Beam as a pipeline option, for example:
      --runner DirectRunner|FlinkRunner|SparkRunner|PrismRunner|DataflowRunner
      --direct_num_workers 2 --direct_running_mode multi_processing
      --setup_file ./setup.py   (ships alm_beam to remote workers)
    With the default DirectRunner alm_beam runs Beam's FnApiRunner in this
    process directly (no attempt to download a Prism binary).

    Config keys for --set (and the YAML file):
      builder.target_window_duration  builder.tolerance  builder.min_sample_rate
      builder.min_bandwidth  builder.min_speakers  builder.max_speakers
      builder.truncation  builder.drop_fields  builder.drop_fields_top_level
      overlap.overlap_percentage  overlap.target_duration
      input.paths  input.split_mb  input.reshuffle  input.max_error_fraction
      input.max_line_mb
      output.path  output.num_shards  output.compact  output.overwrite
      output.max_raw_chars  output.training_manifest  output.compression
      pipeline_options.<beam option>
    Example: --set builder.min_speakers=3 --set builder.drop_fields=[words,confidence]

    Exit status: 0 success, 2 invalid configuration/input/output, 1 pipeline failure
    (including an exceeded --max_error_fraction), 130 Ctrl-C, 143 SIGTERM.
    Details: docs/cli.md.""")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with alm_beam's one-line error (argparse prints its usage first)."""

    def error(self, message):
        message = re.sub(r"'([^']{60})[^']+'", r"'\1...'", message)  # a huge value, cut
        self.exit(2, terminal_safe(f"alm_beam: error: {clip(message, 300)} (see --help)") + "\n")


def _say(line: str) -> None:
    """One line of ours on stderr (error, warning, note); what it quotes from
    input (a path, a lock holder's host) cannot control the terminal."""
    print(terminal_safe(line), file=sys.stderr)


def build_arg_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="python -m alm_beam.run",
        description="Curate diarized conversation manifests (JSONL) into fixed-duration\n"
        "training windows for audio language models, with NeMo Curator's ALM\n"
        "semantics, on any Apache Beam runner.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="YAML config (sections builder, overlap, input, output, "
        "pipeline_options); default: the NeMo Curator tutorial values",
    )
    parser.add_argument(
        "--input",
        action="append",
        nargs="+",
        metavar="PATH",
        dest="inputs",
        help="one or more manifest files, directories (searched recursively "
        "for .jsonl/.json, also .gz/.bz2/...), or globs; any Beam "
        "filesystem (gs://, s3://, ...). Repeatable. Default: input.paths, "
        "else a bundled sample",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="output directory for windows-*.jsonl, errors-*.jsonl, "
        "train-*.jsonl and summary.json (default: output.path, "
        "./alm_output)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override one config value; VALUE is YAML. Repeatable",
    )
    parser.add_argument(
        "--num_shards",
        type=int,
        metavar="N",
        help="exactly N shards per output (0: runner decides; N>0 adds a shuffle of the whole output)",
    )
    parser.add_argument(
        "--compact",
        action="store_true",
        default=None,
        help="omit the pre-filter `windows` list and stats.lost_win_full_data "
        "from each output entry (much smaller output)",
    )
    parser.add_argument(
        "--output_compression",
        choices=COMPRESSION_CHOICES,
        help="write windows-*, errors-* and train-* as .jsonl (none, the default), "
        ".jsonl.gz (gzip) or .jsonl.zst (zstd); as output.compression",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace a previous alm_beam run's output in --output",
    )
    parser.add_argument(
        "--max_error_fraction",
        type=float,
        metavar="F",
        help="fail the job when more than F (0..1) of the lines are rejected "
        "(default: no budget; the summary warns)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print no progress while the job runs (by default stderr shows the bytes and lines "
        "read on the DirectRunner, the job's state, elapsed time and counts on other runners)",
    )
    parser.add_argument("--version", action="version", version=f"alm_beam {__version__}")
    return parser


def own_option_strings(parser: argparse.ArgumentParser) -> list:
    """alm_beam's own long flags (``--input``, ...): a near miss of one is
    refused without Beam (``beam_flags.check_without_beam``)."""
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def resolve_config(args: argparse.Namespace) -> RunConfig:
    raw = load_yaml(args.config) if args.config else {}
    overrides = [parse_set(item) for item in args.overrides]
    if args.inputs:
        overrides.append(("input.paths", [path for group in args.inputs for path in group]))
    for key, value in (
        ("output.path", args.output),
        ("output.num_shards", args.num_shards),
        ("output.compact", args.compact),
        ("output.compression", args.output_compression),
        ("output.overwrite", args.overwrite),
        ("input.max_error_fraction", args.max_error_fraction),
    ):
        if value is not None:
            overrides.append((key, value))
    return build_config(raw, overrides)


def bundled_sample_path() -> str:
    return str(resources.files("alm_beam") / "data" / SAMPLE_MANIFEST)


def check_beam_options(args: argparse.Namespace, cfg: RunConfig, cli_flags: list):
    """Every Beam option of the run, from the config and the command line: each
    config key alone (so its error names the file or the --set), then all
    together with the command line's. Returns Beam's parsed options."""
    from alm_beam.execution.beam_flags import (
        beam_option_parser,
        check_command_line,
        check_config_options,
        check_runner,
    )

    parser = beam_option_parser()
    raw = load_yaml(args.config) if args.config else {}
    from_set = {
        key.partition(".")[2]
        for key, _ in (parse_set(i) for i in args.overrides)
        if key.partition(".")[0] == "pipeline_options"
    }
    merged = merge_overrides(raw, [parse_set(item) for item in args.overrides])
    for key, value in dict(merged.get("pipeline_options") or {}).items():
        where = (
            f"--set pipeline_options.{clip(str(key))}"
            if key in from_set
            else f"--config {args.config}: pipeline_options.{clip(str(key))}"
        )
        check_config_options(parser, pipeline_option_flags(key, value), where)
    known = check_command_line(parser, cfg.pipeline_options, cli_flags)
    check_runner(known.runner)
    return known


def _not_budget_failure(record: logging.LogRecord) -> bool:
    """Beam logs a failed step's exception with its traceback; an exceeded error
    budget or unbalanced line counts are reported by ``main`` in one line instead."""
    message = record.getMessage()
    return not any(marker in message for marker in JOB_FAILURE_MARKERS)


def _not_disk_full(record: logging.LogRecord) -> bool:
    """A full disk is reported by ``_run_into`` in one line, without Beam's traceback."""
    return DISK_FULL_TEXT not in record.getMessage()


def main(argv: Optional[Sequence[str]] = None, *, whole_process: bool = False) -> int:
    """The command, however it is started: ``alm-beam``, ``python -m
    alm_beam.run``, or called from Python (``argv`` without the program name;
    default ``sys.argv[1:]``). Returns the exit status. While it runs, Ctrl-C
    and SIGTERM stop it with one line and exit 130 / 143 (``interrupts``);
    what it printed is flushed before the caller's handlers come back, so a
    report blocked on a full pipe is covered too. ``whole_process``: the
    process ends with the command (``cli``), so Beam may be imported without
    packages a later caller could want (``lean_import.hide_more``)."""
    with interrupts.installed(), unused_modules_hidden_from_beam():
        try:
            return _command(argv, whole_process=whole_process)
        finally:
            _flush_std_streams()


def cli() -> None:
    """``alm-beam`` and ``python -m alm_beam.run``: the command, then the exit,
    without the interpreter's teardown of Beam's modules (about 0.3 s) once the
    run is reported."""
    exit_code = main(whole_process=True)
    if "apache_beam" in sys.modules:
        from alm_beam.execution.direct_workers import flush_and_exit

        flush_and_exit(exit_code)
    sys.exit(exit_code)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing more can be said there
            pass


def _command(argv: Optional[Sequence[str]], *, whole_process: bool = False) -> int:
    parser = build_arg_parser()
    args, beam_args = parser.parse_known_args(argv)
    filter_start_up_noise()
    logging.getLogger("apache_beam.runners.common").addFilter(_not_budget_failure)
    logging.getLogger("apache_beam.runners.common").addFilter(_not_disk_full)

    # Every flag and value, then the output location, before anything else is
    # said or started: the first problem is the only line printed.
    from alm_beam.io.preflight import PreflightError, preflight_not_empty, preflight_output

    try:
        cfg = resolve_config(args)
        if whole_process:
            # Before anything imports Beam: what this run cannot need stays out of it.
            from alm_beam.execution.direct_workers import runs_on_direct_runner

            hide_more(HIDDEN_IN_A_WHOLE_PROCESS)
            flags = [*cfg.pipeline_options, *beam_args]
            if runs_on_direct_runner(flags) and not _any_remote([*cfg.input.paths, cfg.output.path, *flags]):
                hide_more(REMOTE_CLIENTS)
        from alm_beam.execution.beam_flags import check_without_beam, silence_beam_flag_warning

        silence_beam_flag_warning()
        # A misspelling of our own flags is refused at once; Beam's parser (and
        # with it Beam, seconds to import) is needed only when Beam flags are given.
        check_without_beam(beam_args, own_option_strings(parser))
        if beam_args or cfg.pipeline_options:
            check_beam_options(args, cfg, beam_args)
        preflight_output(cfg.output.path)
    except (ConfigError, PreflightError) as exc:
        _say(f"alm_beam: error: {exc}")
        return 2
    beam_flags = list(cfg.pipeline_options) + list(beam_args)
    from alm_beam.io.discovery import DiscoveryError, check_output_outside_inputs, find_inputs

    paths = list(cfg.input.paths)
    if not paths:
        paths = [bundled_sample_path()]
        _say(
            f"alm_beam: no --input given; curating the bundled sample manifest {paths[0]}",
        )
    found = None
    local = not _any_remote([*paths, cfg.output.path])
    try:
        if local:
            # An --output inside an --input first (the better diagnosis of a
            # non-empty --output), then a non-empty --output without
            # --overwrite: both need no Beam, which finding the inputs imports.
            check_output_outside_inputs(paths, cfg.output.path)
        preflight_not_empty(cfg.output.path, cfg.output.overwrite)
        if local:
            # Local inputs are found (or refused) before any worker is started.
            found = find_inputs(paths, cfg.output.path)
    except (DiscoveryError, PreflightError) as exc:
        _say(f"alm_beam: error: {exc}")
        return 2
    from alm_beam.execution.direct_workers import WarmWorkerPool, planned_worker_processes
    from alm_beam.execution.runners import stop_started
    from alm_beam.io.run_temp import enter_run_temp, leave_run_temp

    # Every temporary file of this run (Beam's, the SDK workers') goes under one
    # root, removed at the end; roots of killed runs are removed first (run_temp).
    temp = enter_run_temp()
    try:
        # DirectRunner multi_processing: the SDK workers start now, not once the
        # graph runs (see direct_workers); they are stopped whatever happens next.
        processes = planned_worker_processes(beam_flags)
        pool = WarmWorkerPool(processes) if processes else None
        if pool is not None:
            interrupts.on_stop(pool.close)
        try:
            return _run(cfg, beam_flags, pool, paths, found, quiet=args.quiet)
        finally:
            stop_started()  # a Prism started for --runner PrismRunner
            if pool is not None:
                interrupts.forget(pool.close)
                pool.close()
    finally:
        leave_run_temp(temp)


def _any_remote(paths: Sequence[str]) -> bool:
    """A path on a Beam filesystem (``scheme://``) among ``paths``: only those
    need Beam to be checked."""
    return any("://" in path for path in paths)


def _run(
    cfg: RunConfig,
    beam_flags: list,
    pool: "Optional[WarmWorkerPool]",
    paths: list,
    found,
    *,
    quiet: bool = False,
) -> int:
    """``paths``: the inputs (or the bundled sample); ``found``: their local
    discovery (``discovery.find_inputs``), or None where a path is remote."""
    from alm_beam.execution.direct_workers import DIRECT_RUNNER_NAMES, planned_worker_processes
    from alm_beam.execution.runners import check_runner_supported
    from alm_beam.io.discovery import DiscoveryError, find_inputs

    # Beam and the engine clients are imported only once the flags parse and
    # local inputs are found, so those refusals answer at once.
    from alm_beam.io.output_dir import OutputDirError, OutputRun
    from alm_beam.io.planning import plan_shared_units, plan_units
    from alm_beam.io.storage import StorageError, check_locations, check_readable, probe_output

    try:
        from apache_beam.options.pipeline_options import PipelineOptions

        check_locations(paths, cfg.output.path, PipelineOptions(beam_flags))  # object stores
        if found is None:
            found = find_inputs(paths, cfg.output.path)
        files, skipped = found
        check_readable(files)

        from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

        options = PipelineOptions(beam_flags)  # checked by check_beam_options
        runner_name = options.view_as(StandardOptions).runner
        check_runner_supported(options)  # DaskRunner refused; PrismRunner needs a local binary
        on_direct = runner_name in DIRECT_RUNNER_NAMES
        reshuffle = (not on_direct) if cfg.input.reshuffle == "auto" else cfg.input.reshuffle
        # The FnApiRunner shares a stage's elements out among its workers once,
        # statically: one unit per worker, over pieces claimed on demand. Other
        # runners schedule elements dynamically: many ranges.
        processes = planned_worker_processes(beam_flags) if on_direct else 0
        if processes > 1:
            # The DirectRunner's SDK workers share this machine: they claim the
            # pieces on demand from a directory in the run's temp root.
            claim_dir = tempfile.mkdtemp(prefix="claims-")
            units = plan_shared_units(files, processes, claim_dir, cfg.input.split_bytes)
        else:
            units = plan_units(files, 1 if on_direct else None, cfg.input.split_bytes)
        probe_output(cfg.output.path)
        # Last of the checks: from here on the output directory is this run's.
        output = OutputRun.start(cfg.output.path, cfg.output.overwrite)
    except (ConfigError, DiscoveryError, OutputDirError, StorageError) as exc:
        _say(f"alm_beam: error: {exc}")
        return 2
    if skipped:
        _say(
            f"alm_beam: warning: {len(skipped)} input path(s) not read (listed in summary.json "
            f"skipped_inputs), e.g. {skipped[0].path}: {skipped[0].reason}",
        )
    try:
        return _run_into(
            output,
            cfg,
            options,
            files,
            units,
            runner_name,
            on_direct,
            reshuffle,
            pool,
            quiet=quiet,
            skipped=skipped,
        )
    finally:
        output.release()


def _read_ranges(units) -> int:
    """How many byte ranges the plan reads (shared units list the same ones)."""
    from alm_beam.io.planning import SharedRanges

    if units and type(units[0]) is SharedRanges:
        return len(units[0].ranges)
    return sum(len(unit) for unit in units)


def _finish_staged_result(output, cfg: RunConfig) -> None:
    """The commit step's checks and its one file, from the summary.json the job staged.

    The line balance and the error budget are checked here, once the job has
    ended, rather than inside the job, where an engine's restart strategy would
    retry a failing check (a rerun Flink job then fails on its first attempt's
    files). A failing check removes the staged summary.json (no summary, no
    success) and raises into ``_run_into``'s one line. Then report.html is
    rendered from summary.json alone (as ``python -m alm_beam.report`` does) and
    staged beside it.
    """
    from apache_beam.io.filesystems import FileSystems

    from alm_beam.io.output_dir import SUMMARY_NAME
    from alm_beam.results.report import REPORT_NAME, render_html
    from alm_beam.results.summary import check_error_budget, check_line_balance

    path = FileSystems.join(output.staging, SUMMARY_NAME)
    with FileSystems.open(path) as fh:
        doc = json.loads(fh.read())
    try:
        check_line_balance(doc)
        check_error_budget(doc, cfg.input.max_error_fraction)
    except Exception:
        FileSystems.delete([path])
        raise
    output.stage(REPORT_NAME, render_html(doc).rstrip("\n").encode("utf-8") + b"\n")


def _run_into(
    output,
    cfg: RunConfig,
    options,
    files,
    units,
    runner_name,
    on_direct: bool,
    reshuffle: bool,
    pool: "Optional[WarmWorkerPool]",
    *,
    quiet: bool = False,
    skipped=(),
) -> int:
    """Run the pipeline into ``output``'s staging area, then commit the result."""
    if output.lock.taken_over is not None:
        _say(
            f"alm_beam: note: took over the lock of a run that is gone ({output.lock.taken_over.describe()})",
        )
    if output.removed:
        _say(
            f"alm_beam: --overwrite: removed {len(output.removed)} entries of the previous run "
            f"from {cfg.output.path}",
        )

    import apache_beam as beam

    from alm_beam.beam.pipeline import build_pipeline
    from alm_beam.execution.direct_workers import make_direct_runner, worker_command
    from alm_beam.execution.runners import install_quiet_job_stream_threads, lost_job_service, prepare_runner
    from alm_beam.io.discovery import shown_path
    from alm_beam.io.output_dir import SUMMARY_NAME, disk_full_where, is_disk_full
    from alm_beam.results.summary import process_started_epoch_s, render_report

    runner = None
    if on_direct:
        # The Python DirectRunner first tries Prism, which downloads a binary;
        # go straight to the FnApiRunner it would otherwise fall back to (with
        # alm_beam's SDK worker command for multi_processing).
        runner = make_direct_runner(pool.command if pool is not None else worker_command())
    run_info = {
        "alm_beam": __version__,
        "apache_beam": beam.__version__,
        "python": platform.python_version(),
        "runner": "DirectRunner (FnApiRunner)" if on_direct else str(runner_name),
        "reshuffle": reshuffle,
        "manifest_files": len(files),
        "read_ranges": _read_ranges(units),
        "work_units": len(units),
        "started_epoch_s": time.time(),
        "process_started_epoch_s": process_started_epoch_s(),
    }  # summary.json: run.started_at, duration_s, process_duration_s

    from alm_beam.execution.job_progress import job_poll
    from alm_beam.results import progress

    prepare_runner(options)  # --runner PrismRunner: our Prism, stopped by main's finally
    if not on_direct:
        install_quiet_job_stream_threads()  # a lost job service: one line, from this thread
    try:
        # Progress on stderr: from the read step's files on the DirectRunner, from
        # the job's state and counters as the runner reports them elsewhere.
        with (
            progress.watch(on_direct and not quiet, sum(f.size for f in files)) as progress_dir,
            progress.watch_job(not on_direct and not quiet, run_info["runner"]) as job,
        ):
            pipeline = beam.Pipeline(runner=runner, options=options)
            build_pipeline(
                pipeline,
                cfg,
                units,
                [shown_path(f.path) for f in files],  # names that are not UTF-8, escaped
                reshuffle=reshuffle,
                run_info=run_info,
                write_dir=output.staging,
                progress_dir=progress_dir,
                skipped_inputs=[{**s._asdict(), "path": shown_path(s.path)} for s in skipped],
            )
            result = pipeline.run()
            job.attach(job_poll(result))
            result.wait_until_finish()
        _finish_staged_result(output, cfg)
        output.commit()
    except Exception as exc:  # an exceeded error budget is a one-line answer, not a traceback
        text = str(exc)
        for marker in JOB_FAILURE_MARKERS:
            if marker in text:
                if marker == BUDGET_MARKER:
                    output.commit()  # the shards without summary.json: see OutputRun.commit
                else:
                    output.abandon()  # lines unaccounted for: the shards are not a result
                reason = text[text.index(marker) + len(marker) :].splitlines()[0]
                reason = reason.split(" [while running ")[0]  # Beam's step annotation
                _say(f"alm_beam: error: job failed: {reason}")
                return 1
        lost = lost_job_service(exc, options)
        if lost is not None:
            output.abandon()  # the job's end is unknown: what was staged is not a result
            _say(
                f"alm_beam: error: job failed: {lost}; nothing was committed to {cfg.output.path}",
            )
            return 1
        if is_disk_full(exc):
            where = disk_full_where([cfg.output.path, tempfile.gettempdir()])
            output.abandon()  # frees the space the partial result took
            _say(
                f"alm_beam: error: job failed: no space left on device ({where}); the partial "
                f"result was removed from {cfg.output.path}",
            )
            return 1
        output.abandon()
        if os.environ.get("ALM_BEAM_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0].split(" [while running ")[0]
        _say(
            f"alm_beam: error: job failed: {type(exc).__name__}: {first[:500]}; nothing was committed "
            f"to {cfg.output.path} (ALM_BEAM_DEBUG=1 shows the traceback)",
        )
        return 1

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(FileSystems.join(cfg.output.path, SUMMARY_NAME)) as fh:
        doc = json.loads(fh.read())
    print(render_report(doc, cfg.output.path))
    return 0


if __name__ == "__main__":
    cli()
