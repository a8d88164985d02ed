"""Fuzzing the per-line path: ``curate_line`` never raises, and validation
catches everything the builder, the overlap filter, the serializer and the
run statistics would choke on.

Four sources of input: arbitrary bytes; valid fixture lines mutated at the
byte level (flips, truncations, splices, insertions, deletions); valid
entries mutated structurally (a field's value swapped for any JSON value,
keys deleted, values nested deeply); and random JSON values, including
objects that have the required keys with random values. For every line:

* nothing raises out of ``curate_line``;
* a blank line gives None and only a blank line does;
* no reason starts with ``internal_error`` (an internal error means
  validation let through something the per-entry code cannot handle);
* an error record is one valid JSON object that points back at the line;
* a curated line is valid JSON whose run-statistics record the combiner can
  add (ints are ints, floats finite numbers), so one bad line can never fail
  the aggregation step of the whole job.

Bounded for CI (a few thousand lines, well under a minute); deselect with
``-m "not fuzz"``. The regression tests at the end pin the gaps fuzzing found.
"""

from __future__ import annotations

import math

import orjson
import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alm_beam.core.curate import Curated, Failed, OutputOptions, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.stats import FLOAT_FIELDS, INT_FIELDS, RunStats
from alm_beam.core.validate import MAX_NESTING, MAX_SECONDS, validate_entry

FIXTURE_LINES = [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]
FIXTURE_ENTRIES = [orjson.loads(line) for line in FIXTURE_LINES]

# A short, valid entry: mutations of it are cheap to curate, so many more
# examples fit in the time budget than with the ~5 KB fixture lines.
SMALL_ENTRY = {
    "audio_filepath": "/a.wav",
    "audio_sample_rate": 16000,
    "duration": 140.0,
    "swift_audio_filepath": "s3://b/a.wav",
    "segments": [
        {
            "text": "hello there",
            "start": 0.0,
            "end": 50.0,
            "speaker": "s0",
            "metrics": {"bandwidth": 9000},
            "words": [
                {"word": "hello", "start": 0.0, "end": 20.0},
                {"word": "there", "start": 20.0, "end": 50.0},
            ],
        },
        {
            "text": "general kenobi",
            "start": 50.0,
            "end": 100.0,
            "speaker": "s1",
            "metrics": {"bandwidth": 9000},
            "words": [
                {"word": "general", "start": 50.0, "end": 80.0},
                {"word": "kenobi", "start": 80.0, "end": 100.0},
            ],
        },
        {
            "text": "you are a bold one",
            "start": 100.0,
            "end": 140.0,
            "speaker": "s0",
            "metrics": {"bandwidth": 9000},
            "words": [
                {"word": "you", "start": 100.0, "end": 110.0},
                {"word": "are", "start": 110.0, "end": 118.0},
                {"word": "bold", "start": 118.0, "end": 140.0},
            ],
        },
    ],
}
SMALL_LINE = orjson.dumps(SMALL_ENTRY)
# Integer timestamps (sums stay integers: the int64 range matters), and an
# entry that builds no window (the overlap filter then keeps its keys as given).
INT_LINE = orjson.dumps(
    {
        "audio_filepath": "/i.wav",
        "audio_sample_rate": 16000,
        "segments": [
            {"start": 0, "end": 70, "speaker": "a", "metrics": {"bandwidth": 8000}},
            {
                "start": 70,
                "end": 125,
                "speaker": "b",
                "metrics": {"bandwidth": 8000},
                "words": [{"word": "w", "start": 70, "end": 100}, {"end": 125}],
            },
        ],
    }
)
NO_WINDOW_LINE = orjson.dumps(
    {
        "audio_filepath": "/n.wav",
        "audio_sample_rate": 16000,
        "filtered_dur": 0.0,
        "segments": [{"start": 0, "end": 3, "speaker": "a", "metrics": {"bandwidth": 8000}}],
    }
)
SEED_LINES = [SMALL_LINE, INT_LINE, NO_WINDOW_LINE] + FIXTURE_LINES

