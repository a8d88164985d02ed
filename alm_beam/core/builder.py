"""Window builder: spec section 3, exact, with the per-step work taken out.

The spec grows every window one segment at a time and, at each step, asks of
the next segment: is its bandwidth too low, does it end past ``max_duration``,
would it make the speaker map bad ("no-speaker", or more than
``max_speakers`` speakers)? Each answer stays "no" for a run of steps and
then flips, so the builder finds where each one first flips instead of
stepping:

- low bandwidth and the "no-speaker" label depend on the segment alone: one
  sorted list of such positions serves every window;
- "ends past ``max_duration``" is one bisection when the ends are sorted (the
  usual case), a scan otherwise;
- too many speakers can only happen when the entry has more distinct named
  speakers than ``max_speakers``; then each speaker's next segment is tracked
  as the window start moves, and the window overflows at the first segment
  of the (``max_speakers`` + 1)-th speaker to appear.

The window is then the slice ``[i, stop)`` of the segments, plus the truncated
part of segment ``stop`` when the spec cuts one. Every segment is stripped
(and, for the pipeline, serialized) once and shared by all windows and
``lost_win_full_data`` records that hold it. Speaker durations are summed only
for windows that pass the duration and size checks, with the same float
additions in the same order as the spec (per speaker, from int 0, in segment
order), so every value is bit-identical.

Pure Python apart from orjson: no Beam, no I/O. Expects an entry that passed
``validate.validate_entry``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from functools import reduce
from itertools import islice
from operator import add, le, sub
from typing import Any, NamedTuple, Optional

import orjson

from alm_beam.core.params import BuilderParams

NO_SPEAKER = "no-speaker"

STAT_COUNTERS = (
    "lost_bw",
    "dur_lost_bw",
    "lost_sr",
    "dur_lost_sr",
    "lost_spk",
    "dur_lost_spk",
    "lost_win",
    "dur_lost_win",
    "lost_no_spkr",
    "dur_lost_no_spkr",
    "lost_next_seg_bm",
    "dur_lost_next_seg_bm",
)

# Timestamps within this bound make ``end - w_start`` monotone in ``end`` even
# when ints and floats mix (every int and every difference is an exact float),
# which the bisection relies on. Beyond it the builder scans instead.
_BISECT_BOUND = 2**52


def bandwidth(seg: dict) -> Any:
    """``metrics.bandwidth``, or 0 when either key is absent (spec ``bw``)."""
    metrics = seg.get("metrics")
    if metrics is None:
        return 0
    return metrics.get("bandwidth", 0)


def strip(seg: dict, keys) -> dict:
    """Shallow copy without ``keys`` (other keys keep their order)."""
    return {k: v for k, v in seg.items() if k not in keys}


def new_stats(entry: dict, segments: list, total_dur: Any) -> dict:
    """The spec's initial ``stats`` (``total_dur``: the durations summed in order from 0)."""
    stats = {
        "total_segments": len(segments),
        "total_dur": total_dur,
        "swift_path": entry.get("swift_audio_filepath", ""),
        "audio_sample_rate": entry["audio_sample_rate"],
    }
    for name in STAT_COUNTERS:
        stats[name] = 0.0 if name.startswith("dur_") else 0
    stats["lost_win_full_data"] = []
    return stats


def _stripped_part(seg: dict, cut: float, drop: frozenset) -> tuple[dict, Any]:
    """The part of ``seg`` whose words end by ``cut`` (spec step 3, truncation),
    stripped of ``drop``, and the part's end; words that are dropped anyway are
    not copied."""
    kept = [w for w in seg.get("words", ()) if w["end"] <= cut]
    part = dict(seg)
    part["words"] = kept if "words" in drop else [dict(w) for w in kept]
    part["text"] = " ".join([w["word"] for w in kept if w.get("word")])
    end = part["end"] = kept[-1]["end"] if kept else seg["start"]
    return strip(part, drop), end


def _serialized_segments(segments: list, drop: frozenset) -> tuple[list, int]:
    """(``orjson.Fragment(orjson.dumps(strip(seg, drop)))`` for every segment,
    the longest one's bytes): the same bytes, without copying a segment that
    has nothing to drop."""
    dumps = orjson.dumps
    if not drop:
        rendered = [dumps(s) for s in segments]
    elif len(drop) == 1:
        (key,) = drop
        rendered = []
        for s in segments:
            if key in s:
                s = s.copy()
                del s[key]
            rendered.append(dumps(s))
    else:
        rendered = [dumps(strip(s, drop)) for s in segments]
    longest = max(map(len, rendered), default=0)
    return list(map(orjson.Fragment, rendered)), longest


def _serialized(seg: dict):
    return orjson.Fragment(orjson.dumps(seg))


