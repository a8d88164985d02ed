"""A deliberately literal, slow transcription of the spec (sections 3 and 4).

Not used by the pipeline. It is the yardstick: the property tests compare the
incremental builder against it on random manifests, and the benchmark times
it as a stand-in for the reference implementation (it rebuilds the speaker
map for every candidate segment and copies every segment dict into every
window, as the reference does). Written to read like the spec, not to be fast.
"""

from __future__ import annotations

import copy


def _bw(seg):
    if "metrics" not in seg or "bandwidth" not in seg["metrics"]:
        return 0
    return seg["metrics"]["bandwidth"]


def _dur(seg):
    return seg["end"] - seg["start"]


def _speakers(segs):
    result = {}
    for s in segs:
        if s.get("speaker"):
            result[s["speaker"]] = result.get(s["speaker"], 0) + _dur(s)
    return result


def _strip(seg, keys):
    return {k: v for k, v in seg.items() if k not in keys}


def literal_build(entry, p):
    """Spec section 3, step by step. ``p`` is a ``BuilderParams``."""
    tol = p.target_window_duration * p.tolerance
    min_duration = p.target_window_duration - tol
    max_duration = p.target_window_duration + tol
    drop = set(p.drop_fields)
    segments = entry["segments"]
    n = len(segments)

    def bad(m):
        return len(m) > p.max_speakers or "no-speaker" in m

    total_dur = 0
    for s in segments:
        total_dur += _dur(s)
    stats = {
        "total_segments": n,
        "total_dur": total_dur,
        "swift_path": entry.get("swift_audio_filepath", ""),
        "audio_sample_rate": entry["audio_sample_rate"],
        "lost_bw": 0,
        "dur_lost_bw": 0.0,
        "lost_sr": 0,
        "dur_lost_sr": 0.0,
        "lost_spk": 0,
        "dur_lost_spk": 0.0,
        "lost_win": 0,
        "dur_lost_win": 0.0,
        "lost_no_spkr": 0,
        "dur_lost_no_spkr": 0.0,
        "lost_next_seg_bm": 0,
        "dur_lost_next_seg_bm": 0.0,
        "lost_win_full_data": [],
    }
    truncation_events = 0

    if entry["audio_sample_rate"] < p.min_sample_rate:
        stats["lost_sr"] = n
        stats["dur_lost_sr"] = total_dur
        return {
            "audio_filepath": entry["audio_filepath"],
            "windows": [],
            "stats": stats,
            "truncation_events": 0,
        }

    windows = []
    for i in range(n):
        seg = segments[i]
        if _bw(seg) < p.min_bandwidth:
            stats["lost_bw"] += 1
            stats["dur_lost_bw"] += _dur(seg)
            continue
        window = []
        w_start = seg["start"]
        w_end = seg["end"]
        k = i
        for k in range(i, n):
            cur = segments[k]
            if _bw(cur) < p.min_bandwidth:
                break
            if cur["end"] - w_start > max_duration:
                if not p.truncation:
                    break
                cut = w_start + max_duration
                if cur["start"] >= cut:
                    break
                truncation_events += 1
                part = copy.copy(cur)
                kept = [copy.copy(w) for w in cur.get("words", []) if w["end"] <= cut]
                part["words"] = kept
                part["text"] = " ".join(w["word"] for w in kept if w.get("word"))
                part["end"] = kept[-1]["end"] if kept else cur["start"]
                if bad(_speakers(window + [part])):
                    break
                window.append(_strip(part, drop))
                w_end = part["end"]
                break
            if bad(_speakers(window + [cur])):
                break
            w_end = cur["end"]
            window.append(_strip(cur, drop))

        d = w_end - w_start
        lost = not (min_duration <= d <= max_duration)
        if not lost:
            lost = len(window) < 2 or any(_bw(s) < p.min_bandwidth for s in window)
        if lost:
            stats["lost_win"] += 1
            stats["dur_lost_win"] += _dur(seg)
            nxt = segments[min(k, n - 1)]
            if nxt.get("speaker", "no-speaker") == "no-speaker":
                stats["lost_no_spkr"] += 1
                stats["dur_lost_no_spkr"] += _dur(seg)
            elif _bw(nxt) < p.min_bandwidth:
                stats["lost_next_seg_bm"] += 1
                stats["dur_lost_next_seg_bm"] += _dur(seg)
            stats["lost_win_full_data"].append(
                {
                    "index": i,
                    "window_segs": window,
                    "next_seg": _strip(nxt, drop),
                    "prev_seg": _strip(segments[max(i - 1, 0)], drop),
                }
            )
            continue
        spk = _speakers(window)
        if not (p.min_speakers <= len(spk) <= p.max_speakers) or "no-speaker" in spk:
            stats["lost_spk"] += 1
            stats["dur_lost_spk"] += _dur(seg)
            continue
        top = sorted(spk.values(), reverse=True)[:5]
        top = top + [0.0] * (5 - len(top))
        windows.append({"segments": window, "speaker_durations": top})

    out = {k: v for k, v in entry.items() if k not in set(p.drop_fields_top_level)}
    out["windows"] = windows
    out["stats"] = stats
    out["truncation_events"] = truncation_events
    return out


