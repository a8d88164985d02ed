"""Beam pipeline options, checked before a pipeline exists.

``python -m alm_beam.run`` passes every flag it does not know to Beam. Beam
itself parses them late and leniently: an unknown flag or a stray word (the
second file of an unquoted ``--input dir/*.jsonl``) is dropped with a
"Discarding unparseable args" warning, and an unknown ``--runner`` is noticed
only once the pipeline runs. Here the same flags go through Beam's own
argument parser (every ``PipelineOptions`` subclass registers its options on
it), so a flag's value is told apart from a stray word exactly as Beam tells
them apart, and every problem is one ``ConfigError`` line.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Optional, Sequence

from alm_beam.core.params import ConfigError, brief, clip

UNPARSEABLE_WARNING = "Discarding unparseable args"
# How close a flag must be to one of alm_beam's own to be taken for its misspelling
# (difflib's ratio). No Beam option comes closer than 0.75 (--spark_version and
# --version); tests/test_instant_refusals.py checks every one Beam knows.
NEAR_MISS_RATIO = 0.8


def _beam_warning_filter(record: logging.LogRecord) -> bool:
    """Flags are checked here first; Beam's late warning would only repeat (or
    precede) the real error."""
    return UNPARSEABLE_WARNING not in record.getMessage()


def silence_beam_flag_warning() -> None:
    logging.getLogger("apache_beam.options.pipeline_options").addFilter(_beam_warning_filter)


def _refuse(message: str):
    raise ConfigError(clip(message, 200))


def beam_option_parser():
    """Beam's own parser with every known pipeline option registered (the one
    ``PipelineOptions.get_all_options`` builds), raising ConfigError instead of
    printing Beam's usage and exiting."""
    from apache_beam.options.pipeline_options import PipelineOptions

    captured = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
    parser = captured[0]
    parser.error = _refuse
    return parser


def _split_leftovers(leftovers: Sequence[str]) -> tuple[list, list]:
    """Beam's parser's leftovers -> (unknown flags, stray words)."""
    flags, strays = [], []
    for arg in leftovers:
        if arg == "--":
            continue
        (flags if arg.startswith("-") and arg != "-" else strays).append(arg)
    return flags, strays


def _shown(items: Sequence[str], most: int = 3) -> str:
    text = ", ".join(brief(i) for i in items[:most])
    return text + (f" and {len(items) - most} more" if len(items) > most else "")


def _unrecognized(flags: Sequence[str]) -> ConfigError:
    names = sorted({f.split("=", 1)[0] for f in flags})
    return ConfigError(
        "unrecognized option(s): "
        + ", ".join(clip(n) for n in names)
        + " (neither an alm_beam option nor a Beam pipeline option; "
        "see --help)"
    )


def _unexpected(strays: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"unexpected argument(s): {_shown(strays)}; give several inputs after one --input "
        "(--input a.jsonl b.jsonl) and quote a glob (--input 'dir/*.jsonl')"
    )


def near_miss_of(flag: str, own_flags: Sequence[str]) -> Optional[str]:
    """The alm_beam flag that ``flag`` misspells (``--inptu``: ``--input``), or None."""
    import difflib

    close = difflib.get_close_matches(flag.split("=", 1)[0], own_flags, n=1, cutoff=NEAR_MISS_RATIO)
    return close[0] if close else None


def check_without_beam(cli_flags: Sequence[str], own_flags: Sequence[str]) -> None:
    """What the flags alm_beam's parser left over show without Beam's parser
    (importing Beam takes seconds): a misspelling of one of alm_beam's own flags,
    or words with no flag at all that could take them as its value. The same
    ConfigError ``check_command_line`` would raise; the rest is left to it."""
    flags, strays = _split_leftovers(cli_flags)
    misses = [flag for flag in flags if near_miss_of(flag, own_flags)]
    if misses:
        raise _unrecognized(misses)
    if strays and not flags:
        raise _unexpected(strays)


def check_config_options(parser, flags: Sequence[str], where: str) -> None:
    """One ``pipeline_options`` key of the config (as flags); ``where`` names its
    origin for the message, e.g. ``--config run.yaml: pipeline_options.runner``."""
    try:
        _, leftovers = parser.parse_known_args(list(flags))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if leftovers:
        raise ConfigError(f"{where}: unknown Beam option (see --help)")


MAX_WORKERS_ENV = "ALM_BEAM_MAX_WORKERS"  # a deliberate, larger worker ceiling
WORKERS_PER_CPU = 4  # the default ceiling: 4 workers per CPU this process may use
MAX_PORT = 65535
MAX_JOB_SERVER_TIMEOUT_S = 86400
MAX_PARALLELISM = 32768  # Flink's own upper bound for (max_)parallelism


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_ceiling() -> int:
    """The most worker processes or threads a run may start on this machine:
    ``WORKERS_PER_CPU`` per usable CPU, or ``$ALM_BEAM_MAX_WORKERS``."""
    text = os.environ.get(MAX_WORKERS_ENV)
    if text is None:
        return WORKERS_PER_CPU * _usable_cpus()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_WORKERS_ENV}={clip(text)!r}: expected a whole number >= 1")
    return value


