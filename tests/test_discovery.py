"""Input discovery (files, directories, globs, compression) and line splitting."""

import bz2
import gzip
import io
import os

import pytest
from conftest import FIXTURES

from alm_beam.io.discovery import DiscoveryError, ManifestFile, discover, plan_ranges
from alm_beam.io.reader import iter_lines


def _names(files):
    return [os.path.relpath(f.path, FIXTURES) for f in files]


def test_nested_directory_is_searched_recursively_and_notes_ignored():
    files = discover([str(FIXTURES / "nested_manifests")])
    assert _names(files) == [
        "nested_manifests/subdir_a/manifest_a.jsonl",
        "nested_manifests/subdir_a/manifest_a2.jsonl",
        "nested_manifests/subdir_b/manifest_b.jsonl",
        "nested_manifests/subdir_b/manifest_b2.jsonl",
    ]
    assert not any(f.path.endswith("notes.txt") for f in files)


def test_extensions_case_insensitive_and_compressed(tmp_path):
    (tmp_path / "a.JSONL").write_text("{}\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "b.json.gz").write_bytes(gzip.compress(b"{}\n"))
    (tmp_path / "deep" / "c.jsonl.bz2").write_bytes(bz2.compress(b"{}\n"))
    (tmp_path / "deep" / "d.csv").write_text("x")
    (tmp_path / "e.jsonl.tmp").write_text("x")
    files = discover([str(tmp_path)])
    assert sorted(os.path.basename(f.path) for f in files) == ["a.JSONL", "b.json.gz", "c.jsonl.bz2"]
    assert {os.path.basename(f.path): f.compressed for f in files} == {
        "a.JSONL": False,
        "b.json.gz": True,
        "c.jsonl.bz2": True,
    }


def test_glob_files_and_glob_matched_directories(tmp_path):
    for d in ("2024-01", "2024-02", "2023-12"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.jsonl").write_text("{}\n")
    files = discover([str(tmp_path / "2024-*")])
    assert sorted(os.path.relpath(f.path, tmp_path) for f in files) == ["2024-01/m.jsonl", "2024-02/m.jsonl"]
    assert len(discover([str(tmp_path / "*" / "*.jsonl")])) == 3


def test_several_inputs_are_deduplicated(tmp_path):
    (tmp_path / "m.jsonl").write_text("{}\n")
    files = discover([str(tmp_path), str(tmp_path / "m.jsonl"), str(tmp_path / "*.jsonl")])
    assert len(files) == 1


def test_explicit_file_is_read_whatever_its_name(tmp_path):
    (tmp_path / "manifest.txt").write_text("{}\n")
    assert len(discover([str(tmp_path / "manifest.txt")])) == 1


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: str(p / "missing.jsonl"), "no such file or directory"),
        (lambda p: str(p), "holds no .jsonl/.json manifest"),
        (lambda p: str(p / "*.jsonl"), "matched no .jsonl/.json manifest"),
    ],
)
def test_nothing_matched_is_a_clear_error(tmp_path, make, needle):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DiscoveryError, match=needle):
        discover([make(tmp_path)])


def test_big_uncompressed_files_are_split_into_ranges():
    files = [ManifestFile("a", 250, False), ManifestFile("b.gz", 1000, True), ManifestFile("c", 50, False)]
    ranges = plan_ranges(files, split_bytes=100)
    assert [(r.path, r.start, r.end) for r in ranges] == [
        ("a", 0, 100),
        ("a", 100, 200),
        ("a", 200, -1),
        ("b.gz", 0, -1),
        ("c", 0, -1),
    ]


def _lines(data, start=0, end=-1):
    return [tuple(x)[:3] for x in iter_lines(io.BytesIO(data), start, end)]


def test_lines_crlf_bom_blank_and_line_numbers():
    data = b'\xef\xbb\xbf{"a":1}\r\n\n  \n{"b":2}\n{"c":3}'
    assert _lines(data) == [
        (b'{"a":1}', 1, 0),
        (b"", 2, 12),
        (b"  ", 3, 13),
        (b'{"b":2}', 4, 16),
        (b'{"c":3}', 5, 24),
    ]


def test_unicode_separators_are_not_line_breaks():
    data = '{"t":"a\u2028b\u0085c"}\n'.encode()
    assert len(_lines(data)) == 1


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 11, 16, 40])
def test_ranges_partition_the_lines_exactly(split):
    data = b"".join(b'{"n":%d}\n' % i for i in range(20)) + b'{"last":1}'
    whole = [d for d, _, _ in _lines(data)]
    pieces = []
    for start in range(0, len(data), split):
        end = start + split if start + split < len(data) else -1
        pieces += [(d, off) for d, _, off in _lines(data, start, end)]
    assert [d for d, _ in pieces] == whole
    assert [off for _, off in pieces] == [off for _, _, off in _lines(data)]
