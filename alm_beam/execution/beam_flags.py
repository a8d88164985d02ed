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
from typing import Optional, Sequence

from alm_beam.core.params import ConfigError, brief, clip

UNPARSEABLE_WARNING = "Discarding unparseable args"


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


def check_config_options(parser, flags: Sequence[str], where: str) -> None:
    """One ``pipeline_options`` key of the config (as flags); ``where`` names its
    origin for the message, e.g. ``--config run.yaml: pipeline_options.runner``."""
    try:
        _, leftovers = parser.parse_known_args(list(flags))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if leftovers:
        raise ConfigError(f"{where}: unknown Beam option (see --help)")


def check_command_line(parser, config_flags: Sequence[str], cli_flags: Sequence[str]):
    """The Beam flags of a run (config first, command line after, so it wins):
    the parsed options, or ConfigError for an unknown flag or a stray word."""
    try:
        known, leftovers = parser.parse_known_args(list(config_flags) + list(cli_flags))
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    flags, strays = _split_leftovers(leftovers)
    if flags:
        names = sorted({f.split("=", 1)[0] for f in flags})
        raise ConfigError(
            "unrecognized option(s): "
            + ", ".join(clip(n) for n in names)
            + " (neither an alm_beam option nor a Beam pipeline option; "
            "see --help)"
        )
    if strays:
        raise ConfigError(
            f"unexpected argument(s): {_shown(strays)}; give several inputs after one --input "
            "(--input a.jsonl b.jsonl) and quote a glob (--input 'dir/*.jsonl')"
        )
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
