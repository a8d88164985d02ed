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


def iter_lines(stream: BinaryIO, start: int = 0, end: int = -1) -> Iterator[RawLine]:
    """Yield the lines that START in [start, end) (end -1: to end of stream).

    A range that starts mid-file skips the partial line it lands in; that line
    belongs to the previous range, which reads past its own end to finish it.
    """
    pos = 0
    if start > 0:
        stream.seek(start - 1)
        pos = start - 1 + len(stream.readline())
    line_no = 1 if start == 0 else None
    while end < 0 or pos < end:
        data = stream.readline()
        if not data:
            break
        offset = pos
        pos += len(data)
        if data.endswith(b"\n"):
            data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
        elif data.endswith(b"\r"):  # last line without newline
            data = data[:-1]
        if offset == 0 and data.startswith(BOM):
            data = data[len(BOM):]
        yield RawLine(data, line_no, offset)
        if line_no is not None:
            line_no += 1
