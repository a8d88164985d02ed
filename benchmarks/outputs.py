"""What the runs wrote: the pipeline's output files, when each windows shard was
last written, and whether two outputs hold the same multiset of lines."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from typing import Iterator, Optional, Sequence

import orjson


def output_files(out_dir: str, prefix: str) -> list:
    return sorted(glob.glob(os.path.join(out_dir, f"{prefix}-*.jsonl")))


def shard_finish_times(out_dir: str, started: float) -> list:
    """Seconds after ``started`` at which each windows shard was last written,
    earliest first.

    With ``num_shards: 0`` each bundle of the curate stage writes one shard and
    its last write is the bundle's end; on the DirectRunner each worker runs
    one such bundle. So the spread of these times is how long one worker sat
    idle waiting for the other, and the run's end minus the last of them is
    the serial tail (the sinks' finalize steps, the summary, exit).
    """
    return sorted(os.stat(path).st_mtime - started for path in output_files(out_dir, "windows"))


def describe_shard_times(times: Sequence[float], wall: float) -> str:
    if not times:
        return "no windows shard written"
    at = ", ".join(f"{t:.2f}" for t in times)
    text = f"windows shard{'s' if len(times) > 1 else ''} last written at {at} s of the run's {wall:.2f} s"
    if len(times) > 1:
        text += f"; the first finished {times[-1] - times[0]:.2f} s before the last"
    return text + f"; {wall - times[-1]:.2f} s from the last write to the process's exit"


def count_lines(paths: Sequence[str]) -> int:
    count = 0
    for path in paths:
        with open(path, "rb") as fh:
            count += sum(1 for line in fh if line.strip())
    return count


# --------------------------------------------------------------------------
# Output comparison: the same multiset of lines.


def nonblank_lines(paths: Sequence[str]) -> Iterator[bytes]:
    """Every non-blank line of the files in turn, without its line ending."""
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if line:
                    yield line


def line_digests(paths: Sequence[str], canonical: bool, ignore: Sequence[str] = ()) -> list:
    """Sorted 16-byte digests of every non-blank line (parsed and re-serialized
    with sorted keys when ``canonical``: compares values and types, not layout;
    top-level keys in ``ignore`` left out)."""
    out = []
    for line in nonblank_lines(paths):
        if canonical:
            value = orjson.loads(line)
            for key in ignore:
                value.pop(key, None)
            line = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        out.append(hashlib.blake2b(line, digest_size=16).digest())
    out.sort()
    return out


# A top-level value that the byte-level cut can take out whole: a string, a
# number, true, false or null (an object or an array is left to parsing).
_SCALAR = rb'("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)'


def cut_digests(paths: Sequence[str], ignore: Sequence[str]) -> Optional[list]:
    """Sorted digests of every non-blank line with the values of the keys
    ``ignore`` cut out of its bytes, or None where a line holds one of those
    keys other than exactly once, or with an object or an array as its value.

    Two outputs written by the same serializer differ in those keys' values
    only if their cut lines are the same multiset: the bytes before a cut are
    equal on both sides, so a key cut is at the same depth on both. Parsing
    gigabytes takes minutes; this takes seconds, and ``compare_outputs``
    parses only where it gives no answer.
    """
    cuts = [
        (('"' + key + '":').encode(), re.compile(re.escape(('"' + key + '":').encode()) + _SCALAR))
        for key in ignore
    ]
    out = []
    for line in nonblank_lines(paths):
        for needle, pattern in cuts:
            if line.count(needle) != 1:
                return None
            line, found = pattern.subn(needle, line)
            if found != 1:
                return None
        out.append(hashlib.blake2b(line, digest_size=16).digest())
    out.sort()
    return out


def top_level_keys(paths: Sequence[str]) -> set:
    """The top-level keys of the first non-blank line of the first file that has one."""
    for line in nonblank_lines(paths):
        value = orjson.loads(line)
        return set(value) if isinstance(value, dict) else set()
    return set()


def without_fields(*paths: str):
    """A transform for ``compare_values``: drops dotted fields (``stats.x``) from an entry."""

    def transform(entry):
        for path in paths:
            *parents, last = path.split(".")
            target = entry
            for key in parents:
                target = target.get(key) if isinstance(target, dict) else None
            if isinstance(target, dict):
                target.pop(last, None)
        return entry

    return transform


def compare_values(expected: Sequence[str], got: Sequence[str], transform) -> str:
    """'same values' when the two multisets of parsed lines agree once ``transform``
    has been applied to every line on both sides (for an output that differs from
    b's by design: NeMo Curator's null manifest_filepath, --compact's dropped lists)."""

    def digests(paths):
        out = []
        for path in paths:
            with open(path, "rb") as fh:
                for line in fh:
                    if line.strip():
                        value = orjson.dumps(transform(orjson.loads(line)), option=orjson.OPT_SORT_KEYS)
                        out.append(hashlib.blake2b(value, digest_size=16).digest())
        return sorted(out)

    want, have = digests(expected), digests(got)
    if want == have:
        return "same values"
    return (
        f"DIFFERENT: {len(want)} vs {len(have)} lines, {len(set(want) - set(have))} "
        f"expected lines missing, {len(set(have) - set(want))} unexpected"
    )


def compare_outputs(
    expected_digests: list,
    expected: Sequence[str],
    got: Sequence[str],
    ignore: Sequence[str] = (),
    cache: Optional[dict] = None,
    got_digests: Optional[list] = None,
) -> str:
    """'identical' (the same bytes, line for line), 'same values' (the same parsed
    values and types, laid out differently, or differing only in the top-level
    keys ``ignore``) or what differs. Line order is not compared: both sides are
    multisets. ``cache``: a dict that keeps the expected side's parsed digests
    for the next comparison with the same ``ignore`` (parsing gigabytes takes
    minutes); ``got_digests``: ``got``'s byte digests, if already made."""
    if got_digests is None:
        got_digests = line_digests(got, False)
    if expected_digests == got_digests:
        return "identical"
    if ignore:
        # The same bytes but for the ignored values: no need to parse. Only
        # where the expected side has those keys at the top (its first line
        # shows it), so that a cut is at the top on both sides.
        cut_key = ("cut", tuple(expected), tuple(ignore))
        if cache is not None and cut_key in cache:
            want_cut = cache[cut_key]
        else:
            want_cut = cut_digests(expected, ignore) if set(ignore) <= top_level_keys(expected) else None
            if cache is not None:
                cache[cut_key] = want_cut
        if want_cut is not None and want_cut == cut_digests(got, ignore):
            return f"same values apart from {', '.join(ignore)}"
    key = (tuple(expected), tuple(ignore))
    want = cache.get(key) if cache is not None else None
    if want is None:
        want = line_digests(expected, True, ignore)
        if cache is not None:
            cache[key] = want
    have = line_digests(got, True, ignore)
    if want == have:
        if ignore:
            return f"same values apart from {', '.join(ignore)}"
        return "same values (key order or number layout differs)"
    missing = len(set(want) - set(have))
    extra = len(set(have) - set(want))
    return (
        f"DIFFERENT: {len(want)} vs {len(have)} lines, {missing} expected lines missing, {extra} unexpected"
    )
