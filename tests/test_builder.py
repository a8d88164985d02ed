"""The window builder's rules (spec section 3), one corner at a time.

Expected values are worked out by hand from the spec, not produced by the code.
"""

import pytest

from alm_beam.core.builder import build_windows
from alm_beam.core.params import make_params


def seg(start, end, speaker="a", bw=9000, **extra):
    s = {"start": start, "end": end, "speaker": speaker, "metrics": {"bandwidth": bw}}
    s.update(extra)
    return s


def entry(*segments, rate=16000, **extra):
    e = {"audio_filepath": "/x.wav", "audio_sample_rate": rate, "segments": list(segments)}
    e.update(extra)
    return e


def build(e, **builder):
    # 10 s target, 10% tolerance -> windows of 9..11 s; 1-3 speakers.
    defaults = {"target_window_duration": 10, "tolerance": 0.1, "min_speakers": 1, "max_speakers": 3}
    defaults.update(builder)
    return build_windows(e, make_params(defaults).builder).entry


def starts(out):
    return [[s["start"] for s in w["segments"]] for w in out["windows"]]


def test_stats_start_with_spec_keys_in_order():
    out = build(entry(seg(0, 5), seg(5, 10, "b")))
    assert list(out["stats"]) == [
        "total_segments",
        "total_dur",
        "swift_path",
        "audio_sample_rate",
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
        "lost_win_full_data",
    ]
    assert list(out)[-3:] == ["windows", "stats", "truncation_events"]
    assert out["stats"]["swift_path"] == ""


def test_sample_rate_gate_keeps_only_four_keys():
    e = entry(seg(0, 5), seg(5, 10.5, "b"), rate=8000, swift_audio_filepath="s3://a", duration=10.5, text="t")
    out = build(e)
    assert list(out) == ["audio_filepath", "windows", "stats", "truncation_events"]
    assert out["windows"] == [] and out["truncation_events"] == 0
    assert out["stats"]["lost_sr"] == 2 and out["stats"]["dur_lost_sr"] == 10.5
    assert out["stats"]["swift_path"] == "s3://a"
    assert out["stats"]["audio_sample_rate"] == 8000


def test_float_sample_rate_compares_as_a_number():
    assert build(entry(seg(0, 5), seg(5, 10, "b"), rate=15999.5))["stats"]["lost_sr"] == 2
    assert build(entry(seg(0, 5), seg(5, 10, "b"), rate=16000.0))["stats"]["lost_sr"] == 0


def test_missing_metrics_or_bandwidth_count_as_zero():
    no_metrics = {"start": 0, "end": 4, "speaker": "a"}
    no_bw = {"start": 4, "end": 6, "speaker": "a", "metrics": {}}
    out = build(entry(no_metrics, no_bw, seg(6, 10)))
    assert out["stats"]["lost_bw"] == 2
    assert out["stats"]["dur_lost_bw"] == 6.0
    assert isinstance(out["stats"]["dur_lost_bw"], float)  # 0.0 + 4 + 2


def test_window_is_consecutive_segments_within_tolerance():
    out = build(entry(seg(0, 4), seg(4, 8, "b"), seg(8, 9.5), seg(9.5, 13, "b")))
    # start 0: 0..9.5 (next would end at 13 > 11, its start 9.5 < cut 11 -> truncated
    # part without words: zero-length at 9.5, still appended).
    assert starts(out)[0] == [0, 4, 8, 9.5]
    first = out["windows"][0]["segments"]
    assert first[-1]["end"] == 9.5 and first[-1]["text"] == ""
    # start 4: 4..13 (9 s) ends with the last segment, no cut; starts 8 and 9.5 too short
    assert starts(out) == [[0, 4, 8, 9.5], [4, 8, 9.5]]
    assert out["truncation_events"] == 1
    assert out["stats"]["lost_win"] == 2