def literal_filter(entry, p, manifest_filepath):
    """Spec section 4, step by step. ``p`` is an ``OverlapParams``."""
    entry = dict(entry)
    threshold = p.overlap_percentage / 100
    windows = entry.get("windows", [])
    if not windows:
        for key, value in (
            ("filtered_windows", []),
            ("filtered_dur", 0.0),
            ("filtered_dur_list", []),
            ("total_dur_window", 0.0),
            ("total_dur_list_window", []),
            ("total_dur_list_window_timestamps", []),
            ("filtered", []),
            ("manifest_filepath", manifest_filepath),
            ("swift_filepath", None),
        ):
            if key not in entry:
                entry[key] = value
        return entry

    ts = [[w["segments"][-1]["end"], w["segments"][0]["start"]] for w in windows if w.get("segments")]
    total = 0
    for end, start in ts:
        total += end - start
    ordered = sorted(ts, key=lambda t: (t[1], t[0]))
    removed = set()
    for i in range(len(ordered)):
        if i in removed:
            continue
        end_i, start_i = ordered[i]
        dur_i = end_i - start_i
        for j in range(i + 1, len(ordered)):
            if j in removed:
                continue
            end_j, start_j = ordered[j]
            if start_j >= end_i:
                break
            dur_j = end_j - start_j
            overlap = max(0, min(end_i, end_j) - max(start_i, start_j))
            smaller = min(dur_i, dur_j)
            ratio = overlap / smaller if smaller else 0
            if ratio >= threshold:
                di, dj = abs(dur_i - p.target_duration), abs(dur_j - p.target_duration)
                if di < dj:
                    removed.add(j)
                elif dj < di:
                    removed.add(i)
                    break
                elif dur_i >= dur_j:
                    removed.add(j)
                else:
                    removed.add(i)
                    break
    filtered = [t for idx, t in enumerate(ordered) if idx not in removed]
    keep = {(round(e, 6), round(s, 6)) for e, s in filtered}
    filtered_windows = [
        w
        for w in windows
        if w.get("segments")
        and (round(w["segments"][-1]["end"], 6), round(w["segments"][0]["start"], 6)) in keep
    ]
    fdur = 0
    for end, start in filtered:
        fdur += end - start
    entry["total_dur_window"] = total
    entry["total_dur_list_window"] = [e - s for e, s in ts]
    entry["total_dur_list_window_timestamps"] = ts
    entry["filtered"] = filtered
    entry["filtered_windows"] = filtered_windows
    entry["filtered_dur"] = fdur
    entry["filtered_dur_list"] = [e - s for e, s in filtered]
    entry["manifest_filepath"] = manifest_filepath
    entry["swift_filepath"] = entry["stats"]["swift_path"]
    return entry
