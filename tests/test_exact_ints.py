"""Integers beyond 64 bits pass through exactly (issue 10, item 6).

orjson reads integers in [-2**63, 2**64 - 1] exactly and turns larger ones
into floats; NeMo Curator reads with stdlib json and writes every integer back
digit for digit. The expected values here come from stdlib json and the
literal spec transcription (``literal_spec``), never from the code under test.
"""

import json

import orjson
import pytest

from alm_beam.core.curate import OutputOptions, curate_line, parse_line
from alm_beam.core.params import make_params
from tests.literal_spec import literal_build, literal_filter

BIG = 2**128 - 1  # the issue's example: came out as 3.402823669209385e+38
BEYOND = [BIG, -BIG, 2**64, -(2**63) - 1, 10**300]
EDGES = [2**64 - 1, -(2**63), 2**63]  # orjson's own range: exact before and after


def _seg(start, end, speaker, value):
    return {
        "start": start,
        "end": end,
        "speaker": speaker,
        "metrics": {"bandwidth": 9000, "snr": value},
        "id": value,
        "text": "a b",
        "words": [{"word": "a", "end": start + 1, "conf": value}, {"word": "b", "end": end, "conf": [value]}],
    }


def _entry(value):
    # 0-60 A, 60-125 B (cut at 132 with truncation of the third), 125-200 A
    return {
        "audio_filepath": "/a.wav",
        "audio_sample_rate": 16000,
        "big": value,
        "nested": {"list": [value, 1.5, {"deep": value}]},
        "swift_audio_filepath": value,
        "segments": [_seg(0, 60, "A", value), _seg(60, 125, "B", value), _seg(125, 200, "A", value)],
    }


def _expected(entry, params, compact=False):
    """NeMo Curator's answer: the literal spec on the stdlib-parsed entry."""
    out = literal_filter(literal_build(entry, params.builder), params.overlap, "m.jsonl")
    if compact:
        out.pop("windows")
        out["stats"].pop("lost_win_full_data")
    return json.loads(json.dumps(out))


@pytest.mark.parametrize("value", BEYOND + EDGES)
@pytest.mark.parametrize(
    "builder",
    [{}, {"drop_fields": []}, {"drop_fields": ["id", "words"]}],
    ids=["drop_words", "keep_all", "drop_id"],
)
def test_big_integers_pass_through_exactly(value, builder):
    params = make_params(builder, {})
    raw = json.dumps(_entry(value)).encode()
    outcome = curate_line(raw, "m.jsonl", params)
    got = json.loads(outcome.line)
    expected = _expected(json.loads(raw), params)
    assert _text(got) == _text(expected)
    assert got["big"] == value and type(got["big"]) is int
    assert got["filtered_windows"], "the fixture must keep a window"
    text = str(value).encode()
    # top level, nested, stats.swift_path/swift_filepath, and segment copies
    assert outcome.line.count(b":" + text) >= 5
    assert b"e+38" not in outcome.line and b"e38" not in outcome.line


@pytest.mark.parametrize("value", BEYOND)
def test_big_integers_exact_in_compact_output(value):
    params = make_params({"drop_fields": []}, {})
    raw = json.dumps(_entry(value)).encode()
    outcome = curate_line(raw, "m.jsonl", params, options=OutputOptions(compact=True))
    assert _text(json.loads(outcome.line)) == _text(_expected(json.loads(raw), params, compact=True))


def test_truncated_segment_keeps_big_integers():
    params = make_params({"drop_fields": []}, {})
    raw = json.dumps(_entry(BIG)).encode()
    got = json.loads(curate_line(raw, "m.jsonl", params).line)
    # the window from 0 ends in the cut third segment: its kept word carries BIG
    (window,) = [w for w in got["windows"] if w["segments"][0]["start"] == 0]
    part = window["segments"][-1]
    assert part["start"] == 125 and part["end"] == 126
    assert part["words"] == [{"word": "a", "end": 126, "conf": BIG}]
    assert part["id"] == BIG and part["metrics"]["snr"] == BIG


@pytest.mark.parametrize("value", [BIG, -BIG, 2**64, -(2**63) - 1])
def test_sample_rate_and_bandwidth_beyond_64_bits_are_numbers_as_before(value):
    """A huge audio_sample_rate or bandwidth is a number (accepted, as before,
    when it came in as a float); now it is also written back exactly."""
    params = make_params({}, {})
    entry = _entry(1)
    entry["audio_sample_rate"] = value
    for seg in entry["segments"]:
        seg["metrics"]["bandwidth"] = value
    raw = json.dumps(entry).encode()
    got = json.loads(curate_line(raw, "m.jsonl", params).line)
    assert _text(got) == _text(_expected(json.loads(raw), params))
    assert _text(got["stats"]["audio_sample_rate"]) == str(value)
    # a negative rate is below min_sample_rate: the whole entry is lost_sr
    assert got["stats"]["lost_sr"] == (3 if value < 0 else 0)
    if value > 0:
        assert got["windows"][0]["segments"][0]["metrics"]["bandwidth"] == value


