"""Curation parameters: the spec's section 2, typed and validated.

Pure Python (no Beam): the per-entry algorithms take a ``CurationParams`` and
nothing else, so they can be unit-tested and benchmarked without a pipeline.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is invalid; raised before any pipeline is built."""


# Integers are recorded in summary.json (orjson: 64-bit integers only) and may
# reach engines that hold them in a Java long: every configured integer fits.
INT64_MAX = (1 << 63) - 1
BRIEF_CHARS = 60  # the most of one value an error message echoes

_BRIEF_REPR = reprlib.Repr()
_BRIEF_REPR.maxlevel, _BRIEF_REPR.maxlist, _BRIEF_REPR.maxtuple = 3, 6, 6
_BRIEF_REPR.maxdict, _BRIEF_REPR.maxstring, _BRIEF_REPR.maxother = 4, BRIEF_CHARS, BRIEF_CHARS
_BRIEF_REPR.maxlong = BRIEF_CHARS


def brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """A value as an error message shows it: its repr, cut to ``limit`` characters.

    Built piecewise (reprlib), so a huge list or string costs no more than its
    first few items; every config and params message formats values with it.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        text = f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    else:
        try:
            text = _BRIEF_REPR.repr(value)
        except Exception:  # noqa: BLE001 - a value whose repr fails is still reported
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = BRIEF_CHARS) -> str:
    """Plain text (a flag, a path, an error's own words) cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_text(key: Any) -> str:
    """A mapping key as a message names it: as written when it is a short string."""
    return key if isinstance(key, str) and len(key) <= 40 else brief(key, 40)


class UnsupportedNumber(str):
    """Text that looks like a number but is not one alm_beam accepts (``0x10``,
    ``.inf``, ``1e999``, ``1.2.3``): a string wherever a string is expected, and
    a one-line refusal naming ``reason`` where a number is (see config.config_loader)."""

    reason: str = "not a number"

    def __new__(cls, text: str, reason: str):
        obj = super().__new__(cls, text)
        obj.reason = reason
        return obj

    def __repr__(self) -> str:  # shown as the user wrote it, unquoted
        return str.__str__(self)


def _as_field_list(key: str, value: Any) -> tuple[str, ...]:
    """Accept a list of names or the reference's comma-separated string form."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{key}={brief(value)}: expected a list of field names or a comma-separated string")


def check_number(key: str, value: Any, *, integer: bool = False) -> float | int:
    """A finite number (an integer if ``integer``) within 64-bit integer range, or
    ConfigError naming ``key``: the type and range checks every numeric value gets."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, UnsupportedNumber):
        raise ConfigError(f"{key}={brief(value)}: {value.reason}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={brief(value)}: expected {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={brief(value)}: expected a finite number")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key}={brief(value)}: expected an integer")
        value = int(value)
    if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ConfigError(
            f"{key}={brief(value)}: out of range; integers must fit in 64 bits (at most {INT64_MAX})"
        )
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
        raise ConfigError(f"{section}: expected a mapping of parameters, got {brief(raw)}")
    out = {}
    for key, value in raw.items():
        full = f"{section}.{key_text(key)}"
        if key not in rules:
            raise ConfigError(f"{full}: unknown key; allowed keys in {section}: {', '.join(sorted(rules))}")
        kind, check, allowed = rules[key]
        if kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{full}={brief(value)}: expected {allowed}")
        elif kind == "fields":
            value = _as_field_list(full, value)
        else:
            value = check_number(full, value, integer=(kind == "int"))
            if not check(value):
                raise ConfigError(f"{full}={brief(value)}: out of range; allowed: {allowed}")
        out[key] = value
    return out


def make_params(
    builder: Mapping[str, Any] | None = None, overlap: Mapping[str, Any] | None = None
) -> CurationParams:
    """Build validated parameters from plain mappings (YAML sections)."""
    b = BuilderParams(**_coerce("builder", _BUILDER_RULES, builder or {}))
    o = OverlapParams(**_coerce("overlap", _OVERLAP_RULES, overlap or {}))
    if b.min_speakers > b.max_speakers:
        raise ConfigError(
            f"builder.min_speakers={b.min_speakers} > builder.max_speakers={b.max_speakers}; "
            "allowed: 0 <= min_speakers <= max_speakers"
        )
    if not math.isfinite(b.max_duration):
        raise ConfigError(
            f"builder.target_window_duration={brief(b.target_window_duration)} with "
            f"builder.tolerance={brief(b.tolerance)}: the longest window "
            "(target_window_duration * (1 + tolerance)) is beyond the largest number; "
            "allowed: a smaller target_window_duration"
        )
    return CurationParams(builder=b, overlap=o)
