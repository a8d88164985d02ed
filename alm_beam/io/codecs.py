"""Streaming decompression that knows exactly where a damaged file stops.

Pure Python over a binary file object (no Beam). ``DecodedStream`` turns a
compressed byte stream into its decompressed bytes, ``read(n)`` at a time,
and delivers EVERY byte that decodes before the damage; only then does
``read`` raise ``DamagedStream`` with the decompressed byte offset where the
unreadable part starts. The line splitter (``reader.iter_lines``) therefore
yields every complete line before the damage, then one error for the rest.

Why not ``gzip.GzipFile`` / ``bz2.BZ2File`` / Beam's ``CompressedFile``: they
decode in blocks and raise (or, for zstd and deflate in Beam, silently stop)
on the read that reaches the damage, dropping what that read had decoded.

Rules, the same for every codec:

* Concatenated streams (multi-member gzip, pbzip2 output, concatenated xz or
  zstd frames, ...) are all read, in order.
* Zero bytes after a complete stream are padding (gzip and xz tools write and
  accept them); any other trailing bytes that do not start another stream of
  the same codec (by its magic bytes) are damage.
* A file that ends inside a stream is truncated: damage.
* A 0-byte file is an empty file (no data to lose): no bytes, no error.
* Decompressed output per decoder call is bounded, so a small file that
  expands to gigabytes is streamed, never held whole.

Real I/O errors from the file object (``OSError`` with an errno) propagate
unchanged, so a runner retries the read; only decoding failures become
``DamagedStream``.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import BinaryIO, Iterator, Optional

GZIP, BZIP2, DEFLATE, XZ, ZSTD = "gzip", "bzip2", "deflate", "xz", "zstd"
# The suffixes Beam's CompressionTypes.detect_compression_type knows (discovery
# uses those to decide a file is compressed); .lzma is Beam's LZMA type too,
# read with format auto-detection (.xz container or legacy .lzma).
SUFFIXES = {
    ".gz": GZIP,
    ".bz2": BZIP2,
    ".deflate": DEFLATE,
    ".xz": XZ,
    ".lzma": XZ,
    ".zst": ZSTD,
    ".zstd": ZSTD,
}

RAW_CHUNK = 64 << 10  # compressed bytes read from the file at a time
OUT_CHUNK = 1 << 20  # most decompressed bytes one decoder call may return
ZSTD_FEED = 512  # zstandard's decompressobj has no output bound: feed it
# little at a time (worst case ~32 KB out per byte in)


class DamagedStream(Exception):
    """The compressed stream cannot be decoded past ``decoded_offset``."""

    def __init__(self, decoded_offset: int, raw_offset: int, cause: str, exact: bool = True):
        super().__init__(cause)
        self.decoded_offset = decoded_offset  # decompressed bytes delivered before the damage
        self.raw_offset = raw_offset  # compressed byte offset near the damage
        self.cause = cause
        self.exact = exact  # False: a few decoded bytes before may be lost


def codec_for_name(path: str) -> Optional[str]:
    """The codec a file name's suffix implies (case-insensitive), or None."""
    lower = path.lower()
    for suffix, codec in SUFFIXES.items():
        if lower.endswith(suffix):
            return codec
    return None


