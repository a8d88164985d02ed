"""Text from input made safe to show on a terminal.

File names, speakers, transcripts and error text come from input; printed raw,
an ESC, BEL or C1 character in them is a terminal command (a title change, a
screen rewrite, a clipboard write through OSC 52), a CR or newline fakes a
line of ours, and a bidi override reorders what the reader sees. Every
printer of alm_beam passes such text through ``terminal_safe``.
"""

from __future__ import annotations

import re

# C0 controls (newline, CR and tab included: inside one value they are not
# layout), DEL, C1 controls, every surrogate (not encodable; U+DC80..U+DCFF are
# the undecodable bytes of a non-UTF-8 file name), the bidi embeddings,
# overrides, isolates and marks, and the Unicode line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def terminal_safe(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``,
    ``\\u009b``, ``\\n``); any other character, backslash included, unchanged."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # the common case: nothing to escape
        return text
    return _UNSAFE.sub(_escaped, text)