def test_duration_bounds_are_inclusive():
    # exactly 11.0 (max) and exactly 9.0 (min) are both accepted
    out = build(entry(seg(0, 5.5), seg(5.5, 11, "b")), truncation=False)
    assert out["windows"][0]["speaker_durations"] == [5.5, 5.5, 0.0, 0.0, 0.0]
    out = build(entry(seg(0, 4.5), seg(4.5, 9, "b"), seg(20, 21)), truncation=False)
    assert len(out["windows"]) == 1
    assert out["stats"]["lost_win"] == 2


def test_truncation_keeps_words_ending_by_the_cut():
    words = [
        {"word": "one", "start": 8, "end": 9},
        {"word": "", "start": 9, "end": 10},
        {"word": "three", "start": 10, "end": 11},
        {"word": "four", "start": 11, "end": 12},
    ]
    out = build(entry(seg(0, 8), seg(8, 12, "b", words=words, text="one three four")), drop_fields=[])
    part = out["windows"][0]["segments"][1]
    assert [w["word"] for w in part["words"]] == ["one", "", "three"]  # end <= cut (11)
    assert part["text"] == "one three"  # empty words skipped
    assert part["end"] == 11
    assert out["windows"][0]["speaker_durations"] == [8, 3, 0.0, 0.0, 0.0]
    assert out["truncation_events"] == 1
    # the source segment is untouched
    assert len(words) == 4


def test_truncation_with_no_kept_word_makes_a_zero_length_segment_that_still_counts():
    words = [{"word": "late", "start": 9.5, "end": 12}]
    out = build(entry(seg(0, 9.5), seg(9.5, 12, "b", words=words)), min_speakers=2)
    w = out["windows"][0]
    assert w["segments"][1]["start"] == w["segments"][1]["end"] == 9.5
    assert w["segments"][1]["text"] == "" and "words" not in w["segments"][1]
    assert w["speaker_durations"] == [9.5, 0.0, 0.0, 0.0, 0.0]  # "b" is a 2nd speaker


def test_truncated_part_end_becomes_the_window_end_even_if_earlier():
    # part of [8.5, 12] keeps no word -> ends at 8.5, before the previous end 9:
    # the window is 0..8.5, too short.
    words = [{"word": "late", "start": 8.5, "end": 12}]
    out = build(entry(seg(0, 9), seg(8.5, 12, "b", words=words)))
    assert out["windows"] == []
    assert out["stats"]["lost_win_full_data"][0]["window_segs"][1]["end"] == 8.5


def test_segment_starting_at_the_cut_is_not_truncated():
    out = build(entry(seg(0, 9), seg(11, 14, "b")))  # cut = 0 + 11: start >= cut -> stop
    assert out["truncation_events"] == 0
    assert out["stats"]["lost_win"] == 2  # window [0..9] has < 2 segments


def test_truncation_event_counts_even_when_the_part_is_refused():
    # max_speakers=1: the part would add a 2nd speaker -> refused, event still counted
    out = build(entry(seg(0, 9.5), seg(9.5, 12, "b")), max_speakers=1)
    assert out["truncation_events"] == 1
    assert out["windows"] == []


def test_truncation_disabled_stops_the_window():
    out = build(entry(seg(0, 9.5), seg(9.5, 12, "b"), seg(12, 25)), truncation=False)
    assert out["truncation_events"] == 0
    assert out["windows"] == []


def test_single_long_segment_truncates_itself():
    words = [{"word": "a", "start": 0, "end": 10}, {"word": "b", "start": 10, "end": 20}]
    out = build(entry(seg(0, 20, words=words)), drop_fields=[])
    assert out["truncation_events"] == 1
    lost = out["stats"]["lost_win_full_data"][0]
    assert lost["window_segs"][0]["end"] == 10  # 10 s is within 9..11, but one segment
    assert out["stats"]["lost_win"] == 1


