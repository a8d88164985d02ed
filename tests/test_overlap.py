"""The overlap filter's rules (spec section 4), worked out by hand."""

from alm_beam.core.overlap import filter_overlaps, surviving_timestamps
from alm_beam.core.params import OverlapParams


def window(start, end, mid=None):
    segs = [
        {"start": start, "end": mid if mid is not None else (start + end) / 2},
        {"start": mid if mid is not None else (start + end) / 2, "end": end},
    ]
    return {"segments": segs, "speaker_durations": [0.0] * 5}


def built(*windows, **extra):
    e = {
        "audio_filepath": "/a.wav",
        "windows": list(windows),
        "stats": {"swift_path": "s3://a"},
        "truncation_events": 0,
    }
    e.update(extra)
    return e


def test_empty_windows_add_defaults_without_overwriting():
    e = filter_overlaps(built(filtered=["keep me"]), OverlapParams(), "m.jsonl")
    assert e["filtered"] == ["keep me"]
    assert e["filtered_windows"] == [] and e["filtered_dur"] == 0.0
    assert e["total_dur_window"] == 0.0 and e["total_dur_list_window_timestamps"] == []
    assert e["manifest_filepath"] == "m.jsonl" and e["swift_filepath"] is None


def test_timestamps_are_end_first_and_keys_in_spec_order():
    e = filter_overlaps(built(window(0, 10)), OverlapParams(), "m.jsonl")
    assert e["total_dur_list_window_timestamps"] == [[10, 0]]
    assert list(e)[-9:] == [
        "total_dur_window",
        "total_dur_list_window",
        "total_dur_list_window_timestamps",
        "filtered",
        "filtered_windows",
        "filtered_dur",
        "filtered_dur_list",
        "manifest_filepath",
        "swift_filepath",
    ]
    assert e["swift_filepath"] == "s3://a"


def test_nearer_target_survives():
    # 0..10 and 5..17 overlap 5 s: ratio 5/10 = 0.5 >= 0.5; target 12 -> 12 s one wins
    kept = surviving_timestamps([(10, 0), (17, 5)], 0.5, 12)
    assert kept == [(17, 5)]
    kept = surviving_timestamps([(10, 0), (17, 5)], 0.51, 12)
    assert kept == [(10, 0), (17, 5)]


def test_tie_on_distance_keeps_the_longer_then_the_earlier():
    # target 10: 8 s and 12 s are both 2 away -> the longer (12) survives
    assert surviving_timestamps([(8, 0), (13, 1)], 0.5, 10) == [(13, 1)]
    # equal lengths and distance -> i (first in (start, end) order) survives
    assert surviving_timestamps([(12, 2), (10, 0)], 0.5, 10) == [(10, 0)]


def test_removed_i_stops_its_inner_walk():
    # target 2. a=(0..10) loses to b=(1..3) (ratio 1). Had a's walk gone on, a would
    # remove c=(2..14) (ratio 8/10 >= 0.6, a nearer the target); b vs c is only 0.5.
    kept = surviving_timestamps([(10, 0), (3, 1), (14, 2)], 0.6, 2)
    assert kept == [(3, 1), (14, 2)]


def test_touching_windows_with_zero_threshold():
    # start_j >= end_i stops the walk before the ratio (0) could reach threshold 0
    assert surviving_timestamps([(10, 0), (20, 10)], 0.0, 10) == [(10, 0), (20, 10)]
    # overlapping by any amount at threshold 0 removes one
    assert surviving_timestamps([(10, 0), (20, 9.5)], 0.0, 10) == [(10, 0)]


def test_zero_length_window_has_ratio_zero():
    assert surviving_timestamps([(10, 0), (5, 5)], 0.5, 10) == [(10, 0), (5, 5)]


def test_full_threshold_removes_contained_windows():
    kept = surviving_timestamps([(20, 0), (15, 5)], 1.0, 20)
    assert kept == [(20, 0)]


def test_identical_timestamps_return_both_windows():
    a, b = window(0, 10), window(0, 10, mid=3)
    e = filter_overlaps(built(a, b), OverlapParams(overlap_percentage=50), "m")
    assert e["filtered"] == [[10, 0]]
    assert e["filtered_windows"] == [a, b]
    assert e["filtered_dur"] == 10 and e["filtered_dur_list"] == [10]


def test_filtered_windows_keep_original_order_and_sums():
    w1, w2, w3 = window(30, 40), window(0, 10), window(5, 14)
    e = filter_overlaps(built(w1, w2, w3), OverlapParams(overlap_percentage=50, target_duration=10), "m")
    assert e["filtered"] == [[10, 0], [40, 30]]  # sorted by start
    assert e["filtered_windows"] == [w1, w2]  # original order
    assert e["total_dur_window"] == 29 and e["total_dur_list_window"] == [10, 10, 9]
    assert e["filtered_dur"] == 20


def test_passed_timestamps_are_used_instead_of_reading_windows():
    opaque = [object(), object()]
    e = filter_overlaps(built(*opaque), OverlapParams(), "m", timestamps=[(10, 0), (30, 20)])
    assert e["filtered_windows"] == opaque
