"""Window builder: spec section 3, incremental and exact.

The reference rebuilds the speaker map from scratch for every segment it tries
to add (quadratic per window) and copies every segment dict into every window
that contains it. Here the speaker map of the growing window is kept
incrementally (each speaker's sum still gets the same float additions in the
same order, so every value is bit-identical), and each segment is stripped
once and shared by all windows that contain it. ``render_segment`` lets the
pipeline turn that one stripped copy into pre-serialized JSON, so a segment
that appears in twenty windows is serialized once.

Pure Python: no Beam, no I/O. Expects an entry that passed
``validate.validate_entry``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

from alm_beam.params import BuilderParams

NO_SPEAKER = "no-speaker"

STAT_COUNTERS = (
    "lost_bw", "dur_lost_bw", "lost_sr", "dur_lost_sr", "lost_spk", "dur_lost_spk",
    "lost_win", "dur_lost_win", "lost_no_spkr", "dur_lost_no_spkr",
    "lost_next_seg_bm", "dur_lost_next_seg_bm",
)


def bandwidth(seg: dict) -> Any:
    """``metrics.bandwidth``, or 0 when either key is absent (spec ``bw``)."""
    metrics = seg.get("metrics")
    if metrics is None:
        return 0
    return metrics.get("bandwidth", 0)


def strip(seg: dict, keys) -> dict:
    """Shallow copy without ``keys`` (other keys keep their order)."""
    return {k: v for k, v in seg.items() if k not in keys}


def new_stats(entry: dict, segments: list) -> dict:
    total_dur = 0
    for seg in segments:
        total_dur += seg["end"] - seg["start"]
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


def truncate_segment(seg: dict, cut: float) -> dict:
    """The part of ``seg`` whose words end by ``cut`` (spec step 3, truncation)."""
    part = dict(seg)
    kept = [dict(w) for w in seg.get("words", ()) if w["end"] <= cut]
    part["words"] = kept
    part["text"] = " ".join(w["word"] for w in kept if w.get("word"))
    part["end"] = kept[-1]["end"] if kept else seg["start"]
    return part


class BuildResult(NamedTuple):
    """Builder output plus what the overlap filter needs without re-reading windows.

    ``timestamps[n]`` is ``(end, start)`` of ``entry["windows"][n]``.
    """

    entry: dict
    timestamps: list


def build_windows(entry: dict, params: BuilderParams, *,
                  render_segment: Optional[Callable[[dict], Any]] = None,
                  keep_lost_windows: bool = True) -> BuildResult:
    """Build candidate windows for one validated entry.

    ``render_segment`` maps each stripped segment copy to what goes into the
    output (default: the dict itself). ``keep_lost_windows=False`` skips
    collecting ``stats.lost_win_full_data`` (left as an empty list), for the
    compact output that omits it anyway.
    """
    segments = entry["segments"]
    n = len(segments)
    stats = new_stats(entry, segments)
    drop = frozenset(params.drop_fields)

    if entry["audio_sample_rate"] < params.min_sample_rate:
        stats["lost_sr"] = n
        stats["dur_lost_sr"] = stats["total_dur"]
        out = {"audio_filepath": entry["audio_filepath"], "windows": [], "stats": stats,
               "truncation_events": 0}
        return BuildResult(out, [])

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

    starts = [s["start"] for s in segments]
    ends = [s["end"] for s in segments]
    bws = [bandwidth(s) for s in segments]
    speakers = [s.get("speaker") or None for s in segments]  # falsy speakers never count
    rendered: list = [None] * n

    def out_seg(j: int):
        value = rendered[j]
        if value is None:
            value = strip(segments[j], drop)
            if render_segment is not None:
                value = render_segment(value)
            rendered[j] = value
        return value

    windows = []
    timestamps = []
    lost_full = stats["lost_win_full_data"]
    truncation_events = 0

    for i in range(n):
        seg_dur = ends[i] - starts[i]
        if bws[i] < min_bw:
            stats["lost_bw"] += 1
            stats["dur_lost_bw"] += seg_dur
            continue

        w_start = starts[i]
        w_end = ends[i]
        window = []
        spk_map: dict = {}      # speakers(window), insertion ordered
        has_no_speaker = False  # "no-speaker" in spk_map
        k = i
        for k in range(i, n):
            if bws[k] < min_bw:
                break
            spk = speakers[k]
            # bad(speakers(window + [cur])) without rebuilding the map: cur
            # adds one key unless it is unnamed or already present.
            new_count = len(spk_map) + (1 if spk is not None and spk not in spk_map else 0)
            bad = new_count > max_speakers or has_no_speaker or spk == NO_SPEAKER
            if ends[k] - w_start > max_duration:
                if not truncation:
                    break
                cut = w_start + max_duration
                if starts[k] >= cut:
                    break
                truncation_events += 1
                if bad:
                    break
                part = truncate_segment(segments[k], cut)
                stripped = strip(part, drop)
                window.append(render_segment(stripped) if render_segment else stripped)
                w_end = part["end"]
                if track_speakers and spk is not None:
                    spk_map[spk] = spk_map.get(spk, 0) + (w_end - part["start"])
                    has_no_speaker = has_no_speaker or spk == NO_SPEAKER
                break
            if bad:
                break
            w_end = ends[k]
            window.append(out_seg(k))
            if track_speakers and spk is not None:
                spk_map[spk] = spk_map.get(spk, 0) + (ends[k] - starts[k])
                has_no_speaker = has_no_speaker or spk == NO_SPEAKER

        duration = w_end - w_start
        lost = not (min_duration <= duration <= max_duration)
        if not lost:
            lost = len(window) < 2 or (metrics_dropped and 0 < min_bw)
        if lost:
            stats["lost_win"] += 1
            stats["dur_lost_win"] += seg_dur
            nxt = segments[k]
            if nxt.get("speaker", NO_SPEAKER) == NO_SPEAKER:
                stats["lost_no_spkr"] += 1
                stats["dur_lost_no_spkr"] += seg_dur
            elif bws[k] < min_bw:
                stats["lost_next_seg_bm"] += 1
                stats["dur_lost_next_seg_bm"] += seg_dur
            if keep_lost_windows:
                lost_full.append({"index": i, "window_segs": window, "next_seg": out_seg(k),
                                  "prev_seg": out_seg(max(i - 1, 0))})
            continue

        if not (min_speakers <= len(spk_map) <= max_speakers) or has_no_speaker:
            stats["lost_spk"] += 1
            stats["dur_lost_spk"] += seg_dur
            continue

        top = sorted(spk_map.values(), reverse=True)[:5]
        top += [0.0] * (5 - len(top))
        windows.append({"segments": window, "speaker_durations": top})
        timestamps.append((w_end, w_start))

    out = {k: v for k, v in entry.items() if k not in params.drop_fields_top_level}
    out["windows"] = windows
    out["stats"] = stats
    out["truncation_events"] = truncation_events
    return BuildResult(out, timestamps)
