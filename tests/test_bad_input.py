"""Bad input end to end: a corpus of broken lines and odd files through the real entry point.

The corpus (``tests/bad_inputs/corpus.py``) mixes the public fixture entries
with ~90 broken lines: lines cut mid-object, trailing garbage, non-object
JSON, NaN/Infinity, invalid UTF-8, every required field missing / null / of
the wrong type, wrong optional fields (metrics, bandwidth, speaker, words),
plus a UTF-8 BOM, CRLF endings, gzip and bz2 manifests, an empty and a
blank-only file, Unicode line separators inside strings, and non-manifest
files in the input directory. A correct run:

* exits 0;
* processes every valid line exactly as a run over the valid lines alone
  does (identical output lines as a multiset, apart from manifest_filepath,
  which names each line's own manifest);
* reports every bad line exactly once, with its manifest, line number, byte
  offset, reason code, a detail naming the field, and the raw text;
* writes a summary.json whose counts match what is on disk and in the input.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import re
import zlib

import orjson
import pytest
from bad_inputs.corpus import BOM, build_corpus, clean_manifest, read_output, run_in_process, run_subprocess
from conftest import FIXTURES

from alm_beam.io.reader import iter_lines

RECORD_KEYS = {
    "manifest_filepath",
    "line",
    "byte_offset",
    "reason",
    "detail",
    "raw",
    "raw_truncated",
    "raw_bytes",
}
MAX_RAW_CHARS = 2000  # output.max_raw_chars default
AGGREGATES = (
    "entries_with_windows",
    "entries_with_filtered_windows",
    "entries_below_min_sample_rate",
    "windows",
    "filtered_windows",
    "filtered_timestamps",
    "filtered_dur",
    "total_dur_window",
    "truncation_events",
    "lost_win_full_data_records",
    "stats",
    "filtered_hours",
)


def fixture_lines() -> list:
    return [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The corpus run (a real subprocess) and the baseline run over the valid lines alone."""
    root = tmp_path_factory.mktemp("bad")
    corpus = build_corpus(root / "input", fixture_lines())
    corpus_run = run_subprocess(["--input", str(corpus.root), "--output", str(root / "out")])
    clean = root / "clean.jsonl"
    clean_manifest(clean, corpus)
    clean_run = run_in_process(["--input", str(clean), "--output", str(root / "clean_out")])
    assert clean_run.code == 0, clean_run.stderr
    return {
        "corpus": corpus,
        "run": corpus_run,
        "out": read_output(root / "out"),
        "clean": str(clean),
        "clean_out": read_output(root / "clean_out"),
        "root": root,
    }


def normalized(line: bytes, source: str) -> bytes:
    """The output line with its manifest_filepath (the one legitimate difference) blanked."""
    key = b'"manifest_filepath":' + orjson.dumps(source)
    assert line.count(key) == 1, line[:200]
    return line.replace(key, b'"manifest_filepath":"<manifest>"')


@pytest.mark.e2e
def test_run_succeeds(runs):
    run = runs["run"]
    assert run.code == 0, run.stderr
    assert "alm_beam run summary" in run.stdout
    assert "Traceback" not in run.stderr
    assert sorted(runs["out"].names) == [
        "errors-00000-of-00001.jsonl",
        "report.html",
        "summary.json",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
    ]


@pytest.mark.e2e
def test_valid_entries_processed_exactly_as_usual(runs):
    corpus, out, clean_out = runs["corpus"], runs["out"], runs["clean_out"]
    assert len(corpus.valid) >= 10
    sources = collections.Counter()
    got = collections.Counter()
    for line in out.windows:
        source = orjson.loads(line)["manifest_filepath"]
        sources[source] += 1
        got[normalized(line, source)] += 1
    # each valid line came from its own manifest, as many times as it is there
    assert sources == collections.Counter(path for path, _ in corpus.valid)
    assert not set(sources) & set(corpus.ignored)
    expected = collections.Counter(normalized(line, runs["clean"]) for line in clean_out.windows)
    assert len(clean_out.windows) == len(corpus.valid)
    assert got == expected


