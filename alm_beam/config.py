"""Run configuration: YAML file + ``--set`` overrides -> a validated ``RunConfig``.

Kept apart from pipeline construction: everything here is checked before a
pipeline object exists, and every error names the key, the value and what is
allowed. Precedence, lowest first: built-in defaults (the NeMo Curator
tutorial's), the ``--config`` file, ``--set KEY=VALUE``, explicit flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import yaml

from alm_beam.params import ConfigError, CurationParams, make_params

SECTIONS = ("builder", "overlap", "input", "output", "pipeline_options")
RESHUFFLE_CHOICES = ("auto", True, False)
# input.max_line_mb: at least 1 KiB (every error record keeps a prefix of the
# line), at most 1 TiB (beyond any line a worker could hold anyway).
MIN_LINE_MB, MAX_LINE_MB = 0.001, 1 << 20


@dataclasses.dataclass(frozen=True)
class InputConfig:
    paths: tuple[str, ...] = ()
    split_mb: Any = "auto"          # largest read range in MB; auto: balanced per worker (planning.py)
    reshuffle: Any = "auto"         # auto: on for distributed runners, off for DirectRunner
    max_error_fraction: Optional[float] = None  # None: no budget, the summary warns
    max_line_mb: float = 64         # a longer line is a line_too_long error record (not held)

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
    num_shards: int = 0             # 0: the runner decides; N forces N shards (adds a shuffle)
    compact: bool = False           # omit pre-filter `windows` and `stats.lost_win_full_data`
    overwrite: bool = False         # allow a non-empty output directory (cleans our files)
    max_raw_chars: int = 2000       # raw line text kept in an error record
    training_manifest: bool = True  # also write train-*.jsonl, one line per kept window


@dataclasses.dataclass(frozen=True)
class RunConfig:
    params: CurationParams
    input: InputConfig
    output: OutputConfig
    pipeline_options: tuple[str, ...]  # Beam flags from YAML, placed before CLI flags


def parse_set(item: str) -> tuple[str, Any]:
    """``section.key=VALUE`` with VALUE parsed as YAML (``false``, ``60``, ``[a, b]``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. "
                          "builder.min_speakers=3; sections: " + ", ".join(SECTIONS))
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: VALUE is not valid YAML: {exc}") from None
    return key, value


def load_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping with sections "
                          + ", ".join(SECTIONS))
    return data


def merge_overrides(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict:
    merged = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for key, value in overrides:
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"{key}: unknown section {section!r}; allowed: "
                              + ", ".join(SECTIONS))
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: expected a mapping, got {target!r}")
        target[name] = value
    return merged


def _section(raw: Mapping[str, Any], name: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {value!r}")
    return dict(value)


def _check_keys(section: str, values: Mapping[str, Any], cls) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"{section}.{key}: unknown key; allowed keys in {section}: "
                              + ", ".join(allowed))


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r}: expected true or false")
    return value


def _num(key: str, value: Any, ok, allowed: str, integer: bool = False):
    bad_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if integer and isinstance(value, float) and not bad_type:
        bad_type = not value.is_integer()
    if bad_type or not ok(value):
        raise ConfigError(f"{key}={value!r}: allowed: {allowed}")
    return int(value) if integer else value


def _input_config(values: dict) -> InputConfig:
    _check_keys("input", values, InputConfig)
    out = {}
    if "paths" in values:
        paths = values["paths"]
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ConfigError(f"input.paths={paths!r}: expected a list of paths or globs")
        out["paths"] = tuple(paths)
    if "split_mb" in values and values["split_mb"] != "auto":
        out["split_mb"] = _num("input.split_mb", values["split_mb"], lambda v: v > 0,
                               "auto, or a number of MB > 0")
    if "max_line_mb" in values:
        out["max_line_mb"] = _num("input.max_line_mb", values["max_line_mb"],
                                  lambda v: MIN_LINE_MB <= v <= MAX_LINE_MB,
                                  f"a number of MB, {MIN_LINE_MB:g} <= max_line_mb <= "
                                  f"{MAX_LINE_MB:g}")
    if "reshuffle" in values:
        value = values["reshuffle"]
        if value not in RESHUFFLE_CHOICES or (value != "auto" and not isinstance(value, bool)):
            raise ConfigError(f"input.reshuffle={value!r}: allowed: auto, true, false")
        out["reshuffle"] = value
    if values.get("max_error_fraction") is not None:
        out["max_error_fraction"] = _num("input.max_error_fraction",
                                         values["max_error_fraction"],
                                         lambda v: 0 <= v <= 1, "0 <= max_error_fraction <= 1")
    return InputConfig(**out)


def _output_config(values: dict) -> OutputConfig:
    _check_keys("output", values, OutputConfig)
    out = {}
    if "path" in values:
        if not isinstance(values["path"], str) or not values["path"]:
            raise ConfigError(f"output.path={values['path']!r}: expected a directory path")
        out["path"] = values["path"]
    if "num_shards" in values:
        out["num_shards"] = _num("output.num_shards", values["num_shards"], lambda v: v >= 0,
                                 "an integer >= 0 (0: the runner decides)", integer=True)
    for key in ("compact", "overwrite", "training_manifest"):
        if key in values:
            out[key] = _bool(f"output.{key}", values[key])
    if "max_raw_chars" in values:
        out["max_raw_chars"] = _num("output.max_raw_chars", values["max_raw_chars"],
                                    lambda v: v >= 1, "an integer >= 1", integer=True)
    return OutputConfig(**out)


def _pipeline_flags(values: Mapping[str, Any]) -> tuple[str, ...]:
    """YAML Beam options -> command-line flags (placed first, so CLI flags win)."""
    flags = []
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                flags.append(f"--{key}")
        elif isinstance(value, list):
            flags.extend(f"--{key}={v}" for v in value)
        elif value is not None:
            flags.append(f"--{key}={value}")
    return tuple(flags)


def build_config(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]] = ()
                 ) -> RunConfig:
    """Validate everything; the first problem raises ConfigError naming its key."""
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section; allowed: " + ", ".join(SECTIONS))
    merged = merge_overrides(raw, overrides)
    params = make_params(_section(merged, "builder"), _section(merged, "overlap"))
    for name in ("start", "end"):
        if name in params.builder.drop_fields:
            raise ConfigError(f"builder.drop_fields={list(params.builder.drop_fields)!r}: "
                              f"may not drop {name!r}; windows are measured by start/end")
    return RunConfig(params=params,
                     input=_input_config(_section(merged, "input")),
                     output=_output_config(_section(merged, "output")),
                     pipeline_options=_pipeline_flags(_section(merged, "pipeline_options")))
