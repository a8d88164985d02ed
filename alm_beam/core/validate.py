"""Structural validation of one manifest entry (spec section 1 and 6).

Returns a ``Rejection`` naming the offending field instead of raising, so the
pipeline can route the line to the error output and keep going. Content
oddities (unsorted segments, ``end < start``, null speakers, ...) are not
errors: the builder processes them exactly as given.

Beyond the spec's types, limits make sure an accepted entry can always be
curated, written and summed (found by fuzzing, see tests/test_fuzz.py):
timestamps within +-2**53 s (``out_of_range:*``), and the overlap filter's own
keys, when an input already has them, of the types the filter writes. Nesting
deeper than orjson can write back is rejected as ``too_deep`` when the entry
is written (``serialization_rejection``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

JSON_WHITESPACE = b" \t\r\n"  # a line of only these is blank (RFC 8259 whitespace)


# Largest |value| accepted for a timestamp (seconds; about 285 million years),
# and for the sum of an entry's |end - start|. Within these bounds every
# difference and sum the builder and the overlap filter form (durations,
# per-speaker totals, loss totals, the run totals) stays a finite float or an
# integer below 2**63 that orjson can write; beyond them a line either failed
# in the serializer (integers) or came out with null durations (floats).
MAX_SECONDS = 2**53

# orjson reads arrays/objects nested up to 1024 levels but writes at most 254.
# Input values reappear in the output at most one level deeper (the top-level
# swift_audio_filepath is copied into stats.swift_path; segments are written
# as separate fragments, shallower), so an entry within this limit can always
# be written back.
MAX_NESTING = 253

# Keys the overlap filter writes. An entry without windows keeps them as given
# (spec section 4) and the run statistics read them, so when present they must
# have the type the filter itself would have written.
OVERLAP_LIST_KEYS = (
    "total_dur_list_window",
    "total_dur_list_window_timestamps",
    "filtered",
    "filtered_windows",
    "filtered_dur_list",
)
OVERLAP_NUMBER_KEYS = ("total_dur_window", "filtered_dur")


class Rejection(NamedTuple):
    """Why a line was not processed.

    ``code`` is a short, stable bucket (used for ``errors_by_reason`` counts);
    ``detail`` is the one-line message shown to a person.
    """

    code: str
    detail: str


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, never bool, finite."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _wrong(field: str, bucket: str, expected: str, value: Any) -> Rejection:
    return Rejection(f"wrong_type:{bucket}", f"{field}: expected {expected}, got {_type_name(value)}")


def _missing(field: str, bucket: str) -> Rejection:
    return Rejection(f"missing_field:{bucket}", f"{field}: required field is missing")


def _seconds(field: str, bucket: str, value: Any) -> Optional[Rejection]:
    """A finite number within +-MAX_SECONDS, else why not."""
    if not _is_number(value):
        return _wrong(field, bucket, "a finite number", value)
    if not -MAX_SECONDS <= value <= MAX_SECONDS:
        return Rejection(f"out_of_range:{bucket}", f"{field}: {value!r} is outside +-2**53 ({MAX_SECONDS})")
    return None


_NUMBER_TYPES = (int, float)


def _in_range(value: Any) -> bool:
    """Fast path of ``_seconds``: a finite int/float (not bool) within +-MAX_SECONDS.

    NaN and infinities fail the comparison; ``type() in`` excludes bool.
    """
    return type(value) in _NUMBER_TYPES and -MAX_SECONDS <= value <= MAX_SECONDS


def _depth(value: Any) -> int:
    """Levels of arrays/objects in ``value`` (0 for a scalar); iterative, any depth."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in item)
    return deepest


def serialization_rejection(entry: dict, error: Exception) -> Rejection:
    """Why a validated entry could not be written back as JSON.

    Checked when the writer fails rather than up front: a depth walk of every
    entry would cost more than all the other validation together, and only
    pathological lines (nesting orjson reads but cannot write) reach it.
    """
    field = max(entry, key=lambda k: _depth(entry[k]))
    levels = _depth(entry[field]) + 1  # the entry object is a level too
    if levels <= MAX_NESTING:  # not a depth problem (e.g. an int beyond 64 bits)
        return Rejection("unserializable", f"entry cannot be written as JSON: {error}")
    return Rejection(
        "too_deep",
        f"{field}: arrays/objects nested {levels} levels deep in the "
        f"entry; at most {MAX_NESTING} are allowed",
    )


