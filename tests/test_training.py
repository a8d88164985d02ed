"""The training manifest (train-*.jsonl): one NeMo-style line per kept window.

Expected values are derived here, independently of alm_beam.core.training, from the
golden outputs' ``filtered_windows`` (the reference implementation's), and from
a real run's own windows output.
"""

import collections
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES, GOLDEN
from test_golden import CASES, _input_for

from alm_beam.config import ConfigError, build_config, parse_set
from alm_beam.core.curate import Curated, OutputOptions, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.training import TRAINING_FIELDS, window_id

PROVENANCE = ("window_id", "manifest_filepath", "line", "byte_offset")
DECIMALS = 6  # docs/output.md: offsets and durations of training lines, in microseconds


def expected_records(entry: dict) -> list:
    """The training records of one golden output entry, minus provenance, derived
    from its ``filtered_windows`` as the issue defines them."""
    records = []
    for index, window in enumerate(entry["filtered_windows"]):
        segs = window["segments"]
        speakers = []
        for s in segs:
            if s.get("speaker") and s["speaker"] not in speakers:
                speakers.append(s["speaker"])
        records.append(
            {
                "audio_filepath": entry["audio_filepath"],
                "offset": round(segs[0]["start"], DECIMALS),
                "duration": round(segs[-1]["end"] - segs[0]["start"], DECIMALS),
                "text": " ".join(s["text"] for s in segs if s.get("text")),
                "segments": [
                    {"start": s["start"], "end": s["end"], "speaker": s.get("speaker"), "text": s.get("text")}
                    for s in segs
                ],
                "speakers": speakers,
                "speaker_durations": [round(d, DECIMALS) for d in window["speaker_durations"]],
                "num_segments": len(segs),
                "window_index": index,
            }
        )
    return records


def _key(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in PROVENANCE}, sort_keys=True)


def _manifest_lines(path: str):
    """(raw line, line number, byte offset) of every line of a manifest."""
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            yield raw.rstrip(b"\n"), number, offset
            offset += len(raw)


def _case_params(case):
    args = CASES[case]
    return build_config({}, [parse_set(v) for k, v in zip(args[::2], args[1::2])]).params


def _case_inputs(case):
    path = _input_for(case)
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True))
    return [path]


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_lines_equal_the_golden_filtered_windows(case):
    params = _case_params(case)
    got = []
    for path in _case_inputs(case):
        for raw, number, offset in _manifest_lines(path):
            outcome = curate_line(raw, path, params, line=number, offset=offset)
            assert type(outcome) is Curated
            for text in filter(None, outcome.train.split(b"\n")):
                record = json.loads(text)
                assert list(record) == list(TRAINING_FIELDS)
                assert record["manifest_filepath"] == path
                assert (record["line"], record["byte_offset"]) == (number, offset)
                assert record["window_id"] == window_id(path, offset, record["window_index"])
                got.append(record)
    with open(GOLDEN / f"{case}.jsonl", encoding="utf-8") as fh:
        golden = [json.loads(line) for line in fh if line.strip()]
    want = [r for entry in golden for r in expected_records(entry)]
    assert len(got) == len(want) == sum(len(e["filtered_windows"]) for e in golden)
    assert collections.Counter(map(_key, got)) == collections.Counter(map(_key, want))
    noisy = [r["window_id"] for r in got if _noisy_times(r)]
    assert noisy == [], "training lines with float noise in offset/duration/speaker_durations"


def _noisy_times(record: dict) -> list:
    """The offset/duration/speaker_durations values of ``record`` that are not
    written with at most DECIMALS decimals (float noise such as 120.99000000000001)."""
    values = [record["offset"], record["duration"], *record["speaker_durations"]]
    return [v for v in values if len(repr(v).partition(".")[2]) > DECIMALS or "e" in repr(v)]


def _entry(segments, **extra):
    return json.dumps(
        {"audio_filepath": "/a.wav", "audio_sample_rate": 16000, "segments": segments, **extra}
    ).encode()


def _seg(start, end, speaker, text, words=None, bw=16000):
    seg = {"start": start, "end": end, "speaker": speaker, "text": text, "metrics": {"bandwidth": bw}}
    if words is not None:
        seg["words"] = words
    return seg


def _train(raw, params=None, **kw):
    outcome = curate_line(raw, "/m.jsonl", params or make_params(), line=3, offset=70, **kw)
    assert type(outcome) is Curated
    return [json.loads(t) for t in outcome.train.split(b"\n") if t]