class BuildResult(NamedTuple):
    """Builder output plus what the overlap filter needs without re-reading windows.

    ``timestamps[n]`` is ``(end, start)`` of ``entry["windows"][n]``, and
    ``speaker_counts[n]`` its number of distinct speakers (for the run report).
    """

    entry: dict
    timestamps: list
    speaker_counts: list = ()  # type: ignore[assignment]
    # With ``keep_spans``: ``spans[n]`` is ``(first, stop, part)``: window n holds
    # the input segments ``[first, stop)`` (stripped) and then ``part``, the
    # stripped plain dict of the truncated segment ``stop``, or None. It lets
    # the training manifest read a window's segments without parsing them back.
    spans: Optional[list] = None
    # Serialized builds: the longest stripped segment's bytes, which bounds the
    # output line's size before it is written (curate.bounded_line).
    segment_bytes: Optional[int] = None


def build_windows(
    entry: dict, params: BuilderParams, *, keep_lost_windows: bool = True, keep_spans: bool = False
) -> BuildResult:
    """Build candidate windows for one validated entry, as plain dicts.

    ``keep_lost_windows=False`` skips collecting ``stats.lost_win_full_data``
    (left as an empty list), for the compact output that omits it anyway.
    """
    return _build(entry, params, keep_lost_windows, serialize=False, keep_spans=keep_spans)


def build_windows_serialized(
    entry: dict, params: BuilderParams, *, keep_lost_windows: bool = True, keep_spans: bool = False
) -> BuildResult:
    """``build_windows`` with every stripped segment serialized once
    (``orjson.Fragment``) and shared by every window and every
    ``lost_win_full_data`` record that holds it.

    ``orjson.dumps`` of the result gives the bytes it gives for
    ``build_windows``'s plain dicts; the overlap filter reads only the
    returned ``timestamps``.
    """
    return _build(entry, params, keep_lost_windows, serialize=True, keep_spans=keep_spans)