def test_no_speaker_segment_stops_the_window_and_is_classified():
    out = build(entry(seg(0, 4), seg(4, 6, "b"), seg(6, 11, "no-speaker"), seg(11, 15)))
    s = out["stats"]
    # start 0 stops at index 2 ("no-speaker"): 0..6 too short -> lost_win + lost_no_spkr
    first = s["lost_win_full_data"][0]
    assert first["index"] == 0 and first["next_seg"]["speaker"] == "no-speaker"
    # start 4: stopped at index 2 too (one segment); start 6 is the "no-speaker"
    # segment itself: an empty window whose next segment is itself; start 11
    # runs to the end (4 s, next is "a"). Durations are the START segments'.
    assert out["windows"] == []
    assert (s["lost_win"], s["dur_lost_win"]) == (4, 4 + 2 + 5 + 4)
    assert (s["lost_no_spkr"], s["dur_lost_no_spkr"]) == (3, 4 + 2 + 5)
    assert (s["lost_next_seg_bm"], s["lost_bw"], s["lost_spk"]) == (0, 0, 0)


def test_absent_speaker_next_counts_as_no_speaker_but_null_does_not():
    absent = {"start": 6, "end": 7, "metrics": {"bandwidth": 9000}}
    out = build(entry(seg(0, 3), seg(3, 6, "b"), absent, seg(7, 8)), max_speakers=2)
    # absent speaker adds no key -> window continues to the end (k = last index)
    assert out["stats"]["lost_win_full_data"][0]["next_seg"]["start"] == 7
    # ... and the last segment, "a", is next for every start: no sub-bucket
    assert (out["stats"]["lost_win"], out["stats"]["lost_no_spkr"]) == (4, 0)
    # an absent speaker IS "no-speaker" when that segment is next (spec: the
    # missing key reads as "no-speaker"); here it is last, so next for all 3 starts
    last_absent = build(entry(seg(0, 3), seg(3, 6, "b"), dict(absent, end=8)))["stats"]
    assert [r["next_seg"]["start"] for r in last_absent["lost_win_full_data"]] == [6, 6, 6]
    assert (last_absent["lost_win"], last_absent["dur_lost_win"]) == (3, 8.0)
    assert (last_absent["lost_no_spkr"], last_absent["dur_lost_no_spkr"]) == (3, 3 + 3 + 2)
    assert last_absent["lost_next_seg_bm"] == 0
    nulls = build(entry(seg(0, 3), seg(3, 6, "b"), seg(6, 7, None, bw=100)))
    rec = nulls["stats"]["lost_win_full_data"][0]
    assert rec["next_seg"]["speaker"] is None
    assert nulls["stats"]["lost_no_spkr"] == 0
    assert nulls["stats"]["lost_next_seg_bm"] == 2  # starts 0 and 1: next is low-bandwidth


def test_loss_when_run_reaches_the_end_uses_the_last_segment():
    out = build(entry(seg(0, 2), seg(2, 4, None)))
    recs = out["stats"]["lost_win_full_data"]
    assert [r["index"] for r in recs] == [0, 1]
    assert all(r["next_seg"]["start"] == 2 for r in recs)
    assert recs[0]["prev_seg"]["start"] == 0  # max(i - 1, 0)
    assert recs[1]["prev_seg"]["start"] == 0
    # next (last) segment has speaker null: not no-speaker, bandwidth fine -> no sub-bucket
    assert out["stats"]["lost_no_spkr"] == out["stats"]["lost_next_seg_bm"] == 0


def test_speaker_map_skips_null_empty_and_absent_speakers():
    segs = [
        seg(0, 3),
        seg(3, 5, None),
        seg(5, 7, ""),
        {"start": 7, "end": 8, "metrics": {"bandwidth": 9000}},
        seg(8, 10, "b"),
    ]
    out = build(entry(*segs))
    assert out["windows"][0]["speaker_durations"] == [3, 2, 0.0, 0.0, 0.0]


