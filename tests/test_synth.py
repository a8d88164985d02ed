"""Tests for the synthetic manifest generator (alm_beam.synth)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alm_beam import synth

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATES = {rate for rate, _ in synth.SAMPLE_RATES} | {synth.LOW_SAMPLE_RATE}
SPEAKER_NAMES = {f"speaker_{k}" for k in range(6)}


def _is_2dp(x: float) -> bool:
    return isinstance(x, float) and round(x, 2) == x


def check_entry(entry: dict) -> None:
    """Assert every schema rule the generator promises for one entry."""
    keys = list(entry)
    assert keys[:3] == ["audio_filepath", "audio_sample_rate", "duration"]
    assert keys[-1] == "segments"
    assert set(keys) <= {
        "audio_filepath",
        "audio_sample_rate",
        "duration",
        "swift_audio_filepath",
        "segments",
    }
    assert isinstance(entry["audio_filepath"], str)
    assert entry["audio_filepath"].startswith("/data/synth/conv_")
    assert entry["audio_filepath"].endswith(".wav")
    if "swift_audio_filepath" in entry:
        name = entry["audio_filepath"].rsplit("/", 1)[1]
        assert entry["swift_audio_filepath"] == f"s3://bucket/synth/{name}"
    assert type(entry["audio_sample_rate"]) is int
    assert entry["audio_sample_rate"] in SAMPLE_RATES

    segments = entry["segments"]
    assert isinstance(segments, list) and segments
    assert _is_2dp(entry["duration"])
    assert entry["duration"] == segments[-1]["end"]
    assert entry["duration"] == max(s["end"] for s in segments)

    prev_start = -1.0
    for seg in segments:
        assert set(seg) <= {"text", "start", "end", "speaker", "metrics", "words"}
        assert {"text", "start", "end"} <= set(seg)
        start, end = seg["start"], seg["end"]
        assert _is_2dp(start) and _is_2dp(end)
        assert 0.0 <= start < end
        assert 1.0 <= round(end - start, 2) <= 15.0
        assert start > prev_start, "segments must be ordered by start"
        prev_start = start

        if "speaker" in seg:
            spk = seg["speaker"]
            assert spk is None or spk == "no-speaker" or spk in SPEAKER_NAMES
        if "metrics" in seg:
            assert list(seg["metrics"]) == ["bandwidth"]
            bw = seg["metrics"]["bandwidth"]
            assert type(bw) is int and 3000 <= bw <= 24000

        text = seg["text"]
        assert isinstance(text, str) and text and text == text.strip()
        assert all(tok in synth.VOCABULARY for tok in text.split(" "))
        if "words" in seg:
            words = seg["words"]
            assert words, "a present words list is never empty"
            assert " ".join(w["word"] for w in words) == text
            assert words[0]["start"] == start
            assert words[-1]["end"] == end
            cursor = start
            for w in words:
                assert list(w) == ["word", "start", "end"]
                assert isinstance(w["word"], str) and w["word"]
                assert _is_2dp(w["start"]) and _is_2dp(w["end"])
                assert cursor <= w["start"] < w["end"] <= end
                cursor = w["end"]


def _manifest_bytes(n: int, seed: int, **kw) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in synth.generate_entries(n, seed, **kw))


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    """A few hundred default-length entries: enough for every oddity to occur."""
    return list(synth.generate_entries(300, 11))


# --- determinism -----------------------------------------------------------


def test_same_arguments_same_bytes(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert synth.write_manifest(a, 40, 5) == synth.write_manifest(b, 40, 5)
    assert a.read_bytes() == b.read_bytes()
    assert synth.generate_entry(17, 5) == synth.generate_entry(17, 5)


def test_seed_and_index_change_output():
    assert _manifest_bytes(5, 1) != _manifest_bytes(5, 2)
    assert synth.generate_entry(0, 1)["segments"] != synth.generate_entry(1, 1)["segments"]


def test_prefix_property(tmp_path):
    short, long = tmp_path / "100.jsonl", tmp_path / "200.jsonl"
    n_short, bytes_short = synth.write_manifest(short, 100, 42)
    n_long, bytes_long = synth.write_manifest(long, 200, 42)
    assert (n_short, n_long) == (100, 200)
    assert bytes_short < bytes_long
    data_short, data_long = short.read_bytes(), long.read_bytes()
    assert len(data_short) == bytes_short and len(data_long) == bytes_long
    assert data_long.startswith(data_short)
    # Any entry can be regenerated on its own.
    line_150 = data_long.splitlines()[150]
    assert orjson.loads(line_150) == synth.generate_entry(150, 42)


@pytest.mark.e2e
def test_independent_of_hash_seed(tmp_path):
    """Output must not depend on PYTHONHASHSEED (dict/set/str hashing)."""
    outputs = []
    for hash_seed in ("0", "12345"):
        out = tmp_path / f"h{hash_seed}.jsonl"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO_ROOT))
        subprocess.run(
            [sys.executable, "-m", "alm_beam.synth", "--entries", "8", "--seed", "9", "--out", str(out)],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == _manifest_bytes(8, 9)


def test_pinned_digest():
    """Guards cross-machine reproducibility: only integers, random() and orjson
    are involved, so this digest must hold everywhere.  If the generator is
    changed on purpose, update the digest in the same commit."""
    digest = hashlib.sha256(_manifest_bytes(3, 2024, min_minutes=0.5, max_minutes=1.0))
    assert digest.hexdigest() == PINNED_DIGEST


PINNED_DIGEST = "bd310bb9c85ba07f6bd3c64fdbfa319f38246d9d2848a271b69bc831336694eb"


# --- schema and realism ----------------------------------------------------


def test_every_entry_matches_schema(sample):
    for entry in sample:
        check_entry(entry)


def test_entry_lengths_within_bounds(sample):
    durations = [e["duration"] for e in sample]
    assert all(180.0 <= d <= 360.0 for d in durations)
    # Uniform draw: both halves of the range are used.
    assert min(durations) < 200.0 and max(durations) > 340.0
    short = list(synth.generate_entries(20, 3, min_minutes=1.0, max_minutes=1.5))
    assert all(60.0 <= e["duration"] <= 90.0 for e in short)


def test_speakers_and_turn_taking(sample):
    per_entry = set()
    switches = turns = 0
    for entry in sample:
        labels = [s.get("speaker") for s in entry["segments"]]
        real = {lab for lab in labels if lab in SPEAKER_NAMES}
        assert 2 <= len(real) <= 6
        # Names are allocated from speaker_0 upwards.
        assert max(int(lab.split("_")[1]) for lab in real) < 6
        per_entry.add(len(real))
        for a, b in zip(labels, labels[1:]):
            if a in SPEAKER_NAMES and b in SPEAKER_NAMES:
                turns += 1
                switches += a != b
    assert per_entry == {2, 3, 4, 5, 6}
    assert 0.75 < switches / turns < 0.95


def test_segment_lengths_and_gaps(sample):
    lengths, gaps = [], []
    for entry in sample:
        segs = entry["segments"]
        lengths += [round(s["end"] - s["start"], 2) for s in segs]
        gaps += [round(b["start"] - a["end"], 2) for a, b in zip(segs, segs[1:])]
    n = len(lengths)
    assert sum(2.0 <= x <= 8.0 for x in lengths) / n > 0.5
    assert any(x > 8.0 for x in lengths) and any(x < 2.0 for x in lengths)
    assert sum(0.0 <= g <= 1.5 for g in gaps) / len(gaps) > 0.9
    long_pauses = sum(5.0 <= g <= 40.0 for g in gaps) / len(gaps)
    overlaps = sum(g < 0 for g in gaps) / len(gaps)
    assert 0.5 * synth.LONG_PAUSE_RATE < long_pauses < 2 * synth.LONG_PAUSE_RATE
    assert 0.5 * synth.OVERLAP_RATE < overlaps < 2 * synth.OVERLAP_RATE
    assert all(g >= -1.0 for g in gaps), "overlaps are slight"
    assert max(gaps) <= 40.0


def test_oddities_appear_at_their_rates(sample):
    segs = [s for e in sample for s in e["segments"]]
    n = len(segs)
    observed = {
        "no-speaker": sum(s.get("speaker", "") == "no-speaker" for s in segs) / n,
        "null speaker": sum("speaker" in s and s["speaker"] is None for s in segs) / n,
        "missing speaker": sum("speaker" not in s for s in segs) / n,
        "missing metrics": sum("metrics" not in s for s in segs) / n,
        "low bandwidth": sum("metrics" in s and s["metrics"]["bandwidth"] < 8000 for s in segs) / n,
        "missing words": sum("words" not in s for s in segs) / n,
    }
    expected = {
        "no-speaker": synth.NO_SPEAKER_LABEL_RATE,
        "null speaker": synth.NULL_SPEAKER_RATE,
        "missing speaker": synth.MISSING_SPEAKER_RATE,
        "missing metrics": synth.MISSING_METRICS_RATE,
        "low bandwidth": synth.LOW_BANDWIDTH_RATE * (1 - synth.MISSING_METRICS_RATE),
        "missing words": synth.MISSING_WORDS_RATE,
    }
    for kind, rate in expected.items():
        assert 0.5 * rate < observed[kind] < 2 * rate, (kind, observed[kind], rate)

    low_bw = [s["metrics"]["bandwidth"] for s in segs if "metrics" in s and s["metrics"]["bandwidth"] < 8000]
    assert all(3000 <= bw <= 7900 for bw in low_bw)

    assert {e["audio_sample_rate"] for e in sample} == SAMPLE_RATES


def test_entry_level_oddities():
    """Per-entry draws need many entries; short conversations keep this cheap."""
    entries = list(synth.generate_entries(3000, 11, min_minutes=0.05, max_minutes=0.1))
    rates = [e["audio_sample_rate"] for e in entries]
    assert set(rates) == SAMPLE_RATES
    low_sr = rates.count(synth.LOW_SAMPLE_RATE) / len(rates)
    assert 0.5 * synth.LOW_SAMPLE_RATE_RATE < low_sr < 2 * synth.LOW_SAMPLE_RATE_RATE
    assert rates.count(16000) > len(rates) / 3
    swift = sum("swift_audio_filepath" in e for e in entries) / len(entries)
    assert abs(swift - synth.SWIFT_PATH_RATE) < 0.05


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(0, 10**6),
    seed=st.integers(-(2**63), 2**63),
    min_seconds=st.floats(1.0, 90.0),
    extra_seconds=st.floats(0.0, 60.0),
)
def test_schema_holds_for_short_conversations(index, seed, min_seconds, extra_seconds):
    """Edge cases live at the end of a conversation; tiny ones hit them often."""
    lo = min_seconds / 60
    hi = (min_seconds + extra_seconds) / 60
    entry = synth.generate_entry(index, seed, min_minutes=lo, max_minutes=hi)
    check_entry(entry)
    assert round(lo * 60, 2) - 0.01 <= entry["duration"] <= round(hi * 60, 2) + 0.01


@settings(max_examples=30, deadline=None)
@given(seconds=st.floats(1.01, 600.0))
def test_hours_gives_exact_duration(seconds):
    entry = synth.generate_entry(0, 1, hours=seconds / 3600)
    check_entry(entry)
    assert abs(entry["duration"] - seconds) <= 0.0051


@pytest.mark.parametrize(
    "kw",
    [
        {"min_minutes": 0.001},
        {"min_minutes": 5.0, "max_minutes": 4.0},
        {"hours": 0.0},
        {"hours": -1.0},
    ],
)
def test_invalid_lengths_rejected(kw):
    with pytest.raises(ValueError):
        synth.generate_entry(0, 0, **kw)


# --- the 10-hour memory-test entry ------------------------------------------


def test_ten_hour_entry():
    entry = synth.generate_entry(0, 7, hours=10)
    check_entry(entry)
    assert entry["duration"] == 36000.0
    segments = entry["segments"]
    assert 6000 <= len(segments) <= 14000
    with_words = sum("words" in s for s in segments)
    assert with_words / len(segments) > 0.95
    assert sum(len(s.get("words", ())) for s in segments) > 50000
    assert len({s.get("speaker") for s in segments} & SPEAKER_NAMES) >= 2


# --- compressed output ------------------------------------------------------


@pytest.mark.parametrize("suffix, opener", [(".jsonl.gz", gzip.open), (".jsonl.bz2", bz2.open)])
def test_compressed_output_readable(tmp_path, suffix, opener):
    plain = tmp_path / "m.jsonl"
    packed = tmp_path / f"m{suffix}"
    synth.write_manifest(plain, 12, 3)
    n, written = synth.write_manifest(packed, 12, 3)
    assert n == 12
    with opener(packed, "rb") as fh:
        data = fh.read()
    assert data == plain.read_bytes()
    assert written == len(data)
    assert packed.stat().st_size < len(data)
    entries = [orjson.loads(line) for line in data.splitlines()]
    assert len(entries) == 12
    # Compressed output is reproducible too (gzip header has no mtime/name).
    again = tmp_path / f"again{suffix}"
    synth.write_manifest(again, 12, 3)
    assert again.read_bytes() == packed.read_bytes()


def test_zero_entries(tmp_path):
    out = tmp_path / "sub" / "empty.jsonl"
    assert synth.write_manifest(out, 0, 1) == (0, 0)
    assert out.read_bytes() == b""


# --- command line -------------------------------------------------------------


def _run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.synth", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.e2e
def test_cli_writes_manifest(tmp_path):
    out = tmp_path / "cli.jsonl.gz"
    proc = _run_cli(
        "--entries", "6", "--seed", "4", "--min-minutes", "1", "--max-minutes", "2", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    fields = dict(part.split("=", 1) for part in lines[0].split(" "))
    with gzip.open(out, "rb") as fh:
        data = fh.read()
    entries = [orjson.loads(line) for line in data.splitlines()]
    assert fields == {
        "entries": "6",
        "segments": str(sum(len(e["segments"]) for e in entries)),
        "bytes": str(out.stat().st_size),
        "uncompressed_bytes": str(len(data)),
        "path": str(out),
    }
    assert data == _manifest_bytes(6, 4, min_minutes=1.0, max_minutes=2.0)


@pytest.mark.e2e
def test_cli_hours(tmp_path):
    out = tmp_path / "long.jsonl"
    proc = _run_cli("--entries", "1", "--hours", "0.25", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (entry,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert entry["duration"] == 900.0
    assert entry == synth.generate_entry(0, 0, hours=0.25)


@pytest.mark.e2e
def test_cli_help():
    proc = _run_cli("--help")
    assert proc.returncode == 0
    for option in ("--entries", "--seed", "--out", "--min-minutes", "--max-minutes", "--hours"):
        assert option in proc.stdout


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [
        ["--entries", "1", "--out", "x.jsonl", "--min-minutes", "5", "--max-minutes", "4"],
        ["--entries", "-1", "--out", "x.jsonl"],
        ["--entries", "1", "--out", "x.jsonl", "--hours", "0"],
        ["--out", "x.jsonl"],
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, args):
    proc = _run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "error" in proc.stderr
    assert not (tmp_path / "x.jsonl").exists()


# --- the size it reports, and the id prefix --------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "suffix, opener", [(".jsonl", open), (".jsonl.gz", gzip.open), (".jsonl.bz2", bz2.open)]
)
def test_cli_reports_the_size_on_disk_and_the_uncompressed_size(tmp_path, suffix, opener):
    # It used to print the uncompressed size as `bytes` of a .gz/.bz2 file.
    out = tmp_path / f"m{suffix}"
    proc = _run_cli("--entries", "4", "--seed", "9", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    fields = dict(part.split("=", 1) for part in proc.stdout.split())
    with opener(out, "rb") as fh:
        uncompressed = len(fh.read())
    assert int(fields["bytes"]) == out.stat().st_size
    assert int(fields["uncompressed_bytes"]) == uncompressed
    if suffix != ".jsonl":
        assert out.stat().st_size < uncompressed


def test_id_prefix_changes_only_the_file_names():
    for index, seed in ((0, 1), (5, 2026)):
        plain = synth.generate_entry(index, seed, min_minutes=0.5, max_minutes=1.0)
        named = synth.generate_entry(index, seed, min_minutes=0.5, max_minutes=1.0, id_prefix="s7_")
        assert named["audio_filepath"] == f"/data/synth/s7_conv_{index:06d}.wav"
        assert plain["audio_filepath"] == f"/data/synth/conv_{index:06d}.wav"
        for key in ("audio_filepath", "swift_audio_filepath"):
            if key in plain:
                assert named[key] == plain[key].replace("/conv_", "/s7_conv_")
        assert {k: v for k, v in named.items() if not k.endswith("filepath")} == {
            k: v for k, v in plain.items() if not k.endswith("filepath")
        }


def test_corpora_with_different_prefixes_share_no_audio_filepath():
    def paths(seed, prefix):
        return {
            e["audio_filepath"]
            for e in synth.generate_entries(5, seed, min_minutes=0.2, max_minutes=0.3, id_prefix=prefix)
        }

    assert paths(1, "") == paths(2, "")  # the collision the prefix avoids
    assert paths(1, "seed1-").isdisjoint(paths(2, "seed2-"))


@pytest.mark.parametrize("prefix", ["a/b", "../x", "x y", "é"])
def test_unsafe_id_prefix_rejected(prefix):
    with pytest.raises(ValueError, match="id_prefix"):
        synth.generate_entry(0, 0, id_prefix=prefix)


@pytest.mark.e2e
def test_cli_id_prefix_and_default_unchanged(tmp_path):
    named, plain = tmp_path / "named.jsonl", tmp_path / "plain.jsonl"
    assert (
        _run_cli(
            "--entries",
            "3",
            "--seed",
            "4",
            "--min-minutes",
            "0.5",
            "--max-minutes",
            "1",
            "--id-prefix",
            "run4.",
            "--out",
            str(named),
        ).returncode
        == 0
    )
    assert (
        _run_cli(
            "--entries", "3", "--seed", "4", "--min-minutes", "0.5", "--max-minutes", "1", "--out", str(plain)
        ).returncode
        == 0
    )
    assert plain.read_bytes() == _manifest_bytes(3, 4, min_minutes=0.5, max_minutes=1.0)
    assert named.read_bytes() == plain.read_bytes().replace(b"/conv_", b"/run4.conv_")
    bad = _run_cli("--entries", "1", "--id-prefix", "a/b", "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "id_prefix='a/b'" in bad.stderr
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.e2e
def test_bundled_sample_is_what_the_documented_command_makes(tmp_path):
    out = tmp_path / "sample_manifest.jsonl.gz"
    assert _run_cli("--entries", "40", "--seed", "2026", "--out", str(out)).returncode == 0
    assert out.read_bytes() == (REPO_ROOT / "alm_beam" / "data" / "sample_manifest.jsonl.gz").read_bytes()


# --- how many segments carry word timings (the bench's workload shapes) ------------


def _without_words(entry: dict) -> dict:
    return {**entry, "segments": [{k: v for k, v in s.items() if k != "words"} for s in entry["segments"]]}


def test_words_rate_changes_only_which_segments_carry_word_timings():
    for index, seed in ((0, 1), (7, 2026)):
        plain = synth.generate_entry(index, seed)
        for rate in (0.0, 0.1, 1.0):
            entry = synth.generate_entry(index, seed, words_rate=rate)
            check_entry(entry)
            assert _without_words(entry) == _without_words(plain)
            # where a segment has word timings they are the default's own
            for ours, theirs in zip(entry["segments"], plain["segments"]):
                if "words" in ours and "words" in theirs:
                    assert ours["words"] == theirs["words"]


def test_words_rate_is_the_share_of_segments_with_word_timings():
    def share(rate):
        segments = [s for e in synth.generate_entries(60, 3, words_rate=rate) for s in e["segments"]]
        return sum("words" in s for s in segments) / len(segments), len(segments)

    assert share(0.0)[0] == 0.0
    assert share(1.0)[0] == 1.0
    observed, n = share(0.1)
    assert n > 3000 and abs(observed - 0.1) < 0.02


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_words_rate_outside_zero_to_one_rejected(rate):
    with pytest.raises(ValueError, match="words_rate"):
        synth.generate_entry(0, 0, words_rate=rate)


@pytest.mark.e2e
def test_cli_words_rate(tmp_path):
    out = tmp_path / "m.jsonl"
    proc = _run_cli("--entries", "3", "--seed", "4", "--words-rate", "0.1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == _manifest_bytes(3, 4, words_rate=0.1)
    bad = _run_cli("--entries", "1", "--words-rate", "2", "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "words_rate=2.0" in bad.stderr
    assert not (tmp_path / "x.jsonl").exists()