def _build(
    entry: dict, params: BuilderParams, keep_lost: bool, *, serialize: bool, keep_spans: bool = False
) -> BuildResult:
    segments = entry["segments"]
    n = len(segments)
    starts = [s["start"] for s in segments]
    ends = [s["end"] for s in segments]
    durs = list(map(sub, ends, starts))
    stats = new_stats(entry, segments, reduce(add, durs, 0))

    if entry["audio_sample_rate"] < params.min_sample_rate:
        stats["lost_sr"] = n
        stats["dur_lost_sr"] = stats["total_dur"]
        out = {
            "audio_filepath": entry["audio_filepath"],
            "windows": [],
            "stats": stats,
            "truncation_events": 0,
        }
        return BuildResult(out, [], [], [] if keep_spans else None, 0 if serialize else None)

    drop = frozenset(params.drop_fields)
    min_bw = params.min_bandwidth
    min_duration = params.min_duration
    max_duration = params.max_duration
    max_speakers = params.max_speakers
    min_speakers = params.min_speakers
    truncation = params.truncation
    # Windows hold stripped copies, and the spec measures them on those copies:
    # a dropped "speaker" empties the window's speaker map, a dropped "metrics"
    # makes every window segment read as bandwidth 0.
    track_speakers = "speaker" not in drop
    metrics_dropped = "metrics" in drop

    low = [(bandwidth(s) < min_bw) for s in segments]
    speakers = [s.get("speaker") or None for s in segments]  # falsy speakers never count

    segment_bytes = None
    if serialize:
        rendered, segment_bytes = _serialized_segments(segments, drop)
    else:
        rendered = [strip(s, drop) for s in segments]

    # Where a window must stop whatever it holds: a low-bandwidth segment, or a
    # "no-speaker" one (its speaker map would be bad). ``n`` is a sentinel.
    hard_stops = [j for j in range(n) if low[j] or speakers[j] == NO_SPEAKER]
    hard_stops.append(n)
    # bad(speakers(window + [cur])) through the speaker count: the window's map
    # counts the distinct named speakers of its segments (none when "speaker"
    # is dropped), and cur adds one unless unnamed or already there. So the
    # window starting at i overflows at the first segment of the
    # (max_speakers + 1)-th speaker to appear from i on; ``upcoming`` holds each
    # speaker's first segment at or after i, sorted. ("no-speaker" is left out:
    # it is a hard stop anyway.)
    counted = set(speakers)
    counted.discard(None)
    counted.discard(NO_SPEAKER)
    if track_speakers:
        count_speakers = len(counted) > max_speakers
    else:  # an empty map plus one named speaker: too many only when max is 0
        count_speakers = max_speakers < 1 and bool(counted)
    if count_speakers:
        following = [n] * n  # the same speaker's next segment
        upcoming_of = {}
        for j in range(n - 1, -1, -1):
            spk = speakers[j]
            if spk in counted:
                following[j] = upcoming_of.get(spk, n)
                upcoming_of[spk] = j
        upcoming = sorted(upcoming_of.values())
    bisectable = (
        bool(n)
        and all(map(le, ends, islice(ends, 1, None)))
        and -_BISECT_BOUND < min(min(starts), ends[0])
        and max(max(starts), ends[-1]) < _BISECT_BOUND
    )

    windows = []
    timestamps = []
    speaker_counts = []
    spans = [] if keep_spans else None
    lost_full = stats["lost_win_full_data"]
    truncation_events = 0
    next_hard = 0

    for i in range(n):
        if count_speakers and i and speakers[i - 1] in counted:
            # segment i - 1 was its speaker's first from i - 1 on; now the next one is
            del upcoming[bisect_left(upcoming, i - 1)]
            if following[i - 1] < n:
                insort(upcoming, following[i - 1])
        if low[i]:
            stats["lost_bw"] += 1
            stats["dur_lost_bw"] += durs[i]
            continue
        w_start = starts[i]
        while hard_stops[next_hard] < i:
            next_hard += 1
        stop = hard_stops[next_hard]

        # First k >= i (up to ``stop``) with ends[k] - w_start > max_duration.
        if bisectable:
            k = bisect_right(ends, w_start + max_duration, i)
            while k > i and ends[k - 1] - w_start > max_duration:
                k -= 1
            while k < n and not ends[k] - w_start > max_duration:
                k += 1
        else:
            k = n
            for j in range(i, stop + 1 if stop < n else n):
                if ends[j] - w_start > max_duration:
                    k = j
                    break
        if k < stop:
            stop = k

        overflow = -1  # where the window's speaker count would exceed max_speakers
        if count_speakers and len(upcoming) > max_speakers:
            overflow = upcoming[max_speakers]
            if overflow < stop:
                stop = overflow

        # Segments [i, stop) are in the window; segment ``stop`` (if any)
        # stopped it, possibly after giving up a truncated part.
        part = plain_part = None
        if stop < n:
            nxt = stop
            if not low[stop] and ends[stop] - w_start > max_duration and truncation:
                cut = w_start + max_duration
                if starts[stop] < cut:
                    truncation_events += 1
                    if stop != overflow and speakers[stop] != NO_SPEAKER:
                        plain_part, part_end = _stripped_part(segments[stop], cut, drop)
                        part = _serialized(plain_part) if serialize else plain_part
        else:
            nxt = n - 1
        if part is not None:
            w_end = part_end
        elif stop > i:
            w_end = ends[stop - 1]
        else:
            w_end = ends[i]

        duration = w_end - w_start
        size = stop - i + (part is not None)
        if not (min_duration <= duration <= max_duration) or size < 2 or (metrics_dropped and 0 < min_bw):
            seg_dur = durs[i]
            stats["lost_win"] += 1
            stats["dur_lost_win"] += seg_dur
            if segments[nxt].get("speaker", NO_SPEAKER) == NO_SPEAKER:
                stats["lost_no_spkr"] += 1
                stats["dur_lost_no_spkr"] += seg_dur
            elif low[nxt]:
                stats["lost_next_seg_bm"] += 1
                stats["dur_lost_next_seg_bm"] += seg_dur
            if keep_lost:
                window = rendered[i:stop]
                prev = rendered[i - 1 if i else 0]
                if part is not None:
                    window.append(part)
                lost_full.append(
                    {"index": i, "window_segs": window, "next_seg": rendered[nxt], "prev_seg": prev}
                )
            continue

        spk_map: dict = {}  # speakers(window), insertion ordered
        if track_speakers:
            get = spk_map.get
            for spk, dur in zip(speakers[i:stop], durs[i:stop]):
                if spk is not None:
                    spk_map[spk] = get(spk, 0) + dur
            if part is not None:
                spk = speakers[stop]
                if spk is not None:
                    spk_map[spk] = get(spk, 0) + (part_end - starts[stop])
        # (A window never holds "no-speaker": that segment always stops it.)
        if not (min_speakers <= len(spk_map) <= max_speakers):
            stats["lost_spk"] += 1
            stats["dur_lost_spk"] += durs[i]
            continue

        top = sorted(spk_map.values(), reverse=True)[:5]
        top += [0.0] * (5 - len(top))
        window = rendered[i:stop]
        if part is not None:
            window.append(part)
        windows.append({"segments": window, "speaker_durations": top})
        timestamps.append((w_end, w_start))
        speaker_counts.append(len(spk_map))
        if keep_spans:
            spans.append((i, stop, plain_part))

    out = {k: v for k, v in entry.items() if k not in params.drop_fields_top_level}
    out["windows"] = windows
    out["stats"] = stats
    out["truncation_events"] = truncation_events
    return BuildResult(out, timestamps, speaker_counts, spans, segment_bytes)
