"""Damaged compressed files, counted lines and long lines through the real CLI.

One run over a directory holding, for every codec, a file whose second stream
is cut 3 bytes in (so the exact surviving lines are known from how it was
built), a 0-byte file, and a few plain files with blank lines and a form-feed
line; a second run for ``input.max_line_mb``.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import lzma
import zlib

import orjson
import pytest
import zstandard
from bad_inputs.corpus import read_output, run_in_process
from conftest import FIXTURES

COMPRESS = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    ".deflate": zlib.compress,
    ".zst": lambda d: zstandard.ZstdCompressor().compress(d),
    ".zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def fixture_lines() -> list:
    return [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]


def unreadable_records(out) -> dict:
    records = [orjson.loads(line) for line in out.errors]
    return {r["manifest_filepath"]: r for r in records if r["reason"] == "unreadable_file"}


@pytest.mark.e2e
def test_damaged_files_of_every_codec_lose_no_complete_line(tmp_path):
    lines = fixture_lines()  # 5 valid entries
    root = tmp_path / "in"
    root.mkdir()
    expected_written = collections.Counter()
    expected_record = {}
    for suffix, compress in COMPRESS.items():
        # stream 1: the 5 entries and the first 40 bytes of a 6th (no newline);
        # stream 2 (cut after 3 bytes): would have held the rest.
        body = b"\n".join(lines) + b"\n" + lines[0][:40]
        path = root / f"cut.jsonl{suffix}"
        path.write_bytes(compress(body) + compress(lines[0][40:] + b"\n")[:3])
        expected_written[str(path)] = 5
        expected_record[str(path)] = (6, len(body) - 40, 40, lines[0][:40].decode())
        (root / f"empty.jsonl{suffix}").write_bytes(b"")
    # gzip: trailing garbage after a complete stream, and a valid two-member file
    garbage = root / "garbage.jsonl.gz"
    garbage.write_bytes(gzip.compress(b"\n".join(lines) + b"\n") + b"\xffjunk")
    expected_written[str(garbage)] = 5
    expected_record[str(garbage)] = (6, sum(len(x) + 1 for x in lines), 0, "")
    members = root / "members.jsonl.gz"
    members.write_bytes(
        gzip.compress(b"\n".join(lines[:2]) + b"\n") + gzip.compress(b"\n".join(lines[2:]) + b"\n")
    )
    expected_written[str(members)] = 5
    # blank lines (JSON whitespace only) are counted; a form-feed line is an error
    plain = root / "plain.jsonl"
    plain.write_bytes(lines[1] + b"\r\n\r\n \t \n" + b"\x0c\n" + lines[2] + b"\n\n")
    expected_written[str(plain)] = 2

    result = run_in_process(["--input", str(root), "--output", str(tmp_path / "out")])
    assert result.code == 0, result.stderr
    out = read_output(tmp_path / "out")
    written = collections.Counter(orjson.loads(w)["manifest_filepath"] for w in out.windows)
    assert written == expected_written
    records = unreadable_records(out)
    assert {
        path: (r["line"], r["byte_offset"], r["raw_bytes"], r["raw"]) for path, r in records.items()
    } == expected_record
    for record in records.values():
        assert f"after line {record['line'] - 1} (the last good line)" in record["detail"]
    others = [orjson.loads(e) for e in out.errors if orjson.loads(e)["reason"] != "unreadable_file"]
    assert [(o["manifest_filepath"], o["line"], o["reason"]) for o in others] == [
        (str(plain), 4, "invalid_json")
    ]
    summary = out.summary
    n_written = sum(expected_written.values())
    n_failed = len(expected_record) + 1
    n_blank = 3
    # lines read: 5 complete lines + 1 unreadable rest per cut file, 5 + 1 for
    # the garbage file, 5 for the members, 6 in plain.jsonl (3 blank, 1 form feed)
    n_lines = len(COMPRESS) * 6 + 6 + 5 + 6
    assert (
        summary["lines_read"],
        summary["blank_lines"],
        summary["entries_written"],
        summary["entries_failed"],
        summary["entries_read"],
    ) == (n_lines, n_blank, n_written, n_failed, n_written + n_failed)
    assert summary["errors_by_reason"] == {"unreadable_file": len(expected_record), "invalid_json": 1}


@pytest.mark.e2e
def test_line_longer_than_max_line_mb_is_an_error_record(tmp_path):
    """max_line_mb=0.01 (10,485 bytes): a 50,000-byte line (plain and .gz) is one
    line_too_long record with its true size; the lines around it are written."""
    lines = fixture_lines()
    assert all(len(x) < 10_000 for x in lines[:2])
    long_line = b'{"pad": "' + b"z" * 49_989 + b'"}'
    assert len(long_line) == 50_000
    body = lines[0] + b"\n" + long_line + b"\n" + lines[1] + b"\n"
    root = tmp_path / "in"
    root.mkdir()
    (root / "long.jsonl").write_bytes(body)
    (root / "long.jsonl.gz").write_bytes(gzip.compress(body))
    result = run_in_process(
        ["--input", str(root), "--output", str(tmp_path / "out"), "--set", "input.max_line_mb=0.01"]
    )
    assert result.code == 0, result.stderr
    out = read_output(tmp_path / "out")
    assert len(out.windows) == 4
    records = sorted((orjson.loads(e) for e in out.errors), key=lambda r: r["manifest_filepath"])
    assert [
        (r["manifest_filepath"], r["line"], r["byte_offset"], r["reason"], r["raw_bytes"], r["raw_truncated"])
        for r in records
    ] == [
        (str(root / name), 2, len(lines[0]) + 1, "line_too_long", 50_000, True)
        for name in ("long.jsonl", "long.jsonl.gz")
    ]
    assert records[0]["raw"] == long_line[:2000].decode()
    assert out.summary["lines_read"] == 6 and out.summary["entries_failed"] == 2