def _decode_errors() -> tuple:
    # Caught around decoder calls only (never around the file's own reads), so
    # OSError here is bz2's "Invalid data stream", not an I/O failure.
    errors = [zlib.error, lzma.LZMAError, EOFError, OSError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - apache-beam depends on zstandard
        pass
    return tuple(errors)


class _Decoder:
    """One compressed stream; ``pieces(data)`` yields its output in bounded pieces."""

    eof = False
    unused_data = b""

    def pieces(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError


class _ZlibDecoder(_Decoder):
    def __init__(self, wbits: int):
        self._d = zlib.decompressobj(wbits)

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused_data(self):
        return self._d.unused_data

    def pieces(self, data):
        d = self._d
        while data and not d.eof:
            out = d.decompress(data, OUT_CHUNK)
            data = d.unconsumed_tail
            if out:
                yield out


class _BufferedDecoder(_Decoder):
    """bz2 and lzma: the decoder keeps unconsumed input itself (``needs_input``)."""

    def __init__(self, make):
        self._d = make()

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused_data(self):
        return self._d.unused_data

    def pieces(self, data):
        d = self._d
        out = d.decompress(data, OUT_CHUNK)
        if out:
            yield out
        while not d.eof and not d.needs_input:
            out = d.decompress(b"", OUT_CHUNK)
            if out:
                yield out


class _ZstdDecoder(_Decoder):
    def __init__(self):
        import zstandard  # a dependency of apache-beam (its ZSTD support)

        # Beam's own window limit for ZSTD (2 GiB), so what Beam reads we read.
        self._d = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
        self.eof = False
        self.unused_data = b""

    def pieces(self, data):
        d = self._d
        for at in range(0, len(data), ZSTD_FEED):
            out = d.decompress(data[at : at + ZSTD_FEED])
            if out:
                yield out
            if d.eof:
                self.eof = True
                self.unused_data = d.unused_data + data[at + ZSTD_FEED :]
                return


def _new_decoder(codec: str) -> _Decoder:
    if codec == GZIP:
        return _ZlibDecoder(16 + zlib.MAX_WBITS)
    if codec == DEFLATE:
        return _ZlibDecoder(zlib.MAX_WBITS)  # zlib container, as Beam writes .deflate
    if codec == BZIP2:
        return _BufferedDecoder(bz2.BZ2Decompressor)
    if codec == XZ:
        return _BufferedDecoder(lzma.LZMADecompressor)  # FORMAT_AUTO: .xz and .lzma
    if codec == ZSTD:
        return _ZstdDecoder()
    raise ValueError(f"unknown codec {codec!r}")


MAGIC_BYTES = 6  # enough of a stream's start to recognise it


def _starts_a_stream(codec: str, head: bytes) -> bool:
    """Does ``head`` begin another stream of ``codec`` (after a complete one)?

    Checked before decoding on, so trailing bytes that are not a stream are
    reported as damage instead of being decoded into made-up lines (a raw
    LZMA or zlib header is weak enough that random bytes often pass it).
    """
    if codec == GZIP:
        return head[:2] == b"\x1f\x8b"
    if codec == BZIP2:
        return head[:3] == b"BZh"
    if codec == XZ:  # concatenated .xz streams; a legacy .lzma stream has no successor
        return head[:6] == b"\xfd7zXZ\x00"
    if codec == ZSTD:  # a frame, or a skippable frame (magic 0x184D2A5?)
        return head[:4] == b"\x28\xb5\x2f\xfd" or (
            len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50
        )
    if codec == DEFLATE:  # zlib header: method 8, header check
        return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return False


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class DecodedStream:
    """A read-only binary file of the decompressed bytes of ``raw``.

    ``read(n)`` returns up to n bytes (b"" at the clean end). On damage it
    first returns every byte decoded before it, then raises DamagedStream.
    """

    def __init__(self, raw: BinaryIO, codec: str):
        if codec not in SUFFIXES.values():
            raise ValueError(f"unknown codec {codec!r}")
        self._raw = raw
        self._codec = codec
        self._errors = _decode_errors()
        self._gen = self._decode()
        self._buf = b""
        self._at = 0
        self._damage: Optional[DamagedStream] = None
        self.decoded = 0  # decompressed bytes handed out by read()

    # -- file-object protocol ---------------------------------------------------
    def readable(self):
        return True

    def read(self, n: int = -1) -> bytes:
        if self._at >= len(self._buf):
            self._buf, self._at = self._next_piece(), 0
            if not self._buf:
                return b""
        if n is None or n < 0:
            n = len(self._buf)
        out = self._buf[self._at : self._at + n]
        self._at += len(out)
        self.decoded += len(out)
        return out

    def close(self):
        self._gen.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- decoding -----------------------------------------------------------------
    def _next_piece(self) -> bytes:
        if self._damage is not None:
            raise self._damage
        try:
            return next(self._gen, b"")
        except DamagedStream as damage:
            self._damage = damage
            raise

    def _decode(self) -> Iterator[bytes]:
        """Every decoded piece, in order; raises DamagedStream after the last good one."""
        raw, codec, errors = self._raw, self._codec, self._errors
        dec: Optional[_Decoder] = None
        raw_pos = 0  # compressed bytes consumed so far (before ``pending``)
        out_pos = 0  # decompressed bytes yielded so far
        stream_start = 0  # compressed offset where the current stream began
        stream_out = 0  # decompressed offset where it began (earlier streams' bytes)
        pending = b""
        while True:
            if not pending:
                pending = raw.read(RAW_CHUNK)
                if not pending:
                    if dec is not None and not dec.eof:
                        raise DamagedStream(
                            out_pos,
                            raw_pos,
                            (
                                f"the file ends inside a {codec} stream (truncated after "
                                f"{raw_pos} compressed bytes)"
                            ),
                        )
                    return
            if dec is None or dec.eof:
                if dec is not None:  # after a complete stream: skip zero padding
                    kept = pending.lstrip(b"\0")
                    raw_pos += len(pending) - len(kept)
                    pending = kept
                    if not pending:
                        continue
                    while len(pending) < MAGIC_BYTES:
                        more = raw.read(RAW_CHUNK)
                        if not more:
                            break
                        pending += more
                    if not _starts_a_stream(codec, pending):
                        raise DamagedStream(
                            out_pos,
                            raw_pos,
                            (
                                f"bytes after the end of a complete {codec} stream (compressed "
                                f"offset {raw_pos}) are not another {codec} stream"
                            ),
                        )
                dec = _new_decoder(codec)
                stream_start, stream_out = raw_pos, out_pos
            try:
                for piece in dec.pieces(pending):
                    out_pos += len(piece)
                    yield piece
            except errors as exc:
                cause = _describe(exc)
                yield from self._replay(
                    dec_start=stream_start,
                    dec_out=stream_out,
                    chunk_start=raw_pos,
                    chunk=pending,
                    delivered=out_pos,
                    cause=cause,
                )
                return  # _replay always raises
            if dec.eof:
                unused = dec.unused_data
                raw_pos += len(pending) - len(unused)
                pending = unused
            else:
                raw_pos += len(pending)
                pending = b""

    def _replay(
        self, dec_start: int, dec_out: int, chunk_start: int, chunk: bytes, delivered: int, cause: str
    ) -> Iterator[bytes]:
        """A decoder call failed on ``chunk`` and lost what it had decoded of it.

        Decode the stream again from its start, the failing chunk one byte at
        a time, and yield the bytes past ``delivered`` that decode before the
        error: the damage point is then exact to the byte. The stream began at
        compressed offset ``dec_start`` and decompressed offset ``dec_out`` (the
        bytes of the streams before it). Needs a seekable
        file; without one the damage is reported where the failing call began.
        """
        errors = self._errors
        try:
            self._raw.seek(dec_start)
        except (OSError, AttributeError, ValueError):
            raise DamagedStream(delivered, chunk_start, cause, exact=False) from None
        dec = _new_decoder(self._codec)
        produced = dec_out
        left = chunk_start - dec_start
        while left > 0:  # re-decode up to the failing chunk (it decoded before)
            block = self._raw.read(min(RAW_CHUNK, left))
            if not block:
                break
            left -= len(block)
            for piece in dec.pieces(block):
                produced += len(piece)
        raw_pos = chunk_start
        try:
            for i in range(len(chunk)):
                for piece in dec.pieces(chunk[i : i + 1]):
                    start = produced
                    produced += len(piece)
                    if produced > delivered:
                        new = piece[max(0, delivered - start) :]
                        delivered += len(new)
                        yield new
                raw_pos += 1
                if dec.eof:
                    break
        except errors:
            pass
        raise DamagedStream(delivered, raw_pos, cause)
