"""One manifest line in, one output line (or one error record) out.

This is the whole per-entry path the pipeline runs on every line it reads:
parse (orjson) -> validate -> build windows -> filter overlaps -> serialize
(the output entry and, unless turned off, one training line per kept window).
It is fused into one function so an entry is decoded once and encoded once
(each stripped segment is serialized once, and the windows, the filtered
windows and the lost-window records only reference those bytes), and it never
raises for bad input: every failure becomes an error record with a reason.
Pure Python apart from orjson; no Beam.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Union

import orjson

from alm_beam.builder import build_windows_serialized
from alm_beam.overlap import filter_overlaps
from alm_beam.params import CurationParams
from alm_beam.reader import JSON_WHITESPACE
from alm_beam.stats import entry_record
from alm_beam.training import training_lines
from alm_beam.validate import Rejection, serialization_rejection, validate_entry

DEFAULT_MAX_RAW_CHARS = 2000


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """What the output entry carries (not part of the spec's computation)."""

    compact: bool = False  # omit pre-filter `windows` and `stats.lost_win_full_data`
    max_raw_chars: int = DEFAULT_MAX_RAW_CHARS  # raw line kept in an error record
    training_manifest: bool = True  # also make the training lines (training.py)


class Curated(NamedTuple):
    line: bytes          # the output JSON line, without newline
    record: tuple        # stats.entry_record(...)
    train: bytes = b""   # the entry's training lines joined by newlines (b"": none)


class Failed(NamedTuple):
    line: bytes          # the error record JSON line, without newline
    reason: str          # Rejection.code, for errors_by_reason


LineOutcome = Union[Curated, Failed, None]


def error_record(raw: bytes, source: str, line: Optional[int], offset: Optional[int],
                 rejection: Rejection, max_raw_chars: int,
                 raw_bytes: Optional[int] = None) -> bytes:
    """One error-output line: where the line came from, why, and the raw text (cut).

    ``raw_bytes``: the whole line's size when ``raw`` is only its beginning
    (a too-long line, a damaged file's partial last line).
    """
    text = raw.decode("utf-8", errors="backslashreplace")
    size = len(raw) if raw_bytes is None else raw_bytes
    cut = len(text) > max_raw_chars or size > len(raw)
    return orjson.dumps({
        "manifest_filepath": source,
        "line": line,
        "byte_offset": offset,
        "reason": rejection.code,
        "detail": rejection.detail,
        "raw": text[:max_raw_chars] if cut else text,
        "raw_truncated": cut,
        "raw_bytes": size,
    })


def failed_line(raw: bytes, source: str, line: Optional[int], offset: Optional[int],
                rejection: Rejection, max_raw_chars: int,
                raw_bytes: Optional[int] = None) -> Failed:
    """The outcome of a line that is not curated: its error record and reason."""
    return Failed(error_record(raw, source, line, offset, rejection, max_raw_chars, raw_bytes),
                  rejection.code)


def parse_line(raw: bytes):
    """Decode one manifest line; returns (value, None) or (None, Rejection)."""
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return None, Rejection("invalid_utf8",
                                   f"line is not valid UTF-8 (byte {bad.start})")
        hint = ""
        if any(token in raw for token in (b"NaN", b"Infinity")):
            hint = " (NaN and Infinity are not JSON numbers)"
        return None, Rejection("invalid_json", f"line is not valid JSON: {exc}{hint}")


def curate_entry(entry: dict, params: CurationParams, source: str,
                 options: OutputOptions = OutputOptions(), *,
                 line: Optional[int] = None, offset: Optional[int] = None) -> Curated:
    """Build, filter and serialize one validated entry (and its training lines)."""
    training = options.training_manifest
    build = build_windows_serialized(entry, params.builder,
                                     keep_lost_windows=not options.compact,
                                     keep_spans=training)
    out = build.entry
    below_rate = entry["audio_sample_rate"] < params.builder.min_sample_rate
    filter_overlaps(out, params.overlap, source, build.timestamps)
    record = entry_record(out, below_rate)
    train = b""
    if training and out["windows"]:
        train = training_lines(entry, out, build.spans, build.timestamps,
                               frozenset(params.builder.drop_fields), source, line, offset)
    if options.compact:
        out.pop("windows", None)
        out["stats"].pop("lost_win_full_data", None)
    return Curated(orjson.dumps(out), record, train)


def curate_line(raw: bytes, source: str, params: CurationParams, *,
                line: Optional[int] = None, offset: Optional[int] = None,
                options: OutputOptions = OutputOptions()) -> LineOutcome:
    """Process one raw line. None for a blank line (skipped, not an error).

    Blank means JSON whitespace only (space, tab, CR, LF; ``reader.is_blank``):
    a line of form feeds is not JSON, so it is an invalid_json error record.
    """
    if not raw.strip(JSON_WHITESPACE):
        return None
    entry, rejection = parse_line(raw)
    if rejection is None:
        rejection = validate_entry(entry)
    if rejection is None:
        try:
            return curate_entry(entry, params, source, options, line=line, offset=offset)
        except orjson.JSONEncodeError as exc:  # nesting orjson reads but cannot write
            rejection = serialization_rejection(entry, exc)
        except Exception as exc:  # a bug must cost one line, not the run
            rejection = Rejection(f"internal_error:{type(exc).__name__}",
                                  f"unexpected error while curating: {exc!r:.300}")
    return failed_line(raw, source, line, offset, rejection, options.max_raw_chars)