def test_truncated_last_segment_ends_the_window_and_its_text_is_the_kept_words():
    words = [
        {"word": w, "start": end - 1.0, "end": end}
        for w, end in (("one", 110.0), ("", 111.0), ("three", 125.0), ("four", 135.0))
    ]
    raw = _entry(
        [
            _seg(0.0, 60.0, "a", "first"),
            _seg(60.0, 100.0, "b", ""),
            _seg(100.0, 140.0, "a", "one three four", words),
        ]
    )
    (rec,) = _train(raw)
    # cut at 0 + 132: words ending by 132 are kept; the part ends at the last one (125.0)
    assert rec["segments"][-1] == {"start": 100.0, "end": 125.0, "speaker": "a", "text": "one three"}
    assert (rec["offset"], rec["duration"], rec["num_segments"]) == (0.0, 125.0, 3)
    assert rec["text"] == "first one three"  # the empty text is skipped
    assert rec["speakers"] == ["a", "b"]
    assert rec["speaker_durations"] == [85.0, 40.0, 0.0, 0.0, 0.0]
    assert (rec["manifest_filepath"], rec["line"], rec["byte_offset"]) == ("/m.jsonl", 3, 70)


def test_offsets_and_durations_are_rounded_to_microseconds_without_float_noise():
    # 121.09 - 0.1 is 120.99000000000001 in binary floating point, and the
    # speaker sums 60.2 - 0.1 and 121.09 - 60.2 carry noise too
    raw = _entry([_seg(0.1, 60.2, "a", "x"), _seg(60.2, 121.09, "b", "y")])
    outcome = curate_line(raw, "/m.jsonl", make_params(), line=1, offset=0)
    text = outcome.train.decode()
    assert '"offset":0.1,"duration":120.99,' in text
    assert '"speaker_durations":[60.89,60.1,0.0,0.0,0.0],' in text
    # the segments keep the input's own times
    assert '"segments":[{"start":0.1,"end":60.2,' in text
    assert "e-" not in text
    # a time with more than six decimals is rounded to the microsecond
    (rec,) = _train(_entry([_seg(0.12345678, 60.0, "a", "x"), _seg(60.0, 121.0, "b", "y")]))
    assert (rec["offset"], rec["duration"]) == (0.123457, 120.876543)
    assert rec["segments"][0]["start"] == 0.12345678
    # integers stay integers
    (rec,) = _train(_entry([_seg(0, 60, "a", "x"), _seg(60, 121, "b", "y")]))
    assert (rec["offset"], rec["duration"], rec["speaker_durations"][:2]) == (0, 121, [61, 60])
    assert [type(v) for v in (rec["offset"], rec["duration"], *rec["speaker_durations"][:2])] == [int] * 4


def test_dropped_fields_and_missing_speakers_read_as_null():
    segs = [_seg(0.0, 60.0, "a", "x"), _seg(60.0, 115.0, "b", "y")]
    del segs[1]["speaker"]
    params = build_config(
        {}, [("builder.drop_fields", ["words", "text"]), ("builder.min_speakers", 1)]
    ).params
    (rec,) = _train(_entry(segs), params)
    assert [(s["speaker"], s["text"]) for s in rec["segments"]] == [("a", None), (None, None)]
    assert (rec["text"], rec["speakers"]) == ("", ["a"])


def test_texts_that_are_not_strings_are_kept_in_segments_but_not_joined():
    segs = [_seg(0.0, 40.0, "a", 7), _seg(40.0, 80.0, "b", "two"), _seg(80.0, 115.0, "a", {"x": 1})]
    (rec,) = _train(_entry(segs))
    assert rec["text"] == "two"
    assert [s["text"] for s in rec["segments"]] == [7, "two", {"x": 1}]


def test_windows_with_equal_timestamps_get_distinct_ids():
    # a duplicated first segment: the windows started at it and at its copy have
    # the same timestamps; the filter keeps both (spec section 4).
    segs = [_seg(0.0, 60.0, "a", "x"), _seg(0.0, 60.0, "a", "x"), _seg(60.0, 115.0, "b", "y")]
    recs = _train(_entry(segs))
    assert [(r["offset"], r["duration"], r["num_segments"], r["window_index"]) for r in recs] == [
        (0.0, 115.0, 3, 0),
        (0.0, 115.0, 2, 1),
    ]
    assert len({r["window_id"] for r in recs}) == 2


def test_window_id_is_deterministic_and_names_path_offset_and_index():
    ids = {window_id(p, o, i) for p in ("/m.jsonl", "/n.jsonl") for o in (0, 70) for i in (0, 1)}
    assert len(ids) == 8
    assert window_id("/m.jsonl", 70, 1) == window_id("/m.jsonl", 70, 1)
    assert len(window_id("/m.jsonl", 70, 1)) == 32
    # as docs/output.md defines it, and pinned: it must not change between versions
    assert window_id("/m.jsonl", 70, 1) == hashlib.blake2b(b"/m.jsonl\x0070\x001", digest_size=16).hexdigest()
    assert window_id("/m.jsonl", 70, 1) == "1bf463b1781304e1b5e7e486c17bc37c"


