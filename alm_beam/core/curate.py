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
import json
from typing import NamedTuple, Optional, Union

import orjson

from alm_beam.core.builder import build_windows, build_windows_serialized
from alm_beam.core.overlap import filter_overlaps
from alm_beam.core.params import CurationParams
from alm_beam.core.stats import entry_record
from alm_beam.core.training import training_lines
from alm_beam.core.validate import JSON_WHITESPACE, Rejection, serialization_rejection, validate_entry

DEFAULT_MAX_RAW_CHARS = 2000
DEFAULT_MAX_LINE_BYTES = 64 << 20  # input.max_line_mb's default: the reader takes such a line back
# An output entry too long for ``max_line_bytes`` is written reduced, marked so:
REDUCED_KEY = "alm_beam_reduced"
WINDOWS_OMITTED = "windows_omitted"  # without `windows` and `stats.lost_win_full_data`
KEPT_OMITTED = "windows_and_filtered_windows_omitted"  # and without `filtered_windows`


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """What the output entry carries (not part of the spec's computation)."""

    compact: bool = False  # omit pre-filter `windows` and `stats.lost_win_full_data`
    max_raw_chars: int = DEFAULT_MAX_RAW_CHARS  # raw line kept in an error record
    training_manifest: bool = True  # also make the training lines (training.py)
    # No output line longer than this (None: unbounded); see ``bounded_line``.
    max_line_bytes: Optional[int] = DEFAULT_MAX_LINE_BYTES


class Curated(NamedTuple):
    line: bytes  # the output JSON line, without newline
    record: tuple  # stats.entry_record(...)
    train: bytes = b""  # the entry's training lines joined by newlines (b"": none)


class Failed(NamedTuple):
    line: bytes  # the error record JSON line, without newline
    reason: str  # Rejection.code, for errors_by_reason


LineOutcome = Union[Curated, Failed, None]


def error_record(
    raw: bytes,
    source: str,
    line: Optional[int],
    offset: Optional[int],
    rejection: Rejection,
    max_raw_chars: int,
    raw_bytes: Optional[int] = None,
) -> bytes:
    """One error-output line: where the line came from, why, and the raw text (cut).

    ``raw_bytes``: the whole line's size when ``raw`` is only its beginning
    (a too-long line, a damaged file's partial last line).
    """
    text = raw.decode("utf-8", errors="backslashreplace")
    size = len(raw) if raw_bytes is None else raw_bytes
    cut = len(text) > max_raw_chars or size > len(raw)
    return orjson.dumps(
        {
            "manifest_filepath": source,
            "line": line,
            "byte_offset": offset,
            "reason": rejection.code,
            "detail": rejection.detail,
            "raw": text[:max_raw_chars] if cut else text,
            "raw_truncated": cut,
            "raw_bytes": size,
        }
    )


def failed_line(
    raw: bytes,
    source: str,
    line: Optional[int],
    offset: Optional[int],
    rejection: Rejection,
    max_raw_chars: int,
    raw_bytes: Optional[int] = None,
) -> Failed:
    """The outcome of a line that is not curated: its error record and reason."""
    return Failed(
        error_record(raw, source, line, offset, rejection, max_raw_chars, raw_bytes), rejection.code
    )


# Integers orjson reads exactly: [-2**63, 2**64 - 1]. Beyond them it returns a
# float (2**128 - 1 -> 3.402823669209385e+38) and cannot write a Python int
# back, while NeMo Curator (stdlib json) keeps the exact value.
_ORJSON_INT_MIN = -(2**63)
_ORJSON_INT_MAX = 2**64 - 1
# Such an integer has at least 19 digits in a row (-9223372036854775809,
# 18446744073709551616); JSON forbids leading zeros. ``_may_hold_big_int``
# looks for such a run with C loops only. First it samples every 6th byte: a
# run of 19 digits at [p, p+18] holds the sampled positions m, m+6, m+12
# (m <= p+5), so it shows as 3 sampled digits in a row. The sample becomes a
# 0/1 byte per digit (``bytes.translate``), read as one int: 3 ones in a row
# are ``x & x >> 8 & x >> 16``. (A substring search for "000" would be slower
# here: digits are dense in manifests.) Only a line that passes this goes on
# to the exact check on the whole line, and only a line with 19+ digits in a
# row is read again by stdlib json. Cost: about 2% of curate_line (see
# docs/discovery.md, "Exact integers").
_DIGIT_AS_ONE = bytes(1 if 48 <= b <= 57 else 0 for b in range(256))
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_SAMPLE_STEP = 6
_LONG_DIGIT_RUN = b"0" * 19


