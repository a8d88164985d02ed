"""Look inside a run's output: ``python -m alm_beam.inspect DIR [--n N]``.

A run's output lines are too big to read by eye (one line per conversation,
often hundreds of kilobytes). This prints what a person wants to see first:
the run's summary with its loss breakdown, a few kept windows (where they lie
in the audio, who speaks, the first words) and one example of each reason a
line was rejected.

Everything is read through Beam's FileSystems (so ``s3://`` and ``gs://``
output directories work too), one line at a time, and only as far as needed:
the first N training lines, and the error records until every reason has its
example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterator, Optional, Sequence

from alm_beam.core.display import terminal_safe

FIRST_WORDS = 12  # words of a window's text shown
RAW_CHARS = 100  # characters of a rejected line shown
DEFAULT_WINDOWS = 5


class InspectError(ValueError):
    """The directory cannot be inspected; the message says why and what to do."""


def _filesystems():
    from apache_beam.io.filesystems import FileSystems  # imported only when reading

    return FileSystems


# The JSONL shards' suffixes, one per output.compression (none, gzip, zstd).
SHARD_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")


def _shards(directory: str, prefix: str) -> list:
    """The ``prefix`` shards of a run, compressed or not."""
    fs = _filesystems()
    pattern = fs.join(directory, f"{prefix}-*-of-*.jsonl*")
    try:
        found = fs.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError for "no match" on some filesystems
        return []
    return sorted(m.path for m in found if m.path.endswith(SHARD_SUFFIXES))


def _pattern(prefix: str, shards: Sequence[str]) -> str:
    """``train-*.jsonl`` (or ``.jsonl.gz``, ``.jsonl.zst``): the shards as named to a reader."""
    suffix = next((s for s in SHARD_SUFFIXES[::-1] if shards and shards[0].endswith(s)), ".jsonl")
    return f"{prefix}-*{suffix}"


def _lines(paths: Sequence[str]) -> Iterator[bytes]:
    """The non-blank lines of ``paths`` in order, one at a time (decompressed by suffix)."""
    from apache_beam.io.filesystem import CompressionTypes

    fs = _filesystems()
    for path in paths:
        with fs.open(path, compression_type=CompressionTypes.detect_compression_type(path)) as fh:
            for line in iter(fh.readline, b""):  # a CompressedFile has no __iter__
                line = line.rstrip(b"\r\n")
                if line:
                    yield line


def read_summary(directory: str) -> dict:
    """summary.json of a finished run, or InspectError saying what the directory is."""
    from alm_beam.io.output_dir import LOCK_NAME, RECORD_NAME, STAGING_PREFIX, _entries

    fs = _filesystems()
    path = fs.join(directory, "summary.json")
    if not fs.exists(path):
        entries = _entries(directory)
        # An alm_beam run recorded itself there (run record, lock, staging area).
        if any(name in (RECORD_NAME, LOCK_NAME) or name.startswith(STAGING_PREFIX) for name in entries):
            raise InspectError(
                f"{directory} has no summary.json: that run did not finish (it was killed or "
                "failed), so its output is incomplete; rerun it with --overwrite"
            )
        if not entries and "://" not in directory and not os.path.isdir(directory):
            raise InspectError(
                f"{directory}: no such directory; pass the --output directory of a finished run"
            )
        raise InspectError(
            f"{directory} is not an alm_beam output directory (no summary.json and no "
            "windows-*, errors-* or train-* shards there); pass the --output directory of "
            "a finished run"
        )
    with fs.open(path) as fh:
        data = fh.read()
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InspectError(f"{path}: not valid JSON ({exc}); is this an alm_beam output directory?") from None
    if not isinstance(doc, dict) or not {"entries_read", "stats", "outputs"} <= set(doc):
        raise InspectError(
            f"{path}: not an alm_beam summary (no entries_read, stats, "
            "outputs); is this an alm_beam output directory?"
        )
    return doc


def window_view(record: dict) -> dict:
    """The fields shown for one kept window (a training line, or the same fields)."""
    return {
        k: record[k] for k in ("audio_filepath", "offset", "duration", "speakers", "num_segments", "text")
    }


def view_of_filtered_window(entry: dict, window: dict) -> dict:
    """``window_view`` of a window of an output entry's ``filtered_windows``
    (for runs with ``output.training_manifest: false``), as the training line
    would give it (docs/output.md)."""
    segs = window["segments"]
    speakers = list(dict.fromkeys(s.get("speaker") for s in segs if s.get("speaker")))
    texts = [s.get("text") for s in segs]
    return {
        "audio_filepath": entry.get("audio_filepath"),
        "offset": segs[0]["start"],
        "duration": segs[-1]["end"] - segs[0]["start"],
        "speakers": speakers,
        "num_segments": len(segs),
        "text": " ".join(t for t in texts if isinstance(t, str) and t),
    }


def _json_or_none(line: bytes):
    """A line's JSON value, or None for a line that is not JSON (shown nowhere)."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def _shown_view(make) -> Optional[dict]:
    """``make()``'s window view when every field has the type it is shown
    with, else None: an output directory may hold anything (an input entry
    without windows keeps its own ``filtered_windows``, spec section 4)."""
    try:
        view = make()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError):
        return None
    number, speakers = (int, float), view["speakers"]
    if (
        type(view["offset"]) in number
        and type(view["duration"]) in number
        and isinstance(speakers, list)
        and all(isinstance(s, str) for s in speakers)
        and type(view["num_segments"]) is int
        and isinstance(view["text"], str)
    ):
        return view
    return None


