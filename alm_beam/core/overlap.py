"""Overlap filter: spec section 4, exact.

Pure Python. Works on the builder's output entry; when the builder's
``timestamps`` are passed in, the windows themselves are never read, so they
may already be pre-serialized JSON fragments.
"""

from __future__ import annotations

from typing import Optional, Sequence

from alm_beam.core.params import OverlapParams

_EMPTY_DEFAULTS = (
    ("filtered_windows", list),
    ("filtered_dur", lambda: 0.0),
    ("filtered_dur_list", list),
    ("total_dur_window", lambda: 0.0),
    ("total_dur_list_window", list),
    ("total_dur_list_window_timestamps", list),
    ("filtered", list),
)


def window_timestamps(windows: Sequence[dict]) -> tuple[list, list]:
    """``(end, start)`` of every window with segments, and the indices they belong to."""
    stamps, owners = [], []
    for n, window in enumerate(windows):
        segs = window.get("segments") or []
        if segs:
            stamps.append((segs[-1]["end"], segs[0]["start"]))
            owners.append(n)
    return stamps, owners


def surviving_timestamps(stamps: Sequence[tuple], threshold: float, target_duration: float) -> list:
    """Greedy overlap removal over ``(end, start)`` pairs sorted by ``(start, end)``.

    Of two windows whose overlap ratio reaches ``threshold`` the one nearer
    ``target_duration`` survives; on a tie the longer; on equal lengths the earlier.
    """
    ordered = sorted(stamps, key=lambda ts: (ts[1], ts[0]))
    count = len(ordered)
    removed = [False] * count
    for i in range(count):
        if removed[i]:
            continue
        end_i, start_i = ordered[i]
        dur_i = end_i - start_i
        for j in range(i + 1, count):
            if removed[j]:
                continue
            end_j, start_j = ordered[j]
            if start_j >= end_i:
                break
            dur_j = end_j - start_j
            overlap = max(0, min(end_i, end_j) - max(start_i, start_j))
            smaller = min(dur_i, dur_j)
            ratio = overlap / smaller if smaller else 0
            if ratio >= threshold:
                diff_i = abs(dur_i - target_duration)
                diff_j = abs(dur_j - target_duration)
                if diff_i < diff_j or (diff_i == diff_j and dur_i >= dur_j):
                    removed[j] = True
                else:
                    removed[i] = True
                    break
    return [ts for ts, gone in zip(ordered, removed) if not gone]


def _durations(stamps: Sequence[tuple]) -> tuple[list, float]:
    """``end - start`` of each pair and their sum, added in order from int 0 (as
    the reference does, so integer timestamps keep integer sums)."""
    durations = [end - start for end, start in stamps]
    total = 0
    for d in durations:
        total += d
    return durations, total


def filter_overlaps(
    entry: dict,
    params: OverlapParams,
    manifest_filepath: Optional[str],
    timestamps: Optional[Sequence[tuple]] = None,
) -> dict:
    """Add the overlap filter's keys to a builder output entry (mutates and returns it).

    ``manifest_filepath`` is the source manifest (the reference always writes
    null here; see the README's differences section).
    """
    windows = entry.get("windows")
    if not windows:
        for key, make in _EMPTY_DEFAULTS:
            if key not in entry:
                entry[key] = make()
        entry.setdefault("manifest_filepath", manifest_filepath)
        entry.setdefault("swift_filepath", None)
        return entry

    if timestamps is None:
        stamps, owners = window_timestamps(windows)
    else:
        stamps, owners = list(timestamps), range(len(timestamps))

    durations, total = _durations(stamps)
    survivors = surviving_timestamps(stamps, params.threshold, params.target_duration)
    kept_durations, kept_dur = _durations(survivors)

    # Windows are matched back by rounded timestamp, in original order: two
    # windows with identical timestamps both come back (the reference does this).
    wanted = {(round(end, 6), round(start, 6)) for end, start in survivors}
    kept_windows = [
        windows[n] for n, (end, start) in zip(owners, stamps) if (round(end, 6), round(start, 6)) in wanted
    ]

    entry["total_dur_window"] = total
    entry["total_dur_list_window"] = durations
    entry["total_dur_list_window_timestamps"] = [list(ts) for ts in stamps]
    entry["filtered"] = [list(ts) for ts in survivors]
    entry["filtered_windows"] = kept_windows
    entry["filtered_dur"] = kept_dur
    entry["filtered_dur_list"] = kept_durations
    entry["manifest_filepath"] = manifest_filepath
    stats = entry.get("stats")
    entry["swift_filepath"] = stats.get("swift_path") if isinstance(stats, dict) else None
    return entry