def _may_hold_big_int(raw: bytes) -> bool:
    """True when ``raw`` has 19 or more digits in a row (a superset of the
    lines holding an integer beyond orjson's range)."""
    x = int.from_bytes(raw[::_SAMPLE_STEP].translate(_DIGIT_AS_ONE), "little")
    if not x & (x >> 8) & (x >> 16):
        return False
    return _LONG_DIGIT_RUN in raw.translate(_DIGITS_AS_ZERO)


class ExactInt(int):
    """An integer beyond orjson's 64-bit range, parsed exactly by stdlib json.

    An ``int`` everywhere (comparisons, validation), and written back digit
    for digit by ``dumps_exact``: orjson hands int subclasses to ``default``
    under ``OPT_PASSTHROUGH_SUBCLASS``.
    """

    __slots__ = ()


def _exact_default(value):
    if type(value) is ExactInt:
        return orjson.Fragment(int.__repr__(value).encode())
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps_exact(value) -> bytes:
    """``orjson.dumps`` that also writes ``ExactInt`` values exactly."""
    return orjson.dumps(value, default=_exact_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)


def _exact_int(text: str) -> int:
    value = int(text)
    if _ORJSON_INT_MIN <= value <= _ORJSON_INT_MAX:
        return value
    return ExactInt(value)


def _with_exact_ints(raw: bytes, parsed):
    """Re-read a line orjson accepted but that may hold an integer beyond its
    range; returns (value, True) when it did, else (``parsed``, False).

    orjson has already checked the syntax (UTF-8, no NaN/Infinity, no
    infinite float, nesting), so stdlib json sees only valid JSON here and
    reads the same values except for those integers.
    """
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_exact_int)
    except (ValueError, RecursionError):  # deeper than stdlib reads: too_deep anyway
        return parsed, False
    if _holds_exact_int(value):
        return value, True
    return parsed, False