def test_training_off_and_entries_without_windows_make_no_lines():
    raw = _entry([_seg(0.0, 60.0, "a", "x"), _seg(60.0, 115.0, "b", "y")])
    assert len(_train(raw)) == 1
    off = curate_line(raw, "/m.jsonl", make_params(), options=OutputOptions(training_manifest=False))
    assert off.train == b""
    # the full output line is the same either way
    assert off.line == curate_line(raw, "/m.jsonl", make_params()).line
    # no window built: filtered_windows carried in the input is passed through
    # (spec section 4) and counted by the summary, but it is no window of this
    # run, so it gets no training line (docs/output.md says so)
    short = _entry([_seg(0.0, 5.0, "a", "x")], filtered_windows=[{"segments": []}])
    outcome = curate_line(short, "/m.jsonl", make_params())
    assert json.loads(outcome.line)["filtered_windows"] == [{"segments": []}]
    assert outcome.train == b""


def test_compact_output_gives_the_same_training_lines():
    with open(FIXTURES / "sample_input.jsonl", "rb") as fh:
        raw = fh.readline().rstrip(b"\n")
    full = curate_line(raw, "/m.jsonl", make_params(), offset=0)
    compact = curate_line(raw, "/m.jsonl", make_params(), offset=0, options=OutputOptions(compact=True))
    assert full.train and full.train == compact.train


@pytest.mark.parametrize("value", ["maybe", 1, None])
def test_training_manifest_must_be_a_bool(value):
    with pytest.raises(ConfigError, match=r"output\.training_manifest=.*expected true or false"):
        build_config({}, [("output.training_manifest", value)])
    assert build_config({}, []).output.training_manifest is True
    assert build_config({}, [("output.training_manifest", False)]).output.training_manifest is False


# --- through the real entry point --------------------------------------------


def _run(out_dir, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--output", str(out_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _shards(out_dir, prefix):
    lines = []
    for path in sorted(glob.glob(os.path.join(str(out_dir), f"{prefix}-*-of-*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            lines.extend(json.loads(line) for line in fh if line.strip())
    return lines


def _summary(out_dir):
    with open(os.path.join(str(out_dir), "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.mark.e2e
def test_a_run_writes_one_training_line_per_kept_window(tmp_path):
    out = tmp_path / "out"
    proc = _run(out, "--set", "input.split_mb=0.2")  # the bundled sample, in byte ranges
    summary = _summary(out)
    train = _shards(out, "train")
    assert len(train) == summary["filtered_windows"] > 0
    assert summary["outputs"]["train"] == sorted(
        os.path.basename(p) for p in glob.glob(str(out / "train-*.jsonl"))
    )
    assert "train-*.jsonl" in proc.stdout
    # every field against the same run's windows output
    windows = _shards(out, "windows")
    want = collections.Counter(_key(r) for e in windows for r in expected_records(e))
    assert collections.Counter(map(_key, train)) == want
    sources = {e["manifest_filepath"] for e in windows}
    assert {r["manifest_filepath"] for r in train} == sources
    assert len({r["window_id"] for r in train}) == len(train)

    # stable: one byte range per file, two workers, and compact output give the
    # same lines and ids (`line` is unknown in the middle of a byte range, so it
    # is left out of the comparison)
    again = tmp_path / "again"
    _run(again, "--compact", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")

    def strip_line(records):
        return sorted(
            json.dumps({k: v for k, v in r.items() if k != "line"}, sort_keys=True) for r in records
        )

    assert strip_line(_shards(again, "train")) == strip_line(train)


@pytest.mark.e2e
def test_training_manifest_false_writes_no_train_shard(tmp_path):
    out = tmp_path / "out"
    proc = _run(
        out, "--input", str(FIXTURES / "sample_input.jsonl"), "--set", "output.training_manifest=false"
    )
    assert glob.glob(str(out / "train-*")) == []
    assert _summary(out)["outputs"]["train"] == []
    assert _summary(out)["filtered_windows"] == 25
    assert "train-*.jsonl" not in proc.stdout


@pytest.mark.e2e
def test_help_and_default_config_list_the_key():
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "output.training_manifest" in proc.stdout
    with open(
        os.path.join(os.path.dirname(__file__), "..", "configs", "default.yaml"), encoding="utf-8"
    ) as fh:
        assert "  training_manifest: true " in fh.read()