@pytest.mark.e2e
def test_unicode_separators_are_content(runs):
    """U+2028, U+2029 and U+0085 inside strings neither split a line nor get altered."""
    texts = [orjson.loads(line) for line in runs["out"].windows]
    paths = {entry["audio_filepath"] for entry in texts}
    assert "/da\u2029ta\u0085/audio/interview_002.wav" in paths
    segments = [seg for entry in texts for window in entry["windows"] for seg in window["segments"]]
    assert any(seg.get("text", "").startswith("\u2028 \u0085 ") for seg in segments)


@pytest.mark.e2e
def test_every_bad_line_reported_once_with_location_reason_and_raw(runs):
    corpus, out = runs["corpus"], runs["out"]
    expected = {(e.path, e.line): e for e in corpus.errors}
    assert len(expected) == len(corpus.errors) >= 80
    seen = collections.Counter()
    for line in out.errors:
        record = orjson.loads(line)
        assert set(record) == RECORD_KEYS, record
        key = (record["manifest_filepath"], record["line"])
        assert key in expected, f"unexpected error record {key}: {record['detail']}"
        seen[key] += 1
        want = expected[key]
        name = want.bad.name
        assert record["byte_offset"] == want.offset, name
        assert record["reason"] == want.bad.reason, (name, record["detail"])
        assert re.match(want.bad.detail, record["detail"]), (name, record["detail"])
        assert "\n" not in record["detail"]
        text = want.bad.raw.decode("utf-8", errors="backslashreplace")
        assert record["raw"] == text[:MAX_RAW_CHARS], name
        assert record["raw_truncated"] is (len(text) > MAX_RAW_CHARS), name
        assert record["raw_bytes"] == len(want.bad.raw), name
    assert sum(seen.values()) == len(out.errors)
    missing = [expected[k].bad.name for k in expected if seen[k] == 0]
    assert not missing, f"bad lines without an error record: {missing}"
    assert max(seen.values()) == 1


@pytest.mark.e2e
def test_summary_balances_and_counts_match(runs):
    corpus, out, clean_out = runs["corpus"], runs["out"], runs["clean_out"]
    summary = out.summary
    # counted independently: non-blank lines written into the discoverable manifests
    assert summary["entries_read"] == corpus.non_blank_lines
    assert summary["entries_written"] == len(corpus.valid) == len(out.windows)
    assert summary["entries_failed"] == len(corpus.errors) == len(out.errors)
    # counted by the reader, and by the corpus as it was written
    assert summary["blank_lines"] == corpus.blank_lines
    assert summary["lines_read"] == corpus.non_blank_lines + corpus.blank_lines
    assert summary["errors_by_reason"] == dict(collections.Counter(e.bad.reason for e in corpus.errors))
    assert sum(summary["errors_by_reason"].values()) == summary["entries_failed"]
    assert sorted(summary["inputs"]) == sorted(corpus.manifests)
    assert summary["outputs"] == {
        "windows": ["windows-00000-of-00001.jsonl"],
        "errors": ["errors-00000-of-00001.jsonl"],
        "train": ["train-00000-of-00001.jsonl"],
    }
    # the valid lines' aggregates are exactly the baseline's
    for key in AGGREGATES:
        assert summary[key] == clean_out.summary[key], key


@pytest.mark.e2e
def test_printed_report_lists_reasons_and_warns(runs):
    stdout = runs["run"].stdout
    for reason, count in runs["out"].summary["errors_by_reason"].items():
        assert re.search(rf"^\s+{count}\s+{re.escape(reason)}$", stdout, re.M), reason
    n = len(runs["corpus"].errors)
    assert f"WARNING: {n} input lines were rejected" in stdout


@pytest.mark.e2e
def test_split_reading_finds_the_same_lines(runs, tmp_path):
    """Uncompressed manifests cut into 2 KB ranges (boundaries inside lines,
    inside CRLF pairs, after the BOM): still each line exactly once."""
    corpus = runs["corpus"]
    result = run_in_process(
        ["--input", str(corpus.root), "--output", str(tmp_path / "out"), "--set", "input.split_mb=0.002"]
    )
    assert result.code == 0, result.stderr
    out = read_output(tmp_path / "out")
    assert collections.Counter(out.windows) == collections.Counter(runs["out"].windows)
    expected = {(e.path, e.offset): e for e in corpus.errors}
    got = collections.Counter()
    for line in out.errors:
        record = orjson.loads(line)
        key = (record["manifest_filepath"], record["byte_offset"])
        got[key] += 1
        want = expected[key]
        assert record["reason"] == want.bad.reason
        # a range that starts mid-file does not know its line numbers
        assert record["line"] in (want.line, None)
    assert got == collections.Counter(expected.keys())
    assert out.summary["entries_read"] == corpus.non_blank_lines
    assert out.summary["run"]["read_ranges"] > len(corpus.manifests)