def _holds_exact_int(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is ExactInt:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def parse_line(raw: bytes):
    """Decode one manifest line; returns (value, None) or (None, Rejection)."""
    value, rejection, _ = parse_line_exact(raw)
    return value, rejection


def parse_line_exact(raw: bytes):
    """``parse_line`` plus whether the value holds an ``ExactInt`` (then it must
    be written with ``dumps_exact``): (value, rejection, exact)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return None, Rejection("invalid_utf8", f"line is not valid UTF-8 (byte {bad.start})"), False
        hint = ""
        if any(token in raw for token in (b"NaN", b"Infinity")):
            hint = " (NaN and Infinity are not JSON numbers)"
        return None, Rejection("invalid_json", f"line is not valid JSON: {exc}{hint}"), False
    if _may_hold_big_int(raw):  # rare: 19+ digits in a row
        value, exact = _with_exact_ints(raw, value)
        return value, None, exact
    return value, None, False


class OutputTooLong(ValueError):
    """Even the reduced entry is longer than ``max_line_bytes``: an error record."""


def _dumped_items(items, dumps, budget: int) -> Optional[list]:
    """Each item serialized, or None as soon as they pass ``budget`` bytes
    (never more than ``budget`` plus one item is held)."""
    out, total = [], 0
    for item in items:
        data = dumps(item)
        total += len(data) + 1
        if total > budget:
            return None
        out.append(data)
    return out


def _array(parts: list) -> orjson.Fragment:
    return orjson.Fragment(b"[" + b",".join(parts) + b"]")


# An upper bound on the output line's bytes, from counts alone (``line_size_bound``):
# a number orjson writes is at most 8 times its shortest JSON text ("1e5" ->
# "100000.0"), a string never longer than its JSON text; a truncated segment
# (fewer words, a text made of them, a new end) at most twice its segment plus
# an end; the numbers the overlap filter adds per window fit in 256 bytes.
_NUMBER_GROWTH = 8
_PER_WINDOW_FILTER_BYTES = 256
_PER_SEGMENT_REF_BYTES = 48
_FIXED_BYTES = 4096


def line_size_bound(out: dict, segment_bytes: int, input_bytes: int) -> int:
    """At least the bytes of ``dumps(out)``, for a builder entry with serialized
    segments none longer than ``segment_bytes``, from an input line of
    ``input_bytes``: each window, kept window and lost-window record counts its
    segment references; what the output copies from the input counts the input."""
    per_ref = 3 * segment_bytes + _PER_SEGMENT_REF_BYTES  # a (truncated) segment and its speaker entry
    windows = out["windows"]
    refs = sum([len(w["segments"]) + 1 for w in windows])
    kept = out.get("filtered_windows")
    if windows and kept:
        refs += sum([len(w["segments"]) + 1 for w in kept])
    refs += sum([len(r["window_segs"]) + 3 for r in out["stats"].get("lost_win_full_data", ())])
    source = out.get("manifest_filepath")
    return (
        refs * per_ref
        + len(windows) * _PER_WINDOW_FILTER_BYTES
        + _NUMBER_GROWTH * (input_bytes + (len(source) if isinstance(source, str) else 0))
        + _FIXED_BYTES
    )


def bounded_line(
    out: dict, dumps, compact: bool, limit: Optional[int], size_bound: Optional[int] = None
) -> tuple[bytes, Optional[str]]:
    """The output line of ``out`` (not modified) and its reduction mark, or None.

    ``windows`` and ``stats.lost_win_full_data`` grow with the square of an
    entry's segments (each window copies up to every segment of its two
    minutes): a 238 KB line of 3,000 short segments made a 316 MB line. So
    they, and ``filtered_windows``, are serialized window by window and given
    up as soon as they pass ``limit`` bytes; the entry is then written without
    them (``WINDOWS_OMITTED``: as ``--compact`` writes it), and if it is still
    too long also without ``filtered_windows`` (``KEPT_OMITTED``), marked with
    ``REDUCED_KEY``. Within the limit the bytes are those of ``dumps(out)``
    (kept windows are serialized once, shared with ``windows``).
    ``OutputTooLong`` when even that is too long.

    ``size_bound`` (``line_size_bound``) within ``limit``: the line cannot be too
    long, so it is written in one ``dumps`` (the same bytes, without the window
    by window serialization, which cost about a tenth of the logic on long
    conversations).
    """
    if limit is None or (size_bound is not None and size_bound <= limit):
        shown = out
        if compact:
            shown = {k: v for k, v in out.items() if k != "windows"}
            shown["stats"] = {k: v for k, v in out["stats"].items() if k != "lost_win_full_data"}
        line = dumps(shown)
        if limit is None or len(line) <= limit:
            return line, None
        # (not reached while line_size_bound holds; the bounded path decides)
    shown = dict(out)
    stats = shown["stats"] = dict(out["stats"])
    windows, mark, window_bytes = out["windows"], None, None
    if not compact:
        window_bytes = _dumped_items(windows, dumps, limit)
        lost_bytes = None
        if window_bytes is not None:
            used = sum(map(len, window_bytes)) + len(window_bytes)
            lost_bytes = _dumped_items(stats.get("lost_win_full_data", ()), dumps, limit - used)
        if lost_bytes is None:
            mark, window_bytes = WINDOWS_OMITTED, None
        else:
            shown["windows"] = _array(window_bytes)
            if "lost_win_full_data" in stats:
                stats["lost_win_full_data"] = _array(lost_bytes)
    if compact or mark:
        shown.pop("windows", None)
        stats.pop("lost_win_full_data", None)
    kept = out["filtered_windows"]
    if windows and kept:  # the builder's windows (else the input's own value, spec 4)
        known = dict(zip(map(id, windows), window_bytes)) if window_bytes else {}
        kept_bytes = _dumped_items((known.get(id(w)) or w for w in kept), _dumps_once(dumps), limit)
        if kept_bytes is None:
            mark = KEPT_OMITTED
            del shown["filtered_windows"]
        else:
            shown["filtered_windows"] = _array(kept_bytes)
    while True:
        if mark is not None:
            shown[REDUCED_KEY] = mark
        line = dumps(shown)
        if len(line) <= limit:
            return line, mark
        if mark != KEPT_OMITTED and windows and "filtered_windows" in shown:
            mark = KEPT_OMITTED
            shown.pop("windows", None)
            stats.pop("lost_win_full_data", None)
            del shown["filtered_windows"]
            continue
        raise OutputTooLong(
            f"the output entry is {len(line):,} bytes even without its window lists, longer than "
            f"the output line limit (input.max_line_mb: {limit:,} bytes)"
        )


def _dumps_once(dumps):
    """``dumps`` that passes already serialized bytes through."""
    return lambda item: item if type(item) is bytes else dumps(item)


def curate_entry(
    entry: dict,
    params: CurationParams,
    source: str,
    options: OutputOptions = OutputOptions(),
    *,
    exact: bool = False,
    line: Optional[int] = None,
    offset: Optional[int] = None,
    input_bytes: Optional[int] = None,
) -> Curated:
    """Build, filter and serialize one validated entry (and its training lines).

    ``exact``: the entry holds ``ExactInt`` values (``parse_line_exact``); it
    is built as plain dicts and written with ``dumps_exact``, which gives the
    bytes ``build_windows_serialized`` + ``orjson.dumps`` give for any other
    entry.
    """
    training = options.training_manifest
    build = (build_windows if exact else build_windows_serialized)(
        entry, params.builder, keep_lost_windows=not options.compact, keep_spans=training
    )
    out = build.entry
    below_rate = entry["audio_sample_rate"] < params.builder.min_sample_rate
    filter_overlaps(out, params.overlap, source, build.timestamps)
    kept = out["filtered_windows"]
    # (Without windows the filter keeps an input's own filtered_windows: not ours to count.)
    if kept and build.timestamps:
        windows, stamps, speakers = out["windows"], build.timestamps, build.speaker_counts
        if len(kept) == len(windows):
            at = range(len(windows))
        else:  # kept windows are the builder's own objects: find them by identity
            where = dict(zip(map(id, windows), range(len(windows))))
            at = [where[id(w)] for w in kept]
        kept_durations = tuple([stamps[n][0] - stamps[n][1] for n in at])
        kept_speakers = tuple([speakers[n] for n in at])
    else:
        kept_durations = kept_speakers = ()
    bound = None
    if input_bytes is not None and build.segment_bytes is not None and options.max_line_bytes is not None:
        bound = line_size_bound(out, build.segment_bytes, input_bytes)
    out_line, reduced = bounded_line(
        out, dumps_exact if exact else orjson.dumps, options.compact, options.max_line_bytes, bound
    )
    record = entry_record(out, below_rate, source, kept_durations, kept_speakers, reduced=reduced is not None)
    train = b""
    if training and out["windows"]:
        train = training_lines(
            entry,
            out,
            build.spans,
            build.timestamps,
            frozenset(params.builder.drop_fields),
            source,
            line,
            offset,
        )
    return Curated(out_line, record, train)


def curate_line(
    raw: bytes,
    source: str,
    params: CurationParams,
    *,
    line: Optional[int] = None,
    offset: Optional[int] = None,
    options: OutputOptions = OutputOptions(),
) -> LineOutcome:
    """Process one raw line. None for a blank line (skipped, not an error).

    Blank means JSON whitespace only (space, tab, CR, LF; ``reader.is_blank``):
    a line of form feeds is not JSON, so it is an invalid_json error record.
    """
    if not raw.strip(JSON_WHITESPACE):
        return None
    entry, rejection, exact = parse_line_exact(raw)
    if rejection is None:
        rejection = validate_entry(entry)
    if rejection is None:
        try:
            return curate_entry(
                entry, params, source, options, exact=exact, line=line, offset=offset, input_bytes=len(raw)
            )
        except orjson.JSONEncodeError as exc:  # nesting orjson reads but cannot write
            rejection = serialization_rejection(entry, exc)
        except OutputTooLong as exc:
            rejection = Rejection("output_too_long", str(exc))
        except Exception as exc:  # a bug must cost one line, not the run
            rejection = Rejection(
                f"internal_error:{type(exc).__name__}", f"unexpected error while curating: {exc!r:.300}"
            )
    return failed_line(raw, source, line, offset, rejection, options.max_raw_chars)
