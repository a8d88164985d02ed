"""The pure reader over damaged compressed streams, long lines and real I/O errors.

Expected values come from how the test builds its input (which stream a cut
lands in, where a line starts), or from Python's own one-shot / byte-by-byte
decoders, never from ``alm_beam.io.codecs``.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import tracemalloc
import zlib

import pytest
import zstandard

from alm_beam.io.codecs import DamagedStream, DecodedStream, codec_for_name
from alm_beam.io.reader import RAW_PREFIX, is_blank, iter_lines

COMPRESS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
    "deflate": zlib.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "lzma": ".lzma", "deflate": ".deflate", "zstd": ".zst"}
CODECS = list(COMPRESS)


def decode(blob: bytes, codec: str, max_line=None):
    """All RawLines the reader yields for ``blob`` named with the codec's suffix."""
    name = codec_for_name("m.jsonl" + SUFFIX[codec])
    return list(iter_lines(DecodedStream(io.BytesIO(blob), name), max_line=max_line))


def numbered(n: int, start: int = 1) -> list:
    return [b'{"n": %d}' % i for i in range(start, start + n)]


def offsets(lines: list) -> list:
    out, pos = [], 0
    for line in lines:
        out.append(pos)
        pos += len(line) + 1
    return out


def test_suffixes_match_beams_compression_detection():
    from apache_beam.io.filesystem import CompressionTypes

    for suffix in (".gz", ".bz2", ".deflate", ".zst", ".zstd", ".xz", ".lzma", ".GZ"):
        assert CompressionTypes.detect_compression_type("a.jsonl" + suffix) != CompressionTypes.UNCOMPRESSED
        assert codec_for_name("a.jsonl" + suffix) is not None
    assert codec_for_name("a.jsonl") is None


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("partial", [b"", b'{"cut": "mid'])
def test_truncated_second_stream_every_line_of_the_first_then_one_record(codec, partial):
    """Stream 1 holds lines 1..7 (+ maybe the start of line 8, no newline); the
    file then ends 3 bytes into stream 2. Lines 1..7 come out, then one
    unreadable_file at line 8, offset where line 8 starts; a partial line 8 is
    part of the unreadable rest (its bytes in raw, its size in problem.size)."""
    first = numbered(7)
    body1 = b"\n".join(first) + b"\n" + partial
    blob = COMPRESS[codec](body1) + COMPRESS[codec](b'{"n": 99}\n')[:3]
    got = decode(blob, codec)
    assert [(r.data, r.line, r.offset, r.problem) for r in got[:-1]] == [
        (d, i + 1, off, None) for i, (d, off) in enumerate(zip(first, offsets(first)))
    ]
    last = got[-1]
    assert (last.line, last.offset, last.data) == (8, len(body1) - len(partial), partial)
    assert last.problem.code == "unreadable_file" and last.problem.size == len(partial)
    assert "after line 7 (the last good line)" in last.problem.detail
    assert f"from decompressed byte {len(body1) - len(partial)} on" in last.problem.detail
    assert ("partial line of" in last.problem.detail) == bool(partial)


@pytest.mark.parametrize("codec", CODECS)
def test_cut_inside_a_stream_keeps_every_decodable_complete_line(codec):
    """A cut in the middle of the only stream: the lines out are exactly the
    complete lines of what Python's one-shot decoder gets from the same bytes."""
    lines = numbered(3000)
    body = b"\n".join(lines) + b"\n"
    blob = COMPRESS[codec](body)
    cut = blob[: len(blob) * 2 // 3]
    if codec == "gzip":
        reference = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)
    elif codec == "deflate":
        reference = zlib.decompressobj().decompress(cut)
    elif codec == "bzip2":
        reference = bz2.BZ2Decompressor().decompress(cut)
    elif codec == "zstd":
        reference = zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    else:
        reference = lzma.LZMADecompressor().decompress(cut)
    complete = reference.count(b"\n")
    got = decode(cut, codec)
    assert [r.data for r in got[:-1]] == lines[:complete]
    assert got[-1].line == complete + 1 and got[-1].problem.code == "unreadable_file"
    assert got[-1].offset == reference.rfind(b"\n") + 1
    assert got[-1].problem.size == len(reference) - got[-1].offset