# Parameter sets the per-line path must survive with: the defaults, the
# compact output, no truncation, and keeping words / segments in the output.
PARAMS = [
    make_params({}, {}),
    make_params({"truncation": False, "min_speakers": 1}, {"overlap_percentage": 0}),
    make_params({"drop_fields": [], "drop_fields_top_level": []}, {}),
    make_params(
        {"target_window_duration": 60, "min_bandwidth": 0, "min_sample_rate": 0},
        {"overlap_percentage": 100, "target_duration": 60},
    ),
]
OPTIONS = [OutputOptions(), OutputOptions(compact=True, max_raw_chars=50)]

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Every number orjson can parse: integers in [-2**63, 2**64 - 1] (others
# become floats) and finite floats of any magnitude.
EXTREMES = [
    1e308,
    -1e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**62,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    9.1e15,
    1e19,
    -1e19,
    5e-324,
]
json_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-300, max_value=300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 0.5, 16000, 8000, 120.0, 132.0] + EXTREMES),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    json_numbers,
    st.text(max_size=8),
    st.sampled_from(["", "no-speaker", "s0", "words"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def check_outcome(raw: bytes, params, options: OutputOptions) -> None:
    """Run one line through the real per-line path and check every promise."""
    outcome = curate_line(raw, "fuzz.jsonl", params, line=7, offset=123, options=options)
    if not raw.strip(b" \t\r\n"):  # JSON whitespace only (not \f, \v, ...)
        assert outcome is None
        return
    assert outcome is not None, "only blank lines may be skipped"
    if isinstance(outcome, Failed):
        assert not outcome.reason.startswith("internal_error"), (outcome.reason, raw[:300])
        record = orjson.loads(outcome.line)
        assert record["reason"] == outcome.reason
        assert record["detail"] and "\n" not in record["detail"]
        assert (record["manifest_filepath"], record["line"], record["byte_offset"]) == ("fuzz.jsonl", 7, 123)
        assert record["raw_bytes"] == len(raw)
        assert len(record["raw"]) <= options.max_raw_chars
        return
    assert isinstance(outcome, Curated)
    entry = orjson.loads(outcome.line)  # the output line is JSON an object
    assert isinstance(entry, dict)
    ints, floats, source, kept_durations, kept_speakers = outcome.record
    assert source == "fuzz.jsonl"
    # (an entry without windows keeps its own filtered_windows; only built ones are counted)
    assert len(kept_durations) == len(kept_speakers) <= len(entry["filtered_windows"])
    assert len(ints) == len(INT_FIELDS) and len(floats) == len(FLOAT_FIELDS)
    assert all(type(v) is int for v in ints), ints
    for v in floats:
        assert not isinstance(v, bool) and isinstance(v, (int, float)), floats
        assert math.isfinite(v), floats
    # The combiner must be able to add it, and the summary must stay finite.
    stats = RunStats()
    stats.add(outcome.record)
    stats.add(outcome.record)
    totals = stats.to_dict()
    assert all(math.isfinite(totals[k]) for k in ("filtered_dur", "total_dur_window"))
    assert all(math.isfinite(v) for v in totals["stats"].values())
    orjson.dumps(totals)
    orjson.dumps(stats.report_dict())


# --- byte-level inputs -----------------------------------------------------------


@pytest.mark.fuzz
@settings(FUZZ, max_examples=600)
@given(raw=st.binary(max_size=300), params=st.sampled_from(PARAMS), options=st.sampled_from(OPTIONS))
def test_arbitrary_bytes(raw, params, options):
    check_outcome(raw, params, options)


@st.composite
def byte_mutation(draw):
    line = bytearray(draw(st.sampled_from(SEED_LINES)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "splice", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(line) - 1, 0)))
        if kind == "flip" and line:
            line[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and line:
            line[pos] = draw(st.sampled_from(b'{}[]":,0-.eE \\tnfx\x00\x80\xff'))
        elif kind == "truncate":
            line = line[:pos]
        elif kind == "splice":
            other = draw(st.sampled_from(SEED_LINES))
            line = line[:pos] + other[draw(st.integers(0, len(other))) :]
        elif kind == "insert":
            line[pos:pos] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=6),
                    st.sampled_from(
                        [
                            b"NaN",
                            b"Infinity",
                            b"-Infinity",
                            b"null",
                            b"true",
                            b"{}",
                            b"[]",
                            b'"\\u2028"',
                            "\u2028\u0085".encode(),
                            b"\xef\xbb\xbf",
                            b"\r",
                            b"1e400",
                            b"18446744073709551616",
                        ]
                    ),
                )
            )
        elif kind == "delete":
            del line[pos : pos + draw(st.integers(1, 20))]
    return bytes(line)