def test_too_few_speakers_is_lost_spk_with_start_duration():
    out = build(entry(seg(0, 5), seg(5, 10), seg(10, 10.5)), min_speakers=2)
    assert out["windows"] == []
    # start 0: 0..10.5 is long enough but has 1 speaker; starts 1, 2 are too short
    assert out["stats"]["lost_spk"] == 1 and out["stats"]["lost_win"] == 2
    assert out["stats"]["dur_lost_spk"] == 5.0


def test_too_many_speakers_stops_the_window():
    out = build(entry(seg(0, 3), seg(3, 6, "b"), seg(6, 9.5, "c"), seg(9.5, 10, "d")))
    # max 3: "d" stops the window at 0..9.5 (>= 9) -> accepted with 3 speakers
    assert starts(out)[0] == [0, 3, 6]


def test_speaker_durations_top_five_sorted_and_padded():
    segs = [
        seg(0, 1.0, "a"),
        seg(1, 2.5, "b"),
        seg(2.5, 3, "c"),
        seg(3, 5, "d"),
        seg(5, 7.5, "e"),
        seg(7.5, 8, "f"),
        seg(8, 9.5, "a"),
    ]
    out = build(entry(*segs), max_speakers=6)
    assert out["windows"][0]["speaker_durations"] == [2.5, 2.5, 2, 1.5, 0.5]


def test_integer_timestamps_keep_integer_sums():
    out = build(entry(seg(0, 5), seg(5, 10, "b")))
    assert out["windows"][0]["speaker_durations"] == [5, 5, 0.0, 0.0, 0.0]
    assert all(type(v) is int for v in out["windows"][0]["speaker_durations"][:2])
    assert type(out["stats"]["total_dur"]) is int


def test_drop_fields_apply_to_window_segments_and_top_level():
    e = entry(seg(0, 5, text="x", words=[]), seg(5, 10, "b", text="y", conf=0.5), words=["top"], duration=10)
    out = build(e, drop_fields="words,conf", drop_fields_top_level=["words", "segments"])
    assert list(out) == [
        "audio_filepath",
        "audio_sample_rate",
        "duration",
        "windows",
        "stats",
        "truncation_events",
    ]
    for s in out["windows"][0]["segments"]:
        assert "words" not in s and "conf" not in s and "text" in s
    assert "segments" not in out
    kept_segments = build(e, drop_fields_top_level=["words"])
    assert kept_segments["segments"] == e["segments"]


def test_dropping_metrics_makes_every_window_a_window_loss():
    out = build(entry(seg(0, 5), seg(5, 10, "b")), drop_fields=["metrics"])
    assert out["windows"] == [] and out["stats"]["lost_win"] == 2


def test_dropping_speaker_empties_the_window_speaker_map():
    out = build(entry(seg(0, 5), seg(5, 10, "b")), drop_fields=["speaker"], min_speakers=0)
    assert out["windows"][0]["speaker_durations"] == [0.0] * 5


def test_unsorted_and_negative_segments_are_processed_as_given():
    out = build(entry(seg(5, 10, "b"), seg(0, 4), seg(4, 3)))
    s = out["stats"]
    assert s["total_dur"] == 5 + 4 - 1
    assert s["lost_bw"] + s["lost_win"] + s["lost_spk"] + len(out["windows"]) == 3


def test_duplicate_segments_both_count():
    a = seg(0, 5)
    out = build(entry(a, dict(a), seg(5, 10, "b")), min_speakers=1)
    assert out["windows"][0]["speaker_durations"][0] == 10  # 5 + 5 for "a"


@pytest.mark.parametrize("n", [1, 2, 7])
def test_every_start_segment_is_accounted_for(n):
    segs = [seg(i * 2, i * 2 + 2, "ab"[i % 2], bw=9000 if i % 3 else 100) for i in range(n)]
    out = build(entry(*segs))
    s = out["stats"]
    assert s["lost_bw"] + s["lost_win"] + s["lost_spk"] + len(out["windows"]) == n
