"""The training manifest: one NeMo-style JSON line per kept window.

A training job wants one record per window, with where it lies in the audio
(``offset``, ``duration``) and what is said, not one line per conversation
that repeats every segment in many candidate windows. This module turns one
curated entry's kept windows (``filtered_windows``) into those records.

It runs inside the fused per-entry step (``curate.curate_entry``) on what the
builder already has in memory: the input segments and, per window, which of
them it holds (``builder.BuildResult.spans``), so nothing is parsed twice.
Pure Python apart from orjson; no Beam.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Sequence

import orjson

# Offsets and durations of a training line are rounded to this many decimals
# (microseconds): ``end - start`` and the per-speaker sums carry binary float
# noise (121.09 - 0.1 == 120.99000000000001) that a training job should not
# see. Integers stay integers; the segments keep the input's own times.
TIME_DECIMALS = 6

# Field order of a training line (docs/output.md describes each).
TRAINING_FIELDS = (
    "audio_filepath",
    "offset",
    "duration",
    "text",
    "segments",
    "speakers",
    "speaker_durations",
    "num_segments",
    "window_id",
    "window_index",
    "manifest_filepath",
    "line",
    "byte_offset",
)


def window_id(manifest_filepath: Optional[str], byte_offset: Optional[int], window_index: int) -> str:
    """A stable id for kept window ``window_index`` of the entry at ``byte_offset``.

    The manifest path and the byte offset of its line name one input entry
    (byte offsets are exact whatever the read split, unlike line numbers, which
    are unknown in the middle of a byte range), and the index names one of its
    kept windows: the same input gives the same ids on any runner, worker count
    or sharding, and two windows of one run never share an id. 32 hex digits
    (BLAKE2b, 128 bits).
    """
    key = f"{manifest_filepath}\x00{byte_offset}\x00{window_index}"
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def kept_positions(windows: Sequence, kept: Sequence) -> list:
    """Positions in ``windows`` of the overlap filter's kept windows.

    ``overlap.filter_overlaps`` keeps the window objects themselves, in their
    original order, so one walk by identity finds them (two windows with equal
    timestamps are still two objects).
    """
    positions = []
    n = 0
    for window in kept:
        while windows[n] is not window:
            n += 1
        positions.append(n)
        n += 1
    return positions


def _texts_joined(texts: list) -> str:
    """Non-empty string texts joined by single spaces (others skipped)."""
    try:
        return " ".join(filter(None, texts))  # the usual case: all strings or null
    except TypeError:  # a text that is not a string (the input may hold anything)
        return " ".join([t for t in texts if t.__class__ is str and t])


def training_lines(
    entry: dict,
    out: dict,
    spans: Sequence,
    timestamps: Sequence,
    drop_fields: frozenset,
    manifest_filepath: Optional[str],
    line: Optional[int],
    byte_offset: Optional[int],
) -> bytes:
    """The training lines of one curated entry, joined by newlines (b"" when none).

    ``entry``: the validated input entry; ``out``: the same entry after the
    builder and the overlap filter (its ``windows`` still present);
    ``spans`` and ``timestamps``: the builder's, one per window. Segment
    values are those of the window's segments, so a key in ``drop_fields``
    (``speaker``, ``text``) reads as null, as it is absent from the window.
    """
    windows = out["windows"]
    kept = out["filtered_windows"]
    if not windows or not kept:
        # (Without windows, ``filtered_windows`` is whatever the input carried.)
        return b""
    segments = entry["segments"]
    audio_filepath = entry["audio_filepath"]
    has_speaker = "speaker" not in drop_fields
    has_text = "text" not in drop_fields
    dumps = orjson.dumps
    lines = []
    for index, n in enumerate(kept_positions(windows, kept)):
        first, stop, part = spans[n]
        if has_speaker and has_text:  # inline: this runs for every segment of every kept window
            segs = [
                {"start": s["start"], "end": s["end"], "speaker": s.get("speaker"), "text": s.get("text")}
                for s in segments[first:stop]
            ]
        else:
            segs = [
                {
                    "start": s["start"],
                    "end": s["end"],
                    "speaker": s.get("speaker") if has_speaker else None,
                    "text": s.get("text") if has_text else None,
                }
                for s in segments[first:stop]
            ]
        if part is not None:  # already stripped of drop_fields
            segs.append(
                {
                    "start": part["start"],
                    "end": part["end"],
                    "speaker": part.get("speaker"),
                    "text": part.get("text"),
                }
            )
        end, start = timestamps[n]
        # speakers are strings or null (validated): filter(None) keeps the named ones
        speakers = list(dict.fromkeys(filter(None, [s["speaker"] for s in segs])))
        lines.append(
            dumps(
                {
                    "audio_filepath": audio_filepath,
                    "offset": round(start, TIME_DECIMALS),
                    "duration": round(end - start, TIME_DECIMALS),
                    "text": _texts_joined([s["text"] for s in segs]),
                    "segments": segs,
                    "speakers": speakers,
                    "speaker_durations": [round(d, TIME_DECIMALS) for d in windows[n]["speaker_durations"]],
                    "num_segments": len(segs),
                    "window_id": window_id(manifest_filepath, byte_offset, index),
                    "window_index": index,
                    "manifest_filepath": manifest_filepath,
                    "line": line,
                    "byte_offset": byte_offset,
                }
            )
        )
    return b"\n".join(lines)