@pytest.mark.parametrize("codec", ["gzip", "deflate", "xz"])
def test_corruption_mid_stream_is_exact_to_the_byte(codec):
    """A flipped byte in the middle: the decoder call that hits it loses its
    output, so the reader decodes that stretch again byte by byte. Expected:
    Python's decoder fed one byte at a time, collecting output until it raises."""
    lines = numbered(20000)
    blob = bytearray(COMPRESS[codec](b"\n".join(lines) + b"\n"))
    blob[len(blob) // 2] ^= 0x5A
    make = {
        "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
        "deflate": zlib.decompressobj,
        "xz": lzma.LZMADecompressor,
    }[codec]
    ref, out = make(), bytearray()
    try:
        for i in range(len(blob)):
            out += ref.decompress(bytes(blob[i : i + 1]))
        raise AssertionError("the flipped byte was not detected")
    except (zlib.error, lzma.LZMAError):
        pass
    complete = out.count(b"\n")
    got = decode(bytes(blob), codec)
    assert complete > 100
    assert [r.data for r in got[:-1]] == [bytes(x) for x in out.split(b"\n")[:complete]]
    assert (got[-1].line, got[-1].offset) == (complete + 1, out.rfind(b"\n") + 1)
    assert got[-1].problem.size == len(out) - got[-1].offset


@pytest.mark.parametrize("codec", CODECS)
def test_concatenated_streams_and_zero_padding_are_read_whole(codec):
    a, b = numbered(5), numbered(4, start=6)
    # stream 1 ends mid-line: the line continues in stream 2 (as `cat` of two files)
    blob = (
        COMPRESS[codec](b"\n".join(a) + b"\n" + b'{"join"')
        + b"\0" * 8
        + COMPRESS[codec](b": 1}\n" + b"\n".join(b) + b"\n")
        + b"\0" * 3
    )
    if codec == "lzma":  # the legacy .lzma format has no concatenation: trailing data is damage
        got = decode(blob, codec)
        assert [r.data for r in got[:-1]] == a and got[-1].problem.code == "unreadable_file"
        return
    got = decode(blob, codec)
    assert [r.data for r in got] == a + [b'{"join": 1}'] + b
    assert all(r.problem is None for r in got)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("final_newline", [True, False])
def test_trailing_garbage_after_a_valid_stream(codec, final_newline):
    """Every line of the valid stream is read (the old reader lost the one
    before the garbage); the garbage is one unreadable_file record. A last line
    without newline is cut off by the damage: part of the unreadable rest."""
    lines = numbered(6)
    body = b"\n".join(lines) + (b"\n" if final_newline else b"")
    got = decode(COMPRESS[codec](body) + b"\xffnot a stream at all", codec)
    kept = lines if final_newline else lines[:-1]
    assert [r.data for r in got[:-1]] == kept
    last = got[-1]
    assert last.problem.code == "unreadable_file" and last.line == len(kept) + 1
    assert last.offset == (len(body) if final_newline else offsets(lines)[-1])
    assert last.data == (b"" if final_newline else lines[-1])


@pytest.mark.parametrize("codec", CODECS)
def test_zero_byte_file_is_an_empty_manifest(codec):
    assert decode(b"", codec) == []


@pytest.mark.parametrize("codec", CODECS)
def test_not_compressed_at_all(codec):
    got = decode(b'{"n": 1}\n{"n": 2}\n', codec)
    assert len(got) == 1 and (got[0].line, got[0].offset, got[0].data) == (1, 0, b"")
    assert got[0].problem.code == "unreadable_file"
    assert "before any complete line" in got[0].problem.detail


class _FailingFile(io.BytesIO):
    """A real I/O failure (EIO) after ``ok`` bytes."""

    def __init__(self, data, ok):
        super().__init__(data)
        self.ok = ok

    def read(self, n=-1):
        if self.tell() >= self.ok:
            raise OSError(errno.EIO, "Input/output error")
        return super().read(min(n, self.ok - self.tell()) if n >= 0 else self.ok - self.tell())


@pytest.mark.parametrize("codec", CODECS)
def test_io_error_is_raised_not_reported(codec):
    blob = COMPRESS[codec](b"\n".join(numbered(5000)) + b"\n")
    name = codec_for_name("m" + SUFFIX[codec])
    with pytest.raises(OSError) as caught:
        list(iter_lines(DecodedStream(_FailingFile(blob, len(blob) // 2), name)))
    assert caught.value.errno == errno.EIO and not isinstance(caught.value, DamagedStream)
    with pytest.raises(OSError):
        list(iter_lines(_FailingFile(b"\n".join(numbered(5000)), 1000), block_size=64))


def test_blank_means_json_whitespace_only():
    assert is_blank(b"") and is_blank(b" \t\r\n ")
    for content in (b"\x0c", b"\x0b", b" \x0c ", b"\xc2\xa0", b"\xe3\x80\x80", b"x"):
        assert not is_blank(content), content


# --- long lines ------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [7, 64, 1 << 20])
def test_long_lines_become_problems_and_the_next_lines_are_read(block_size):
    long1 = b'{"a": "' + b"x" * 300 + b'"}'
    long2 = b"y" * 100
    lines = [b'{"n": 1}', long1, b'{"n": 2}', long2, b"z" * 64, b'{"n": 3}']
    data = b"\r\n".join(lines) + b"\r\n" + b"w" * 90  # last line too long, no newline
    got = list(iter_lines(io.BytesIO(data), block_size=block_size, max_line=64))
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 2
    expect = [
        (line, i + 1, off, None if len(line) <= 64 else len(line))
        for i, (line, off) in enumerate(zip(lines, starts))
    ]
    expect.append((b"w" * 90, 7, pos, 90))
    assert [(r.data, r.line, r.offset, r.problem and r.problem.size) for r in got] == expect
    assert {r.problem.code for r in got if r.problem} == {"line_too_long"}


def test_long_line_in_split_ranges_is_reported_once():
    lines = [b'{"n": 1}', b"x" * 500, b'{"n": 2}']
    data = b"\n".join(lines) + b"\n"
    for cut in range(1, len(data)):
        got = list(iter_lines(io.BytesIO(data), 0, cut, block_size=16, max_line=100)) + list(
            iter_lines(io.BytesIO(data), cut, -1, block_size=16, max_line=100)
        )
        assert [(r.offset, r.problem and r.problem.size) for r in got] == [
            (0, None),
            (9, 500),
            (510, None),
        ], cut


def test_a_huge_compressed_line_is_streamed_past_in_bounded_memory():
    """A 256 MiB line from a ~0.25 MB .gz, then a normal line: the long line is
    one line_too_long problem whose data is a prefix, and the peak of Python
    allocations stays a small fraction of the line (no timing threshold)."""
    huge = 256 << 20
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"a" * (8 << 20)
    blob = bytearray(packer.compress(b'{"text": "'))
    for _ in range(huge // len(chunk)):
        blob += packer.compress(chunk)
    blob += packer.compress(b'"}\n{"n": 2}\n') + packer.flush()
    assert len(blob) < 4 << 20
    tracemalloc.start()
    try:
        got = list(iter_lines(DecodedStream(io.BytesIO(bytes(blob)), "gzip"), max_line=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(r.line, r.offset, r.problem and r.problem.size) for r in got] == [
        (1, 0, huge + 12),
        (2, huge + 13, None),
    ]
    assert got[0].data == (b'{"text": "' + b"a" * huge)[:RAW_PREFIX]
    assert got[1].data == b'{"n": 2}'
    assert peak < 64 << 20, peak