def _text(value) -> str:
    """Type-exact comparison key: 2**64 and 1.8446744073709552e19 compare equal
    as Python numbers, but not as text."""
    return json.dumps(value)


def _set(entry, path, value):
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    "path,reason",
    [
        (("segments", 0, "start"), "out_of_range:segments[].start"),
        (("segments", 1, "end"), "out_of_range:segments[].end"),
        (("segments", 2, "words", 0, "end"), "out_of_range:segments[].words[].end"),
        (("total_dur_window",), "out_of_range:total_dur_window"),
        (("filtered_dur",), "out_of_range:filtered_dur"),
    ],
)
@pytest.mark.parametrize("value", [BIG, -BIG, 2**64, -(2**63) - 1, 2**64 - 1])
def test_huge_timestamps_keep_their_out_of_range_reason(path, reason, value):
    entry = _entry(1)
    _set(entry, path, value)
    outcome = curate_line(json.dumps(entry).encode(), "m.jsonl", make_params({}, {}))
    record = json.loads(outcome.line)
    assert (outcome.reason, record["reason"]) == (reason, reason)
    assert str(value) in record["detail"]  # the exact value, not its float rounding
    assert f'"{path[-1]}": {value}' in record["raw"]


@pytest.mark.parametrize("value", BEYOND)
def test_error_record_raw_keeps_big_integers(value):
    raw = b'{"audio_filepath": 7, "x": %d}' % value
    outcome = curate_line(raw, "m.jsonl", make_params({}, {}))
    record = orjson.loads(outcome.line)
    assert record["reason"] == "wrong_type:audio_filepath"
    assert record["raw"] == raw.decode()


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b'{"a": %d, "b": NaN}' % BIG, "invalid_json"),
        (b'{"a": %d, "b": Infinity}' % BIG, "invalid_json"),
        (b'{"a": %d, "b": -Infinity}' % BIG, "invalid_json"),
        (b'{"a": %d, "b": 1e400}' % BIG, "invalid_json"),
        (b'{"a": %d, "b": "\xff"}' % BIG, "invalid_utf8"),
        (b'{"a": %d} trailing' % BIG, "invalid_json"),
        (b"[%d]" % BIG, "not_an_object"),
        (b"%d" % BIG, "not_an_object"),
    ],
)
def test_a_big_integer_does_not_change_how_a_bad_line_is_rejected(raw, reason):
    outcome = curate_line(raw, "m.jsonl", make_params({}, {}))
    assert outcome.reason == reason
    _, rejection = parse_line(raw)
    assert (rejection is None) == (reason == "not_an_object")


def test_too_deep_with_a_big_integer_is_still_too_deep():
    entry = _entry(1)
    entry["deep"] = json.loads("[" * 300 + str(BIG) + "]" * 300)
    outcome = curate_line(json.dumps(entry).encode(), "m.jsonl", make_params({}, {}))
    assert outcome.reason == "too_deep"


@pytest.mark.parametrize(
    "extra",
    [
        '"id": "12345678901234567890123"',  # digits inside a string
        '"f": 0.00012345678901234567',  # a float with 20 digits after the point
        '"g": 1234567890123456789',  # 19 digits, inside orjson's range
        '"h": 12345678901234567890.5',  # a float, not an integer
    ],
)
def test_long_digit_runs_that_are_not_big_integers_change_nothing(extra):
    params = make_params({}, {})
    base = json.dumps(_entry(1))
    raw = ("{" + extra + ", " + base[1:]).encode()
    outcome = curate_line(raw, "m.jsonl", params)
    assert _text(json.loads(outcome.line)) == _text(_expected(json.loads(raw), params))
    assert _text(json.loads(outcome.line)) == _text(orjson.loads(outcome.line))


def test_duplicate_keys_resolve_as_before():
    raw = b'{"audio_filepath": "/a.wav", "x": %d, "audio_sample_rate": 16000, "x": 2, "segments": []}' % BIG
    got = orjson.loads(curate_line(raw, "m.jsonl", make_params({}, {})).line)
    assert list(got)[:3] == ["audio_filepath", "x", "audio_sample_rate"] and got["x"] == 2


def test_the_cheap_check_finds_every_run_of_19_digits_at_every_offset():
    """The sampled check (every 6th byte) must never miss a run: a miss would
    silently turn a big integer into a float again."""
    from alm_beam.core.curate import _may_hold_big_int

    for length in range(1, 41):
        for start in range(13):
            for tail in (b"}", b"", b"x" * 7):
                raw = b'{"a":' + b"x" * start + b"1" * length + tail
                assert _may_hold_big_int(raw) == (length >= 19), (length, start, tail)
