"""Curation parameters: the spec's section 2, typed and validated.

Pure Python (no Beam): the per-entry algorithms take a ``CurationParams`` and
nothing else, so they can be unit-tested and benchmarked without a pipeline.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is invalid; raised before any pipeline is built."""


def _as_field_list(key: str, value: Any) -> tuple[str, ...]:
    """Accept a list of names or the reference's comma-separated string form."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(
        f"{key}={value!r}: expected a list of field names or a comma-separated string"
    )


def _number(key: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}={value!r}: expected {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value!r}: expected a finite number")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key}={value!r}: expected an integer")
        value = int(value)
    return value


@dataclasses.dataclass(frozen=True)
class BuilderParams:
    """Window builder knobs (NeMo Curator's ALMDataBuilderStage)."""

    target_window_duration: float = 120.0
    tolerance: float = 0.1
    min_sample_rate: float = 16000
    min_bandwidth: float = 8000
    min_speakers: int = 2
    max_speakers: int = 5
    truncation: bool = True
    drop_fields: tuple[str, ...] = ("words",)
    drop_fields_top_level: tuple[str, ...] = ("words", "segments")

    @property
    def min_duration(self) -> float:
        # Computed exactly as the reference does, so boundary windows agree.
        return self.target_window_duration - self.target_window_duration * self.tolerance

    @property
    def max_duration(self) -> float:
        return self.target_window_duration + self.target_window_duration * self.tolerance


@dataclasses.dataclass(frozen=True)
class OverlapParams:
    """Overlap filter knobs (NeMo Curator's ALMDataOverlapStage)."""

    overlap_percentage: float = 50
    target_duration: float = 120.0

    @property
    def threshold(self) -> float:
        return self.overlap_percentage / 100.0


@dataclasses.dataclass(frozen=True)
class CurationParams:
    builder: BuilderParams = dataclasses.field(default_factory=BuilderParams)
    overlap: OverlapParams = dataclasses.field(default_factory=OverlapParams)

    def as_dict(self) -> dict:
        """Plain-JSON view, recorded in summary.json so a run is reproducible."""
        b = dataclasses.asdict(self.builder)
        b["drop_fields"] = list(self.builder.drop_fields)
        b["drop_fields_top_level"] = list(self.builder.drop_fields_top_level)
        return {"builder": b, "overlap": dataclasses.asdict(self.overlap)}


# key -> (kind, check, allowed-range text). Checks run after type coercion.
_BUILDER_RULES = {
    "target_window_duration": ("number", lambda v: v > 0, "> 0"),
    "tolerance": ("number", lambda v: 0 <= v < 1, "0 <= tolerance < 1"),
    "min_sample_rate": ("number", lambda v: v >= 0, ">= 0"),
    "min_bandwidth": ("number", lambda v: v >= 0, ">= 0"),
    "min_speakers": ("int", lambda v: v >= 0, ">= 0 and <= max_speakers"),
    "max_speakers": ("int", lambda v: v >= 0, ">= min_speakers"),
    "truncation": ("bool", None, "true or false"),
    "drop_fields": ("fields", None, "a list of field names"),
    "drop_fields_top_level": ("fields", None, "a list of field names"),
}
_OVERLAP_RULES = {
    "overlap_percentage": ("number", lambda v: 0 <= v <= 100, "0 <= overlap_percentage <= 100"),
    "target_duration": ("number", lambda v: v > 0, "> 0"),
}


def _coerce(section: str, rules: Mapping[str, tuple], raw: Mapping[str, Any]) -> dict:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{section}: expected a mapping of parameters, got {raw!r}")
    out = {}
    for key, value in raw.items():
        full = f"{section}.{key}"
        if key not in rules:
            raise ConfigError(
                f"{full}: unknown key; allowed keys in {section}: {', '.join(sorted(rules))}"
            )
        kind, check, allowed = rules[key]
        if kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{full}={value!r}: expected {allowed}")
        elif kind == "fields":
            value = _as_field_list(full, value)
        else:
            value = _number(full, value, integer=(kind == "int"))
            if not check(value):
                raise ConfigError(f"{full}={value!r}: out of range; allowed: {allowed}")
        out[key] = value
    return out


def make_params(builder: Mapping[str, Any] | None = None,
                overlap: Mapping[str, Any] | None = None) -> CurationParams:
    """Build validated parameters from plain mappings (YAML sections)."""
    b = BuilderParams(**_coerce("builder", _BUILDER_RULES, builder or {}))
    o = OverlapParams(**_coerce("overlap", _OVERLAP_RULES, overlap or {}))
    if b.min_speakers > b.max_speakers:
        raise ConfigError(
            f"builder.min_speakers={b.min_speakers} > builder.max_speakers={b.max_speakers}; "
            "allowed: 0 <= min_speakers <= max_speakers"
        )
    return CurationParams(builder=b, overlap=o)
