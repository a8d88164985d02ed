"""Fuzzing the reader over damaged compressed streams, for every codec.

Random manifests (random byte lines, blank lines, CRLF, with or without a
final newline, some lines too long), compressed as one or two concatenated
streams, then cut at a random point and/or followed by zero padding or
garbage. The expected lines come from Python's one-shot decoders applied to
each stream's surviving bytes and a plain ``split``, never from the reader:

* every complete line of the decodable prefix comes out once, in order, with
  its line number and offset (a too-long one as a line_too_long problem);
* nothing after the damage;
* exactly one unreadable_file record iff the file is damaged, at the line
  after the last good one and the offset where the unreadable rest starts,
  holding the cut-off partial line.

Bounded for CI; deselect with ``-m "not fuzz"``. The end-to-end check through
the pipeline is in ``test_input_e2e.py``.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alm_beam.io.codecs import DecodedStream
from alm_beam.io.reader import BOM, RAW_PREFIX, iter_lines

COMPRESS = {
    "gzip": lambda d: zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS).compress(d),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "deflate": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


COMPRESS["gzip"] = _gzip


def one_shot(codec: str, blob: bytes) -> bytes:
    """What Python's decoder makes of one stream's (possibly cut) bytes."""
    if codec == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
    if codec == "deflate":
        return zlib.decompressobj().decompress(blob)
    if codec == "bzip2":
        return bz2.BZ2Decompressor().decompress(blob)
    if codec == "xz":
        return lzma.LZMADecompressor().decompress(blob)
    return zstandard.ZstdDecompressor().decompressobj().decompress(blob)


def expected_lines(text: bytes, complete_only: bool, max_line):
    """(data, line, offset, too-long size or None) by plain splitting."""
    parts = text.split(b"\n")
    if complete_only or parts[-1] == b"":
        parts = parts[:-1]
    out, pos = [], 0
    for number, part in enumerate(parts, 1):
        line = part[:-1] if part.endswith(b"\r") else part
        if max_line is not None and len(line) > max_line:
            out.append((line[:RAW_PREFIX], number, pos, len(line)))
        else:
            out.append((line, number, pos, None))
        pos += len(part) + 1
    return out, pos


line_bytes = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b" ", b"\t", b"\r", b'{"a": 1}', b"\x0c"]),
    st.integers(200, 3000).map(lambda n: b"x" * n),
)


@st.composite
def damaged_files(draw):
    codec = draw(st.sampled_from(sorted(COMPRESS)))
    lines = draw(st.lists(line_bytes, max_size=30))
    crlf = draw(st.booleans())
    text = (b"\r\n" if crlf else b"\n").join(lines)
    if lines and draw(st.booleans()):
        text += b"\n"
    assume(not text.startswith(BOM))
    split = draw(st.integers(0, len(text)))
    texts = [text[:split], text[split:]] if draw(st.booleans()) else [text]
    streams = [COMPRESS[codec](t) for t in texts]
    tail = draw(st.sampled_from(["none", "zeros", "garbage"]))
    tail_bytes = {
        "none": b"",
        "zeros": b"\0" * draw(st.integers(1, 9)),
        "garbage": b"\xff" + draw(st.binary(max_size=20)),
    }[tail]
    blob = b"".join(streams) + tail_bytes
    cut = draw(st.one_of(st.none(), st.integers(0, len(blob))))
    max_line = draw(st.one_of(st.none(), st.integers(1, 300)))
    return codec, texts, streams, tail_bytes, cut, max_line


@pytest.mark.fuzz
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_files(), st.sampled_from([1, 5, 64, 1 << 20]))
def test_reader_keeps_every_line_before_the_damage(case, block_size):
    codec, texts, streams, tail, cut, max_line = case
    blob = b"".join(streams) + tail
    if cut is not None:
        blob = blob[:cut]
    # The oracle: decode each stream's surviving bytes on its own.
    decoded, damaged, at = b"", False, 0
    for stream in streams:
        piece = blob[at : at + len(stream)]
        at += len(stream)
        if len(piece) == len(stream):
            decoded += one_shot(codec, piece)
            continue
        if piece:  # the cut lands inside this stream
            decoded += one_shot(codec, piece)
            damaged = True
        break
    rest = blob[sum(len(s) for s in streams) :]
    if rest.strip(b"\0"):
        damaged = True  # garbage survives the cut
    if len(blob) == 0:
        damaged = False  # a 0-byte file is empty, not damaged
    expect, end = expected_lines(decoded, damaged, max_line)

    got = list(iter_lines(DecodedStream(io.BytesIO(blob), codec), block_size=block_size, max_line=max_line))
    records = [r for r in got if r.problem and r.problem.code == "unreadable_file"]
    lines = [r for r in got if not (r.problem and r.problem.code == "unreadable_file")]
    assert [(r.data, r.line, r.offset, r.problem and r.problem.size) for r in lines] == expect
    assert len(records) == (1 if damaged else 0)
    if damaged:
        record = got[-1]
        assert record is records[0]
        assert (record.line, record.offset) == (len(expect) + 1, end)
        assert record.problem.size == len(decoded) - end
        assert record.data == decoded[end : end + RAW_PREFIX]