def validate_entry(entry: Any) -> Optional[Rejection]:
    """Check the types the builder relies on; None means the entry is processable.

    Nesting deeper than orjson can write is caught when the entry is written
    (``serialization_rejection``), not here: a depth walk of every entry would
    cost more than all the other checks together.
    """
    if not isinstance(entry, dict):
        return Rejection("not_an_object", f"line is JSON {_type_name(entry)}, expected an object")

    if "audio_filepath" not in entry:
        return _missing("audio_filepath", "audio_filepath")
    if not isinstance(entry["audio_filepath"], str):
        return _wrong("audio_filepath", "audio_filepath", "a string", entry["audio_filepath"])

    if "audio_sample_rate" not in entry:
        return _missing("audio_sample_rate", "audio_sample_rate")
    if not _is_number(entry["audio_sample_rate"]):
        return _wrong("audio_sample_rate", "audio_sample_rate", "a number", entry["audio_sample_rate"])

    if "segments" not in entry:
        return _missing("segments", "segments")
    segments = entry["segments"]
    if not isinstance(segments, list):
        return _wrong("segments", "segments", "an array of objects", segments)

    span = 0  # sum of |end - start|
    for i, seg in enumerate(segments):
        if not _plain_segment(seg):
            problem = _validate_segment(i, seg)
            if problem is not None:
                return problem
        span += abs(seg["end"] - seg["start"])
    if span > MAX_SECONDS:
        return Rejection(
            "out_of_range:segments",
            f"segments: the durations |end - start| add up to {span!r} s, more than 2**53 ({MAX_SECONDS})",
        )

    for key in OVERLAP_LIST_KEYS:
        if key in entry and not isinstance(entry[key], list):
            return _wrong(key, key, "an array (a key the overlap filter writes)", entry[key])
    for key in OVERLAP_NUMBER_KEYS:
        if key in entry and not _in_range(entry[key]):
            if not _is_number(entry[key]):
                return _wrong(key, key, "a number (a key the overlap filter writes)", entry[key])
            return _seconds(key, key, entry[key])
    return None


def _plain_segment(
    seg: Any, _numbers=(float, int), _low=-float(MAX_SECONDS), _high=float(MAX_SECONDS)
) -> bool:
    """True for a segment ``_validate_segment`` accepts, checked inline.

    This runs for every segment and word of every line, so it avoids function
    calls and formatting; any doubt (False) sends the segment to
    ``_validate_segment``, which finds and names the problem or accepts it.
    (Float bounds, float first: timestamps are mostly floats, and comparing a
    float with a float is the fast path; 2**53 is exact as a float, and Python
    compares ints with floats exactly, so the outcome is the same.)
    """
    if type(seg) is not dict:
        return False
    value = seg.get("start")
    if type(value) not in _numbers or not _low <= value <= _high:
        return False
    value = seg.get("end")
    if type(value) not in _numbers or not _low <= value <= _high:
        return False
    value = seg.get("speaker")
    if value is not None and type(value) is not str:
        return False
    value = seg.get("metrics")
    if value is None:
        if "metrics" in seg:
            return False
    elif type(value) is not dict:
        return False
    else:
        value = value.get("bandwidth")  # None: absent (0) or null (rejected below)
        if value is None:
            if "bandwidth" in seg["metrics"]:
                return False
        elif type(value) not in _numbers or value - value != 0:  # inf/nan: not 0
            return False
    words = seg.get("words")
    if words is None:
        return "words" not in seg
    if type(words) is not list:
        return False
    for word in words:
        if type(word) is not dict:
            return False
        value = word.get("end")
        if type(value) not in _numbers or not _low <= value <= _high:
            return False
        value = word.get("word")
        if value is not None and type(value) is not str:
            return False
    return True


def _validate_segment(i: int, seg: Any) -> Optional[Rejection]:
    """The first problem of a segment ``_plain_segment`` doubted, exactly named."""
    if not isinstance(seg, dict):
        return _wrong(f"segments[{i}]", "segments[]", "an object", seg)
    for key in ("start", "end"):
        if key not in seg:
            return _missing(f"segments[{i}].{key}", f"segments[].{key}")
        if not _in_range(seg[key]):
            return _seconds(f"segments[{i}].{key}", f"segments[].{key}", seg[key])

    if "speaker" in seg:
        speaker = seg["speaker"]
        if speaker is not None and not isinstance(speaker, str):
            return _wrong(f"segments[{i}].speaker", "segments[].speaker", "a string or null", speaker)

    if "metrics" in seg:
        metrics = seg["metrics"]
        if not isinstance(metrics, dict):
            return _wrong(f"segments[{i}].metrics", "segments[].metrics", "an object", metrics)
        if "bandwidth" in metrics and not _is_number(metrics["bandwidth"]):
            return _wrong(
                f"segments[{i}].metrics.bandwidth",
                "segments[].metrics.bandwidth",
                "a number",
                metrics["bandwidth"],
            )

    if "words" in seg:
        words = seg["words"]
        if not isinstance(words, list):
            return _wrong(f"segments[{i}].words", "segments[].words", "an array of objects", words)
        for j, word in enumerate(words):
            wwhere = f"segments[{i}].words[{j}]"
            if not isinstance(word, dict):
                return _wrong(wwhere, "segments[].words[]", "an object", word)
            if "end" not in word:
                return _missing(f"{wwhere}.end", "segments[].words[].end")
            problem = _seconds(f"{wwhere}.end", "segments[].words[].end", word["end"])
            if problem is not None:
                return problem
            text = word.get("word")
            if text is not None and not isinstance(text, str):
                return _wrong(f"{wwhere}.word", "segments[].words[].word", "a string or null", text)
    return None