@pytest.mark.fuzz
@settings(FUZZ, max_examples=700)
@given(raw=byte_mutation(), params=st.sampled_from(PARAMS), options=st.sampled_from(OPTIONS))
def test_byte_mutations_of_valid_lines(raw, params, options):
    check_outcome(raw, params, options)


# --- structure-aware mutations ---------------------------------------------------


def _containers(value, path=()):
    """Every (path, container) inside a parsed entry, the entry itself first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        if isinstance(child, (dict, list)):
            yield from _containers(child, path + (key,))


@st.composite
def structural_mutation(draw):
    entry = orjson.loads(draw(st.sampled_from(SEED_LINES[:4])))
    deep = []  # (placeholder, prefix, value, suffix): nesting spliced in as text at the end
    for _ in range(draw(st.integers(1, 4))):
        places = [c for _, c in _containers(entry) if c]
        target = draw(st.sampled_from(places))
        key = draw(
            st.sampled_from(list(target.keys()) if isinstance(target, dict) else list(range(len(target))))
        )
        kind = draw(
            st.sampled_from(
                ["swap", "swap", "swap", "delete", "nest", "add_key", "duplicate", "extreme", "extreme"]
            )
        )
        if kind == "swap":  # type swap: any JSON value in place of this field
            target[key] = draw(json_values)
        elif kind == "extreme":  # a number at the edge of what JSON readers accept
            numbers = [
                (c, k)
                for _, c in _containers(entry)
                if isinstance(c, dict)
                for k, v in c.items()
                if type(v) in (int, float)
            ]
            if numbers:
                container, name = draw(st.sampled_from(numbers))
                container[name] = draw(st.sampled_from(EXTREMES))
        elif kind == "delete":
            del target[key]
        elif kind == "nest":  # shallow or very deep nesting around the value
            depth = draw(st.one_of(st.integers(1, 5), st.integers(240, 260), st.integers(1000, 1030)))
            levels = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
            prefix = b"".join(b"[" if lst else b'{"k":' for lst in levels)
            suffix = b"".join(b"]" if lst else b"}" for lst in reversed(levels))
            placeholder = f"@@deep{len(deep)}@@"
            deep.append((placeholder, prefix, target[key], suffix))
            target[key] = placeholder
        elif kind == "add_key" and isinstance(target, dict):
            name = draw(
                st.sampled_from(
                    [
                        "filtered",
                        "filtered_windows",
                        "filtered_dur",
                        "total_dur_window",
                        "filtered_dur_list",
                        "total_dur_list_window",
                        "windows",
                        "stats",
                        "manifest_filepath",
                        "swift_filepath",
                        "truncation_events",
                        "metrics",
                        "words",
                        "speaker",
                        "bandwidth",
                        "word",
                        "end",
                        "start",
                    ]
                )
            )
            target[name] = draw(json_values)
        elif kind == "duplicate" and isinstance(target, list):
            target.append(target[key])
    text = orjson.dumps(entry)
    for placeholder, prefix, value, suffix in reversed(deep):  # outermost first
        text = text.replace(orjson.dumps(placeholder), prefix + orjson.dumps(value) + suffix)
    return text


@pytest.mark.fuzz
@settings(FUZZ, max_examples=900)
@given(raw=structural_mutation(), params=st.sampled_from(PARAMS), options=st.sampled_from(OPTIONS))
def test_structural_mutations_of_valid_entries(raw, params, options):
    check_outcome(raw, params, options)


# --- random JSON values ----------------------------------------------------------

numbers_or_any = st.one_of(json_numbers, json_numbers, json_values)


@st.composite
def entry_like(draw):
    """Objects with the required keys and random (often nearly valid) values."""

    def segment():
        seg = {"start": draw(numbers_or_any), "end": draw(numbers_or_any)}
        if draw(st.booleans()):
            seg["speaker"] = draw(st.one_of(st.sampled_from(["a", "b", None, "", "no-speaker"]), json_values))
        if draw(st.booleans()):
            seg["metrics"] = draw(
                st.one_of(st.fixed_dictionaries({"bandwidth": numbers_or_any}), json_values)
            )
        if draw(st.booleans()):
            seg["words"] = draw(
                st.one_of(
                    st.lists(
                        st.fixed_dictionaries(
                            {"end": numbers_or_any}, optional={"word": json_scalars, "start": json_numbers}
                        ),
                        max_size=4,
                    ),
                    json_values,
                )
            )
        for key in draw(st.lists(st.sampled_from(["start", "end", "speaker"]), max_size=1)):
            seg.pop(key, None)
        return seg

    entry = {
        "audio_filepath": draw(st.one_of(st.text(max_size=5), json_values)),
        "audio_sample_rate": draw(st.one_of(st.sampled_from([16000, 8000, 48000.0]), numbers_or_any)),
        "segments": [segment() for _ in range(draw(st.integers(0, 6)))],
    }
    extra = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "filtered",
                    "filtered_dur",
                    "windows",
                    "x",
                    "total_dur_window",
                    "filtered_windows",
                    "stats",
                    "swift_audio_filepath",
                ]
            ),
            json_values,
            max_size=2,
        )
    )
    entry.update(extra)
    return orjson.dumps(entry)


@pytest.mark.fuzz
@settings(FUZZ, max_examples=900)
@given(
    raw=st.one_of(json_values.map(orjson.dumps), entry_like()),
    params=st.sampled_from(PARAMS),
    options=st.sampled_from(OPTIONS),
)
def test_random_json_values(raw, params, options):
    check_outcome(raw, params, options)


# --- regressions: gaps the fuzzing found in validate.py --------------------------


def _entry(**changes):
    entry = orjson.loads(SMALL_LINE)
    entry.update(changes)
    return entry


def _seg(start, end, **extra):
    return {"start": start, "end": end, "speaker": "s0", "metrics": {"bandwidth": 9000}, **extra}


def _curate(entry_or_raw, params=PARAMS[0]):
    raw = entry_or_raw if isinstance(entry_or_raw, bytes) else orjson.dumps(entry_or_raw)
    return curate_line(raw, "r.jsonl", params)


REGRESSIONS = [
    # Integers orjson reads (up to 2**64 - 1) whose differences or sums it cannot write.
    (_entry(segments=[_seg(2**64 - 1, 0)]), "out_of_range:segments[].start", "segments[0].start"),
    (_entry(segments=[_seg(0, 2**63), _seg(0, 2**63)]), "out_of_range:segments[].end", "segments[0].end"),
    (_entry(segments=[_seg(-(2**52), 2**52)] * 3), "out_of_range:segments", "segments"),
    # Finite floats whose duration overflows to inf (written as null; summary breaks).
    (_entry(segments=[_seg(-1.7e308, 1.7e308)]), "out_of_range:segments[].start", "segments[0].start"),
    (
        _entry(segments=[_seg(0.0, 1.0, words=[{"word": "x", "end": -1e300}])]),
        "out_of_range:segments[].words[].end",
        "segments[0].words[0].end",
    ),
    # The overlap filter keeps these keys as given on an entry without windows, and
    # the run statistics read them: a string filtered_dur failed the whole job.
    (_entry(segments=[], filtered_dur="x"), "wrong_type:filtered_dur", "filtered_dur"),
    (_entry(segments=[], total_dur_window=[1]), "wrong_type:total_dur_window", "total_dur_window"),
    (_entry(segments=[], filtered_dur=True), "wrong_type:filtered_dur", "filtered_dur"),
    (_entry(segments=[], filtered_dur=1e308), "out_of_range:filtered_dur", "filtered_dur"),
    (_entry(segments=[], filtered_windows=5), "wrong_type:filtered_windows", "filtered_windows"),
    (_entry(segments=[], filtered=None), "wrong_type:filtered", "filtered"),
    (_entry(segments=[], filtered_dur_list={}), "wrong_type:filtered_dur_list", "filtered_dur_list"),
]


@pytest.mark.parametrize(
    "entry, code, field", REGRESSIONS, ids=[r[1] + "-" + str(i) for i, r in enumerate(REGRESSIONS)]
)
def test_regression_rejected_by_validation(entry, code, field):
    rejection = validate_entry(entry)
    assert rejection is not None and rejection.code == code, rejection
    assert rejection.detail.startswith(field + ":"), rejection.detail
    outcome = _curate(entry)
    assert isinstance(outcome, Failed) and outcome.reason == code


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("where", ["top", "swift", "segment", "word"])
def test_regression_nesting_limit(where):
    """orjson reads 1024 levels but writes only 254: the deepest entry that is
    accepted is written fine, one level more is rejected as too_deep (it was an
    internal_error, the serializer failing after the window building).
    swift_audio_filepath is copied one level deeper, into stats.swift_path."""

    def line(depth_inside: int) -> bytes:
        deep = _nested(depth_inside)
        if where == "top":
            body = b'"extra":' + deep + b',"segments":[]'
        elif where == "swift":
            body = b'"swift_audio_filepath":' + deep + b',"segments":[]'
        elif where == "segment":
            body = b'"segments":[{"start":0,"end":1,"metrics":{"bandwidth":9000},"x":' + deep + b"}]"
        else:
            body = (
                b'"segments":[{"start":0,"end":1,"metrics":{"bandwidth":9000},'
                b'"words":[{"end":0.5,"w":' + deep + b"}]}]"
            )
        return b'{"audio_filepath":"a","audio_sample_rate":16000,' + body + b"}"

    # levels above the innermost value: entry object (1), plus the path to it
    above = {"top": 1, "swift": 1, "segment": 3, "word": 5}[where]
    for params in (PARAMS[0], PARAMS[2]):  # windows/lost windows with and without words
        good = _curate(line(MAX_NESTING - above), params)
        assert isinstance(good, Curated), good
        orjson.loads(good.line)
        # Up to orjson's writing limit an entry may still be written; past it, the
        # writer's failure becomes a too_deep rejection (never an internal error).
        for extra in range(1, 4):
            outcome = _curate(line(MAX_NESTING - above + extra), params)
            if isinstance(outcome, Curated):
                orjson.loads(outcome.line)
            else:
                assert outcome.reason == "too_deep", outcome
        bad = _curate(line(MAX_NESTING + 10), params)
        if isinstance(bad, Curated):  # the deep part is dropped (words) or never copied
            assert where in ("segment", "word")
            orjson.loads(bad.line)
            continue
        assert bad.reason == "too_deep", bad
        detail = orjson.loads(bad.line)["detail"]
        assert detail.startswith(
            {"top": "extra", "swift": "swift_audio_filepath", "segment": "segments", "word": "segments"}[
                where
            ]
            + ":"
        ), detail


def test_regression_limits_keep_real_values():
    """The bounds reject nothing a real manifest holds: 2**53 s itself is fine."""
    entry = _entry(segments=[_seg(0, MAX_SECONDS), _seg(MAX_SECONDS, MAX_SECONDS)])
    assert validate_entry(entry) is None
    entry = _entry(segments=[_seg(-MAX_SECONDS, 0.0)], filtered_dur=1e15)
    assert validate_entry(entry) is None
    assert validate_entry(_entry(segments=[_seg(0, MAX_SECONDS + 1)])).code == "out_of_range:segments[].end"
    for entry in FIXTURE_ENTRIES:
        assert validate_entry(entry) is None


@pytest.mark.fuzz
@settings(FUZZ, max_examples=900)
@given(raw=st.one_of(structural_mutation(), entry_like(), byte_mutation()))
def test_inline_segment_check_never_accepts_what_the_exact_check_rejects(raw):
    """validate_entry trusts _plain_segment for the common case; it must never
    accept a segment that _validate_segment would reject."""
    from alm_beam.core.validate import _plain_segment, _validate_segment

    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    segments = entry.get("segments") if isinstance(entry, dict) else None
    for seg in segments if isinstance(segments, list) else ():
        if _plain_segment(seg):
            assert _validate_segment(0, seg) is None, seg


def test_inline_segment_check_serves_real_segments():
    """The inline check must accept ordinary segments (else it only costs time)."""
    from alm_beam import synth
    from alm_beam.core.validate import _plain_segment, _validate_segment

    segments = [s for e in FIXTURE_ENTRIES + list(synth.generate_entries(40, 3)) for s in e["segments"]]
    assert all(map(_plain_segment, segments))
    # values orjson never produces but a caller's dict may hold
    for bad in (float("inf"), float("nan"), True):
        seg = {"start": 0, "end": 1, "metrics": {"bandwidth": bad}}
        assert not _plain_segment(seg) and _validate_segment(0, seg) is not None
    for bad in (float("nan"), float("inf"), True):
        assert not _plain_segment({"start": bad, "end": 1})