@pytest.mark.e2e
def test_corrupt_compressed_manifest_is_reported_not_dropped(tmp_path):
    lines = fixture_lines()
    body = b"\n".join(lines * 4) + b"\n"  # 20 lines
    root = tmp_path / "in"
    root.mkdir()
    (root / "ok.jsonl").write_bytes(body)
    packed = gzip.compress(body)
    (root / "truncated.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    packed = bz2.compress(body)
    (root / "truncated.jsonl.bz2").write_bytes(packed[: len(packed) // 2])
    (root / "not_really.jsonl.gz").write_bytes(body)  # plain text with a .gz name
    result = run_in_process(["--input", str(root), "--output", str(tmp_path / "out")])
    assert result.code == 0, result.stderr
    out = read_output(tmp_path / "out")
    unreadable = collections.Counter(
        orjson.loads(line)["manifest_filepath"]
        for line in out.errors
        if orjson.loads(line)["reason"] == "unreadable_file"
    )
    assert unreadable == {
        str(root / name): 1 for name in ("truncated.jsonl.gz", "truncated.jsonl.bz2", "not_really.jsonl.gz")
    }
    # every complete line before the damage was processed: exactly the complete
    # lines Python's one-shot decoder gets from the same truncated bytes
    survived = {
        "truncated.jsonl.gz": zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
            (root / "truncated.jsonl.gz").read_bytes()
        ),
        "truncated.jsonl.bz2": bz2.BZ2Decompressor().decompress((root / "truncated.jsonl.bz2").read_bytes()),
        "not_really.jsonl.gz": b"",
    }
    written = collections.Counter(orjson.loads(line)["manifest_filepath"] for line in out.windows)
    assert written == {
        str(root / "ok.jsonl"): 20,
        **{str(root / name): text.count(b"\n") for name, text in survived.items() if text.count(b"\n")},
    }
    records = {orjson.loads(line)["manifest_filepath"]: orjson.loads(line) for line in out.errors}
    for name, text in survived.items():
        record = records[str(root / name)]
        assert (record["line"], record["byte_offset"], record["raw_bytes"]) == (
            text.count(b"\n") + 1,
            text.rfind(b"\n") + 1,
            len(text) - text.rfind(b"\n") - 1,
        )
    assert out.summary["entries_failed"] == len(out.errors)


def test_reader_bom_crlf_and_separators():
    """The line splitter itself: BOM dropped at file start only, CRLF and a lone
    final CR dropped, U+2028 / U+2029 / U+0085 / VT / FF kept as content."""
    content = '{"a": "x\u2028y\u2029z\u0085\x0b\x0c"}'.encode()
    data = BOM + b'{"n": 1}\r\n' + content + b"\r\n\r\n" + BOM + b"{}\n" + b"last\r"
    lines = list(iter_lines(io.BytesIO(data)))
    assert [line.data for line in lines] == [b'{"n": 1}', content, b"", BOM + b"{}", b"last"]
    assert [line.line for line in lines] == [1, 2, 3, 4, 5]
    offsets = [0, 13, 13 + len(content) + 2, 13 + len(content) + 4, 13 + len(content) + 4 + len(BOM) + 3]
    assert [line.offset for line in lines] == offsets
    assert data[offsets[3] :].startswith(BOM) and data[offsets[4] :].startswith(b"last")
    # split into two byte ranges at every position (inside CRLF, the BOM, a
    # multi-byte character): each line still comes out once, from the range it starts in
    whole = [(line.data, line.offset) for line in lines]
    for cut in range(1, len(data)):
        first = list(iter_lines(io.BytesIO(data), 0, cut))
        second = list(iter_lines(io.BytesIO(data), cut, -1))
        assert [(line.data, line.offset) for line in first + second] == whole, cut
        assert all(line.offset < cut for line in first) and all(line.line is None for line in second)
