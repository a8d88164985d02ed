"""Split a manifest byte stream into lines, with where each line came from.

Pure over a binary file object (Beam's FileSystems.open in the pipeline, any
file in tests). Lines end at ``\\n``; a preceding ``\\r`` is dropped; a UTF-8
byte-order mark at the start of a file is ignored. Unicode separators such as
U+2028 are content. Bytes are not decoded here: an invalid byte must become an
error record for its one line, not an exception for the file.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Iterator, NamedTuple, Optional

from alm_beam.core.validate import JSON_WHITESPACE
from alm_beam.io.codecs import DamagedStream

BOM = b"\xef\xbb\xbf"


class LineProblem(NamedTuple):
    """Why a line is reported instead of read; ``RawLine.data`` is then a prefix."""

    code: str  # "line_too_long" or "unreadable_file" (error record reasons)
    detail: str
    size: int  # bytes of the whole line (or partial line) that ``data`` begins


class RawLine(NamedTuple):
    data: bytes
    line: Optional[int]  # 1-based line number; None when reading from mid-file
    offset: int  # byte offset of the line start (decompressed stream)
    problem: Optional[LineProblem] = None


BLOCK_SIZE = 1 << 20  # bytes per read: lines are cut out of big blocks, not read one by one
RAW_PREFIX = 64 << 10  # bytes kept of a too-long or unreadable line, for its error record


def is_blank(data: bytes) -> bool:
    """JSON whitespace only. Form feeds, vertical tabs, NBSP ... are content
    (and so an invalid_json error), never a silently skipped line."""
    return not data.strip(JSON_WHITESPACE)


def _too_long(size: int, max_line: int) -> LineProblem:
    return LineProblem(
        "line_too_long",
        (
            f"line is {size:,} bytes, longer than input.max_line_mb allows ({max_line:,} bytes); "
            "it was streamed past without being held in memory (raw holds its beginning)"
        ),
        size,
    )


def _unreadable(
    partial: bytes, size: int, line: Optional[int], offset: int, damage: DamagedStream
) -> RawLine:
    """The one record for everything from ``offset`` on, after a decoding failure."""
    if line is None:
        where = "after the last complete line of this range"
    elif line == 1:
        where = "before any complete line (no line could be read)"
    else:
        where = f"after line {line - 1} (the last good line)"
    detail = (
        f"compressed file is damaged {where}: the rest of the file, from decompressed "
        f"byte {offset} on, could not be read; {damage.cause}"
    )
    if size:
        detail += (
            f"; that rest begins with a partial line of {size:,} bytes (cut off "
            "by the damage before its newline), shown in raw"
        )
    if not damage.exact:
        detail += (
            "; the file could not be re-read, so the damage may lie up to one read block before this point"
        )
    return RawLine(partial, line, offset, LineProblem("unreadable_file", detail, size))


def iter_lines(
    stream: BinaryIO,
    start: int = 0,
    end: int = -1,
    block_size: int = BLOCK_SIZE,
    max_line: Optional[int] = None,
) -> Iterator[RawLine]:
    """Yield the lines that START in [start, end) (end -1: to end of stream).

    A range that starts mid-file skips the partial line it lands in; that line
    belongs to the previous range, which reads past its own end to finish it.

    A line longer than ``max_line`` bytes is yielded as a ``line_too_long``
    problem holding only its first RAW_PREFIX bytes: it is streamed past, never
    held whole (memory stays near max_line + block_size). When ``stream.read``
    raises ``DamagedStream`` (a ``codecs.DecodedStream``), every complete line
    before has been yielded; one ``unreadable_file`` problem follows, and the
    iteration ends.
    """
    limit = sys.maxsize if max_line is None else max_line
    read = stream.read
    buf = b""  # bytes read and not yet yielded start at buf[at], file offset ``pos``
    at = 0
    pos = 0
    if start > 0:  # skip to just past the first newline at or after start - 1
        stream.seek(start - 1)
        pos = start - 1
        while True:
            block = read(block_size)
            if not block:
                break
            nl = block.find(b"\n")
            if nl >= 0:
                buf, at = block, nl + 1
                pos += nl + 1
                break
            pos += len(block)
    line_no = 1 if start == 0 else None
    while end < 0 or pos < end:
        nl = buf.find(b"\n", at)
        if nl < 0:  # the line goes on past the block: gather blocks up to its end
            pieces = [buf[at:]]
            size = len(pieces[0])  # bytes of the line before the current block
            prefix = None  # set once the line is too long: pieces are dropped
            block = b""
            last = pieces[0][-1:]  # the byte before the current block (a "\r"?)
            try:
                while True:
                    block = read(block_size)
                    if not block:
                        break
                    if prefix is None:
                        pieces.append(block)
                        if b"\n" in block:
                            break
                        size += len(block)
                        if size > limit + 1:  # too long even if it ends in "\r\n"
                            prefix = b"".join(pieces)[:RAW_PREFIX]
                            pieces = None
                    else:
                        if b"\n" in block:
                            break
                        size += len(block)
                        if len(prefix) < RAW_PREFIX:
                            prefix += block[: RAW_PREFIX - len(prefix)]
                    last = block[-1:]
            except DamagedStream as damage:
                partial = prefix if prefix is not None else b"".join(pieces)
                yield _unreadable(partial[:RAW_PREFIX], size, line_no, pos, damage)
                return
            if prefix is not None:  # a too-long line: report it, go on after its newline
                if block:
                    nl = block.find(b"\n")
                    length, used = size + nl, size + nl + 1
                    if len(prefix) < RAW_PREFIX:
                        prefix += block[: min(nl, RAW_PREFIX - len(prefix))]
                    before = block[nl - 1 : nl] if nl > 0 else last
                    buf, at = block, nl + 1
                else:
                    length = used = size
                    before = last
                    buf, at = b"", 0
                if before == b"\r":
                    length -= 1
                    if len(prefix) > length:
                        prefix = prefix[:length]
                if pos == 0 and prefix.startswith(BOM):
                    prefix = prefix[len(BOM) :]
                yield RawLine(prefix, line_no, pos, _too_long(length, limit))
                pos += used
                if line_no is not None:
                    line_no += 1
                continue
            buf = b"".join(pieces)
            at = 0
            nl = buf.find(b"\n", len(pieces[0]))
            if nl < 0:  # last line, without a newline
                if not buf:
                    break
                nl = len(buf)
        stop = nl
        if stop > at and buf[stop - 1] == 13:  # "\r\n" (or a final "\r")
            stop -= 1
        data = buf[at:stop]
        if pos == 0 and data.startswith(BOM):
            data = data[len(BOM) :]
        if stop - at > limit:  # too long, though it fit in the blocks read
            yield RawLine(data[:RAW_PREFIX], line_no, pos, _too_long(stop - at, limit))
        else:
            yield RawLine(data, line_no, pos)
        pos += nl + 1 - at
        at = nl + 1
        if line_no is not None:
            line_no += 1
