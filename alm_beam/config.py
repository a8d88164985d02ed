"""Run configuration: YAML file + ``--set`` overrides -> a validated ``RunConfig``.

Kept apart from pipeline construction: everything here is checked before a
pipeline object exists, and every error names the key, the value and what is
allowed. Precedence, lowest first: built-in defaults (the NeMo Curator
tutorial's), the ``--config`` file, ``--set KEY=VALUE``, explicit flags.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import stat
from typing import Any, Mapping, Optional, Sequence

from alm_beam.core.params import (
    INT64_MAX,
    ConfigError,
    CurationParams,
    UnsupportedNumber,
    brief,
    check_number,
    key_text,
    make_params,
)

SECTIONS = ("builder", "overlap", "input", "output", "pipeline_options")
RESHUFFLE_CHOICES = ("auto", True, False)
# input.max_line_mb: at least 1 KiB (every error record keeps a prefix of the
# line), at most 1 TiB (beyond any line a worker could hold anyway).
MIN_LINE_MB, MAX_LINE_MB = 0.001, 1 << 20
MIB = 1 << 20
MAX_NUM_SHARDS = 100_000  # each shard is a file; more is a typo, not a plan
COMPRESSION_CHOICES = ("none", "gzip", "zstd")  # output.compression


@dataclasses.dataclass(frozen=True)
class InputConfig:
    paths: tuple[str, ...] = ()
    split_mb: Any = "auto"  # largest read range in MB; auto: balanced per worker (planning.py)
    reshuffle: Any = "auto"  # auto: on for distributed runners, off for DirectRunner
    max_error_fraction: Optional[float] = None  # None: no budget, the summary warns
    max_line_mb: float = 64  # a longer line is a line_too_long error record (not held)

    @property
    def max_line_bytes(self) -> int:
        return int(self.max_line_mb * (1 << 20))

    @property
    def split_bytes(self):
        """Largest read range in bytes, or None (auto: planned per worker)."""
        return None if self.split_mb == "auto" else max(1, int(self.split_mb * (1 << 20)))


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    path: str = "./alm_output"
    num_shards: int = 0  # 0: the runner decides; N forces N shards (adds a shuffle)
    compact: bool = False  # omit pre-filter `windows` and `stats.lost_win_full_data`
    overwrite: bool = False  # allow a non-empty output directory (cleans our files)
    max_raw_chars: int = 2000  # raw line text kept in an error record
    training_manifest: bool = True  # also write train-*.jsonl, one line per kept window
    compression: str = "none"  # JSONL outputs written as .jsonl, .jsonl.gz (gzip) or .jsonl.zst (zstd)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    params: CurationParams
    input: InputConfig
    output: OutputConfig
    pipeline_options: tuple[str, ...]  # Beam flags from YAML, placed before CLI flags


# --------------------------------------------------------------------------
# YAML as alm_beam reads it (--config files and --set values alike).

NUMBER_TAG = "tag:alm_beam,2026:number"
# Anything a user may mean as a number; ConfigLoader.construct_number decides
# what it is (a plain scalar that does not match stays a string).
_NUMBER_LIKE = re.compile(
    r"""^(?:
      [-+]?[0-9._]*[0-9][0-9._]*(?:[eE][-+]?[0-9_]+)?    # 10, 010, 1_000, .5, 5., 1e3, 1.2.3
    | [-+]?0[xXoObB][0-9a-fA-F_]+                         # 0x10, 0o17, 0b101
    | [-+]?\.?(?:inf|Inf|INF|infinity|Infinity|nan|NaN|NAN)  # inf, .inf, -.inf, nan, .nan
    )$""",
    re.X,
)
_DECIMAL_INT = re.compile(r"^[-+]?[0-9]+(?:_[0-9]+)*$")
_DECIMAL_FLOAT = re.compile(
    r"^[-+]?(?:[0-9]+(?:_[0-9]+)*(?:\.(?:[0-9]+(?:_[0-9]+)*)?)?"
    r"|\.[0-9]+(?:_[0-9]+)*)(?:[eE][-+]?[0-9]+)?$"
)
_MAX_INT_DIGITS = 4000  # far beyond 64 bits; below Python's int-from-text limit (4300)


def parse_number(text: str) -> Any:
    """The number a user means by ``text``: decimal only, the way a person reads it.

    ``10``, ``010`` (ten: no octal), ``+3``, ``1_000`` -> int; ``1e3`` (1000.0),
    ``.5``, ``5.``, ``-2.5E-3`` -> float. Anything else that looks numeric
    (``0x10``, ``.inf``, ``nan``, ``1e999``, ``1.2.3``) -> ``UnsupportedNumber``,
    which the numeric checks refuse in one line and string fields take as text.
    """
    digits = text.lstrip("+-").replace("_", "")
    if _DECIMAL_INT.match(text):
        if len(digits) > _MAX_INT_DIGITS:
            return UnsupportedNumber(
                text,
                f"an integer of {len(digits)} digits; integers must fit in 64 bits (at most {INT64_MAX})",
            )
        return int(text)
    if _DECIMAL_FLOAT.match(text):
        value = float(text)
        if value in (float("inf"), float("-inf")):
            return UnsupportedNumber(text, "beyond the largest number (about 1.8e308)")
        return value
    if re.match(r"^[-+]?0[xXoObB]", text):
        try:
            return UnsupportedNumber(text, f"not a decimal number; write {int(text, 0)}")
        except ValueError:
            return UnsupportedNumber(text, "not a decimal number")
    if "inf" in text.lower() or "nan" in text.lower():
        return UnsupportedNumber(text, "not a finite number")
    return UnsupportedNumber(text, "not a number")


@functools.lru_cache(maxsize=None)
def config_loader():
    """PyYAML's safe loader with two changes for configuration files:

    * numbers follow ``parse_number`` (YAML 1.1 would read ``1e3`` as a string
      and ``010`` as 8);
    * anchors and aliases are refused: an alias of an alias ... expands a few
      hundred bytes into gigabytes (a "billion laughs" bomb), and a config
      file has no need for them.

    Made on first use: PyYAML's import is needed only for ``--config`` and
    ``--set``, and a refusal of anything else answers without it.
    """
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"YAML anchors and aliases ({sign}{event.anchor[:20]}) are not "
                    "supported in a config; write the value out",
                    event.start_mark,
                )
            return super().compose_node(parent, index)

        def construct_number(self, node):
            return parse_number(self.construct_scalar(node))

    ConfigLoader.yaml_implicit_resolvers = {
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    ConfigLoader.add_implicit_resolver(NUMBER_TAG, _NUMBER_LIKE, list("-+0123456789.iInN"))
    ConfigLoader.add_constructor(NUMBER_TAG, ConfigLoader.construct_number)
    return ConfigLoader


def _yaml_problem(exc) -> str:
    """One line for a YAML error: where, and what (PyYAML's own text spans
    several lines and quotes the source)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        problem = (str(exc).splitlines() or ["invalid"])[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = " ".join(str(problem).split())
    return where + (problem if len(problem) <= 160 else problem[:157] + "...")


def parse_yaml(text: str, where: str) -> Any:
    """``text`` read by ``ConfigLoader``; any problem is one ConfigError line
    starting with ``where``."""
    import yaml

    try:
        return yaml.load(text, Loader=config_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None


def parse_set(item: str) -> tuple[str, Any]:
    """``section.key=VALUE`` with VALUE parsed as YAML (``false``, ``60``, ``[a, b]``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        raise ConfigError(
            f"--set {brief(item)}: expected SECTION.KEY=VALUE, e.g. "
            "builder.min_speakers=3; sections: " + ", ".join(SECTIONS)
        )
    value = parse_yaml(text, f"--set {brief(key)}") if text.strip() else None
    return key, value


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; more is the wrong file
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def _read_config_file(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES, or ConfigError:
    opened without waiting (a FIFO would block) and never read past the limit
    (``/dev/zero`` has no end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
            raise ConfigError(f"--config {path}: not a regular file: {kind}")
        try:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        size = max(len(data), os.stat(path).st_size)
        raise ConfigError(
            f"--config {path}: {size:,} bytes, more than a config may hold ({MAX_CONFIG_BYTES:,} bytes)"
        )
    return data


def load_yaml(path: str) -> dict:
    data = _read_config_file(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    data = parse_yaml(text, f"--config {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping with sections " + ", ".join(SECTIONS))
    return data


def merge_overrides(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict:
    merged = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for key, value in overrides:
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(
                f"{key_text(key)}: unknown section {brief(section)}; allowed: " + ", ".join(SECTIONS)
            )
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: expected a mapping, got {brief(target)}")
        target[name] = value
    return merged


def _section(raw: Mapping[str, Any], name: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {brief(value)}")
    return dict(value)


def _check_keys(section: str, values: Mapping[str, Any], cls) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"{section}.{key_text(key)}: unknown key; allowed keys in {section}: " + ", ".join(allowed)
            )


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={brief(value)}: expected true or false")
    return value


def _num(key: str, value: Any, ok, allowed: str, integer: bool = False):
    value = check_number(key, value, integer=integer)
    if not ok(value):
        raise ConfigError(f"{key}={brief(value)}: allowed: {allowed}")
    return value


def _input_config(values: dict) -> InputConfig:
    _check_keys("input", values, InputConfig)
    out = {}
    if "paths" in values:
        paths = values["paths"]
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ConfigError(f"input.paths={brief(paths)}: expected a list of paths or globs")
        out["paths"] = tuple(str(p) for p in paths)
    if "split_mb" in values and values["split_mb"] != "auto":
        # read ranges are whole bytes: at least one, at most a 64-bit offset
        out["split_mb"] = _num(
            "input.split_mb",
            values["split_mb"],
            lambda v: 1 <= v * MIB <= INT64_MAX,
            f"auto, or {1 / MIB!r} (one byte) <= split_mb <= {INT64_MAX // MIB} (a 64-bit byte count)",
        )
    if "max_line_mb" in values:
        out["max_line_mb"] = _num(
            "input.max_line_mb",
            values["max_line_mb"],
            lambda v: MIN_LINE_MB <= v <= MAX_LINE_MB,
            f"a number of MB, {MIN_LINE_MB:g} <= max_line_mb <= {MAX_LINE_MB:g}",
        )
    if "reshuffle" in values:
        value = values["reshuffle"]
        if value not in RESHUFFLE_CHOICES or (value != "auto" and not isinstance(value, bool)):
            raise ConfigError(f"input.reshuffle={brief(value)}: allowed: auto, true, false")
        out["reshuffle"] = value
    if values.get("max_error_fraction") is not None:
        out["max_error_fraction"] = _num(
            "input.max_error_fraction",
            values["max_error_fraction"],
            lambda v: 0 <= v <= 1,
            "0 <= max_error_fraction <= 1",
        )
    return InputConfig(**out)


def _output_config(values: dict) -> OutputConfig:
    _check_keys("output", values, OutputConfig)
    out = {}
    if "path" in values:
        if not isinstance(values["path"], str) or not values["path"]:
            raise ConfigError(f"output.path={brief(values['path'])}: expected a directory path")
        try:
            values["path"].encode("utf-8")
        except UnicodeEncodeError as exc:  # a name from os.fsdecode with a non-UTF-8 byte
            raise ConfigError(
                f"output.path={brief(values['path'])}: the name is not UTF-8 (at character "
                f"{exc.start}); Beam's file sinks need UTF-8 names: choose another directory name"
            ) from None
        out["path"] = str(values["path"])
    if "num_shards" in values:
        out["num_shards"] = _num(
            "output.num_shards",
            values["num_shards"],
            lambda v: 0 <= v <= MAX_NUM_SHARDS,
            f"an integer 0..{MAX_NUM_SHARDS} (0: the runner decides)",
            integer=True,
        )
    for key in ("compact", "overwrite", "training_manifest"):
        if key in values:
            out[key] = _bool(f"output.{key}", values[key])
    if "compression" in values:
        value = values["compression"]
        if not (isinstance(value, str) and value in COMPRESSION_CHOICES):
            raise ConfigError(
                f"output.compression={brief(value)}: allowed: " + ", ".join(COMPRESSION_CHOICES)
            )
        out["compression"] = value
    if "max_raw_chars" in values:
        out["max_raw_chars"] = _num(
            "output.max_raw_chars", values["max_raw_chars"], lambda v: v >= 1, "an integer >= 1", integer=True
        )
    return OutputConfig(**out)


def pipeline_option_flags(key: Any, value: Any) -> list[str]:
    """One YAML Beam option -> its command-line flags."""
    if isinstance(value, bool):
        return [f"--{key}"] if value else []
    if isinstance(value, list):
        return [f"--{key}={v}" for v in value]
    return [] if value is None else [f"--{key}={value}"]


def _pipeline_flags(values: Mapping[str, Any]) -> tuple[str, ...]:
    """YAML Beam options -> command-line flags (placed first, so CLI flags win)."""
    return tuple(flag for key, value in values.items() for flag in pipeline_option_flags(key, value))


def build_config(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]] = ()) -> RunConfig:
    """Validate everything; the first problem raises ConfigError naming its key."""
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{key_text(key)}: unknown section; allowed: " + ", ".join(SECTIONS))
    merged = merge_overrides(raw, overrides)
    params = make_params(_section(merged, "builder"), _section(merged, "overlap"))
    for name in ("start", "end"):
        if name in params.builder.drop_fields:
            raise ConfigError(
                f"builder.drop_fields={brief(list(params.builder.drop_fields))}: "
                f"may not drop {name!r}; windows are measured by start/end"
            )
    return RunConfig(
        params=params,
        input=_input_config(_section(merged, "input")),
        output=_output_config(_section(merged, "output")),
        pipeline_options=_pipeline_flags(_section(merged, "pipeline_options")),
    )
