"""Structural validation of one manifest entry (spec section 1 and 6).

Returns a ``Rejection`` naming the offending field instead of raising, so the
pipeline can route the line to the error output and keep going. Content
oddities (unsorted segments, ``end < start``, null speakers, ...) are not
errors: the builder processes them exactly as given.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional


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
    return Rejection(f"wrong_type:{bucket}",
                     f"{field}: expected {expected}, got {_type_name(value)}")


def _missing(field: str, bucket: str) -> Rejection:
    return Rejection(f"missing_field:{bucket}", f"{field}: required field is missing")


def validate_entry(entry: Any) -> Optional[Rejection]:
    """Check the types the builder relies on; None means the entry is processable."""
    if not isinstance(entry, dict):
        return Rejection("not_an_object",
                         f"line is JSON {_type_name(entry)}, expected an object")

    if "audio_filepath" not in entry:
        return _missing("audio_filepath", "audio_filepath")
    if not isinstance(entry["audio_filepath"], str):
        return _wrong("audio_filepath", "audio_filepath", "a string", entry["audio_filepath"])

    if "audio_sample_rate" not in entry:
        return _missing("audio_sample_rate", "audio_sample_rate")
    if not _is_number(entry["audio_sample_rate"]):
        return _wrong("audio_sample_rate", "audio_sample_rate", "a number",
                      entry["audio_sample_rate"])

    if "segments" not in entry:
        return _missing("segments", "segments")
    segments = entry["segments"]
    if not isinstance(segments, list):
        return _wrong("segments", "segments", "an array of objects", segments)

    for i, seg in enumerate(segments):
        problem = _validate_segment(i, seg)
        if problem is not None:
            return problem
    return None


def _validate_segment(i: int, seg: Any) -> Optional[Rejection]:
    where = f"segments[{i}]"
    if not isinstance(seg, dict):
        return _wrong(where, "segments[]", "an object", seg)
    for key in ("start", "end"):
        if key not in seg:
            return _missing(f"{where}.{key}", f"segments[].{key}")
        if not _is_number(seg[key]):
            return _wrong(f"{where}.{key}", f"segments[].{key}", "a finite number", seg[key])

    if "speaker" in seg:
        speaker = seg["speaker"]
        if speaker is not None and not isinstance(speaker, str):
            return _wrong(f"{where}.speaker", "segments[].speaker", "a string or null", speaker)

    if "metrics" in seg:
        metrics = seg["metrics"]
        if not isinstance(metrics, dict):
            return _wrong(f"{where}.metrics", "segments[].metrics", "an object", metrics)
        if "bandwidth" in metrics and not _is_number(metrics["bandwidth"]):
            return _wrong(f"{where}.metrics.bandwidth", "segments[].metrics.bandwidth",
                          "a number", metrics["bandwidth"])

    if "words" in seg:
        words = seg["words"]
        if not isinstance(words, list):
            return _wrong(f"{where}.words", "segments[].words", "an array of objects", words)
        for j, word in enumerate(words):
            wwhere = f"{where}.words[{j}]"
            if not isinstance(word, dict):
                return _wrong(wwhere, "segments[].words[]", "an object", word)
            if "end" not in word:
                return _missing(f"{wwhere}.end", "segments[].words[].end")
            if not _is_number(word["end"]):
                return _wrong(f"{wwhere}.end", "segments[].words[].end", "a finite number",
                              word["end"])
            text = word.get("word")
            if text is not None and not isinstance(text, str):
                return _wrong(f"{wwhere}.word", "segments[].words[].word", "a string or null",
                              text)
    return None