def _ceiling_text(ceiling: int) -> str:
    if os.environ.get(MAX_WORKERS_ENV) is not None:
        return f"(the ceiling {MAX_WORKERS_ENV} sets)"
    return f"({WORKERS_PER_CPU} x this machine's {_usable_cpus()} CPUs; set {MAX_WORKERS_ENV} to allow more)"


def check_option_ranges(known) -> None:
    """The numeric Beam options alm_beam plans with or a run relies on are in
    range (docs/cli.md, "Beam option ranges"); each problem is one ConfigError.

    Beam checks only that they are integers: a negative worker count failed
    deep in the runner, a count far above the machine's CPUs started that
    many processes or threads.
    """
    ceiling = worker_ceiling()
    workers = known.direct_num_workers
    if workers is not None and not 1 <= workers <= ceiling:
        raise ConfigError(f"--direct_num_workers={workers}: allowed: 1 .. {ceiling} {_ceiling_text(ceiling)}")
    sdk = getattr(known, "sdk_worker_parallelism", None)
    if sdk is not None:
        try:
            value = int(sdk)
        except (TypeError, ValueError):
            value = -1
        if not 0 <= value <= ceiling:
            raise ConfigError(
                f"--sdk_worker_parallelism={clip(str(sdk))}: allowed: 0 (the runner chooses) .. "
                f"{ceiling} {_ceiling_text(ceiling)}"
            )
    for name in ("job_port", "artifact_port", "expansion_port"):
        value = getattr(known, name, None)
        if value is not None and not 0 <= value <= MAX_PORT:
            raise ConfigError(f"--{name}={value}: allowed: 0 .. {MAX_PORT} (0: any free port)")
    timeout = getattr(known, "job_server_timeout", None)
    if timeout is not None and not 1 <= timeout <= MAX_JOB_SERVER_TIMEOUT_S:
        raise ConfigError(
            f"--job_server_timeout={timeout}: allowed: 1 .. {MAX_JOB_SERVER_TIMEOUT_S} (seconds)"
        )
    for name in ("parallelism", "max_parallelism"):
        value = getattr(known, name, None)
        if value is not None and value != -1 and not 1 <= value <= MAX_PARALLELISM:
            raise ConfigError(
                f"--{name}={value}: allowed: -1 (the engine's default) or 1 .. {MAX_PARALLELISM}"
            )


def check_command_line(parser, config_flags: Sequence[str], cli_flags: Sequence[str]):
    """The Beam flags of a run (config first, command line after, so it wins):
    the parsed options, or ConfigError for an unknown flag, a stray word or a
    value out of range (``check_option_ranges``)."""
    try:
        known, leftovers = parser.parse_known_args(list(config_flags) + list(cli_flags))
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    flags, strays = _split_leftovers(leftovers)
    if flags:
        raise _unrecognized(flags)
    if strays:
        raise _unexpected(strays)
    check_option_ranges(known)
    return known


def check_runner(name: Optional[str]) -> None:
    """``--runner NAME`` resolves to a runner class Beam can load (Beam's own
    lookup: a known short name, with or without "Runner", or a dotted path)."""
    if name is None:
        return
    from alm_beam.execution.runners import DASK_REFUSAL, beam_version, runner_key

    if runner_key(name) == "dask":  # known to Beam, and known to lose our data: say why
        raise ConfigError(DASK_REFUSAL.format(beam=beam_version()))
    from apache_beam.options.pipeline_options import StandardOptions

    by_name = {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}
    path = by_name.get(name.lower(), by_name.get(name.lower() + "runner", name))
    shown = clip(name)
    if "." not in path:
        raise ConfigError(
            f"--runner {shown}: unknown runner; known: "
            + ", ".join(StandardOptions.KNOWN_RUNNER_NAMES)
            + ", or the dotted path of a PipelineRunner class"
        )
    module_name, class_name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = (
            "; install it with: pip install 'apache-beam[gcp]'"
            if "dataflow" in path.lower()
            else "; install it with: pip install 'apache-beam[interactive]'"
            if "interactive" in path.lower()
            else ""
        )
        raise ConfigError(f"--runner {shown}: cannot be loaded ({clip(str(exc), 120)}){hint}") from None
    except Exception as exc:  # noqa: BLE001 - a user's dotted path may fail to import in any way
        raise ConfigError(
            f"--runner {shown}: cannot be loaded ({type(exc).__name__}: {clip(str(exc), 120)})"
        ) from None
    if not isinstance(getattr(module, class_name, None), type):
        raise ConfigError(f"--runner {shown}: {module_name} has no runner class {class_name}")
