"""Split a manifest byte stream into lines, with where each line came from.

Pure over a binary file object (Beam's FileSystems.open in the pipeline, any
file in tests). Lines end at ``\\n``; a preceding ``\\r`` is dropped; a UTF-8
byte-order mark at the start of a file is ignored. Unicode separators such as
U+2028 are content. Bytes are not decoded here: an invalid byte must become an
error record for its one line, not an exception for the file.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, NamedTuple, Optional

BOM = b"\xef\xbb\xbf"


class RawLine(NamedTuple):
    data: bytes
    line: Optional[int]   # 1-based line number; None when reading from mid-file
    offset: int           # byte offset of the line start (decompressed stream)


BLOCK_SIZE = 1 << 20  # bytes per read: lines are cut out of big blocks, not read one by one


def iter_lines(stream: BinaryIO, start: int = 0, end: int = -1,
               block_size: int = BLOCK_SIZE) -> Iterator[RawLine]:
    """Yield the lines that START in [start, end) (end -1: to end of stream).

    A range that starts mid-file skips the partial line it lands in; that line
    belongs to the previous range, which reads past its own end to finish it.
    """
    pos = 0
    if start > 0:
        stream.seek(start - 1)
        pos = start - 1 + len(stream.readline())
    line_no = 1 if start == 0 else None
    read = stream.read
    buf = b""  # bytes read and not yet yielded start at buf[at], file offset ``pos``
    at = 0
    while end < 0 or pos < end:
        nl = buf.find(b"\n", at)
        if nl < 0:  # the line goes on past the block: gather blocks up to its end
            pieces = [buf[at:]]
            while True:
                block = read(block_size)
                if not block:
                    break
                pieces.append(block)
                if b"\n" in block:
                    break
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
            data = data[len(BOM):]
        yield RawLine(data, line_no, pos)
        pos += nl + 1 - at
        at = nl + 1
        if line_no is not None:
            line_no += 1