def kept_windows(directory: str, doc: dict, n: int) -> tuple[list, str]:
    """The first ``n`` kept windows and where they were read from."""
    if n <= 0:
        return [], ""
    out = []
    train = _shards(directory, "train")
    if doc["outputs"].get("train") and train:
        for line in _lines(train):
            record = _json_or_none(line)
            view = _shown_view(lambda: window_view(record))  # noqa: B023
            if view is not None:
                out.append(view)
            if len(out) == n:
                break
        return out, _pattern("train", train)
    windows = _shards(directory, "windows")
    source = "filtered_windows of " + _pattern("windows", windows)
    for line in _lines(windows):
        entry = _json_or_none(line)
        found = entry.get("filtered_windows") if isinstance(entry, dict) else None
        for window in found if isinstance(found, list) else ():
            if isinstance(window, dict) and window.get("segments"):
                view = _shown_view(lambda: view_of_filtered_window(entry, window))  # noqa: B023
                if view is None:
                    continue
                out.append(view)
                if len(out) == n:
                    return out, source
    return out, source


def error_examples(directory: str, reasons: Sequence[str]) -> dict:
    """The first error record of each reason (reading only until all are found)."""
    wanted = set(reasons)
    found: dict = {}
    if not wanted:
        return found
    for line in _lines(_shards(directory, "errors")):
        record = _json_or_none(line)
        reason = record.get("reason") if isinstance(record, dict) else None
        if isinstance(reason, str) and reason in wanted and reason not in found:
            found[reason] = record
            if len(found) == len(wanted):
                break
    return found


def first_words(text: str, count: int = FIRST_WORDS) -> str:
    words = text.split()
    shown = " ".join(words[:count])
    return f'"{terminal_safe(shown)}{" ..." if len(words) > count else ""}"'


def render_windows(windows: Sequence[dict], total: int, source: str) -> list:
    if not windows:
        return [f"kept windows: none to show (windows kept: {total:,})"]
    lines = [f"kept windows: the first {len(windows)} of {total:,} ({source})"]
    for k, w in enumerate(windows, 1):
        audio = terminal_safe(w["audio_filepath"])
        lines.append(f"  {k}. {audio}  offset {w['offset']:.2f} s  duration {w['duration']:.2f} s")
        count = len(w["speakers"])
        names = f" ({', '.join(terminal_safe(s) for s in w['speakers'])})" if count else ""
        lines.append(f"     {count} speaker{'' if count == 1 else 's'}{names}, {w['num_segments']} segments")
        lines.append(f"     {first_words(w['text'])}")
    return lines


def render_errors(counts: dict, examples: dict) -> list:
    if not counts:
        return ["rejected lines: none"]
    lines = ["rejected lines: one example per reason"]
    for reason, count in counts.items():
        lines.append(f"  {terminal_safe(reason)}  ({count:,} line{'s' if count != 1 else ''})")
        record = examples.get(reason)
        if record is None:
            lines.append("     (no example found in errors-*.jsonl)")
            continue
        where = "line ?" if record.get("line") is None else f"line {terminal_safe(record['line'])}"
        file = terminal_safe(record.get("manifest_filepath"))
        lines.append(f"     {file} {where}, byte {terminal_safe(record.get('byte_offset'))}")
        lines.append(f"     detail: {terminal_safe(record.get('detail'))}")
        raw = record.get("raw")
        raw = raw if isinstance(raw, str) else ""  # an error record of ours always has text here
        cut = len(raw) > RAW_CHARS or record.get("raw_truncated")
        lines.append(f"     raw: {terminal_safe(repr(raw[:RAW_CHARS]))}{' (cut)' if cut else ''}")
    return lines


def inspect_output(directory: str, n: int = DEFAULT_WINDOWS) -> str:
    from alm_beam.results.summary import render_report

    doc = read_summary(directory)
    windows, source = kept_windows(directory, doc, n)
    counts = doc.get("errors_by_reason") or {}
    parts = [render_report(doc, directory), ""]
    parts += render_windows(windows, doc["filtered_windows"], source)
    parts.append("")
    parts += render_errors(counts, error_examples(directory, list(counts)))
    return "\n".join(parts)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alm_beam.inspect",
        description="Show what a run produced: its summary and loss breakdown, a few kept "
        "windows, and one example of each reason a line was rejected.",
    )
    parser.add_argument(
        "directory", metavar="DIR", help="the --output directory of a finished run (any Beam filesystem)"
    )
    parser.add_argument(
        "--n",
        type=_count,
        default=DEFAULT_WINDOWS,
        metavar="N",
        help=f"kept windows to show (default {DEFAULT_WINDOWS})",
    )
    args = parser.parse_args(argv)
    from alm_beam.io.beam_noise import filter_start_up_noise

    filter_start_up_noise()  # Beam's import-time warning about optional GCP clients
    try:
        print(inspect_output(args.directory, args.n))
    except InspectError as exc:
        print(f"alm_beam: error: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    return 0
