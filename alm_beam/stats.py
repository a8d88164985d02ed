"""Run statistics as a mergeable accumulator (pure Python, no Beam).

Per-entry numbers arrive in any order and are merged across bundles and
workers in any grouping, so float totals are kept as exact sums (Shewchuk
partials, the algorithm behind ``math.fsum``): the summary is the correctly
rounded total whatever the runner, the parallelism or the sharding. The Beam
``CombineFn`` in ``transforms.py`` is a thin wrapper around this class.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple


class ReadCount(NamedTuple):
    """What the reader counted in one read range (sent with the entry records)."""

    lines: int   # lines read, the unreadable rest of a damaged file counted as one
    blank: int   # of those, blank (JSON whitespace only): neither written nor an error

# Counted per written entry, summed as Python ints (exact).
INT_FIELDS = (
    "entries_written", "entries_with_windows", "entries_with_filtered_windows",
    "entries_below_min_sample_rate", "windows", "filtered_windows", "filtered_timestamps",
    "truncation_events", "lost_win_full_data_records",
    "total_segments", "lost_bw", "lost_sr", "lost_spk", "lost_win", "lost_no_spkr",
    "lost_next_seg_bm",
)
# Durations in seconds, summed exactly.
FLOAT_FIELDS = (
    "filtered_dur", "total_dur_window", "total_dur", "dur_lost_bw", "dur_lost_sr",
    "dur_lost_spk", "dur_lost_win", "dur_lost_no_spkr", "dur_lost_next_seg_bm",
)
# The spec's per-entry stats counters, in the spec's order, as summed in summary.json.
STATS_KEYS = (
    "total_segments", "total_dur", "lost_bw", "dur_lost_bw", "lost_sr", "dur_lost_sr",
    "lost_spk", "dur_lost_spk", "lost_win", "dur_lost_win", "lost_no_spkr", "dur_lost_no_spkr",
    "lost_next_seg_bm", "dur_lost_next_seg_bm",
)


def entry_record(entry: Mapping, below_rate: bool) -> tuple:
    """The compact (ints, floats) record of one curated entry, for the combiner.

    Taken from the full output entry (before ``--compact`` drops lists);
    every window loss has one ``lost_win_full_data`` record, so their count is
    ``lost_win`` even when the records are not collected.
    """
    stats = entry["stats"]
    windows = len(entry["windows"])
    filtered_windows = len(entry["filtered_windows"])
    ints = (
        1,
        1 if windows else 0,
        1 if filtered_windows else 0,
        1 if below_rate else 0,
        windows,
        filtered_windows,
        len(entry["filtered"]),
        entry["truncation_events"],
        stats["lost_win"],
        stats["total_segments"], stats["lost_bw"], stats["lost_sr"], stats["lost_spk"],
        stats["lost_win"], stats["lost_no_spkr"], stats["lost_next_seg_bm"],
    )
    floats = (
        entry["filtered_dur"], entry["total_dur_window"], stats["total_dur"],
        stats["dur_lost_bw"], stats["dur_lost_sr"], stats["dur_lost_spk"],
        stats["dur_lost_win"], stats["dur_lost_no_spkr"], stats["dur_lost_next_seg_bm"],
    )
    return ints, floats


class ExactSum:
    """Mergeable exact float sum; ``value`` is the correctly rounded total."""

    __slots__ = ("partials", "special")

    def __init__(self):
        self.partials: list[float] = []
        self.special = 0.0  # inf/nan can't live in partials; summed plainly

    def add(self, x) -> None:
        x = float(x)
        if not math.isfinite(x):
            self.special += x
            return
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def merge(self, other: "ExactSum") -> None:
        for p in other.partials:
            self.add(p)
        self.special += other.special

    @property
    def value(self) -> float:
        return math.fsum(self.partials) + self.special


class RunStats:
    """Everything summary.json reports, accumulated entry by entry."""

    __slots__ = ("ints", "floats", "errors", "lines_read", "blank_lines")

    def __init__(self):
        self.ints = [0] * len(INT_FIELDS)
        self.floats = [ExactSum() for _ in FLOAT_FIELDS]
        self.errors: dict[str, int] = {}
        self.lines_read = 0    # counted by the reader, not derived from the outcomes
        self.blank_lines = 0

    def add_entry(self, record: tuple) -> None:
        ints, floats = record
        acc = self.ints
        for i, v in enumerate(ints):
            acc[i] += v
        for acc_f, v in zip(self.floats, floats):
            acc_f.add(v)

    def add_error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def add_read_count(self, count: ReadCount) -> None:
        self.lines_read += count.lines
        self.blank_lines += count.blank

    def add(self, item) -> None:
        """Combiner input: an entry record, an error reason string, or a ReadCount."""
        if isinstance(item, str):
            self.add_error(item)
        elif isinstance(item, ReadCount):
            self.add_read_count(item)
        else:
            self.add_entry(item)

    def merge(self, other: "RunStats") -> None:
        for i, v in enumerate(other.ints):
            self.ints[i] += v
        for mine, theirs in zip(self.floats, other.floats):
            mine.merge(theirs)
        for reason, count in other.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + count
        self.lines_read += other.lines_read
        self.blank_lines += other.blank_lines

    @classmethod
    def merged(cls, parts: Iterable["RunStats"]) -> "RunStats":
        out = cls()
        for part in parts:
            out.merge(part)
        return out

    def to_dict(self) -> dict:
        """The aggregate part of summary.json (plain JSON types, stable key order)."""
        totals = dict(zip(INT_FIELDS, self.ints))
        totals.update(zip(FLOAT_FIELDS, (f.value for f in self.floats)))
        failed = sum(self.errors.values())
        out = {
            # lines_read and blank_lines come from the reader; the entries_* from
            # curation. summary.check_line_balance ties them together.
            "lines_read": self.lines_read,
            "blank_lines": self.blank_lines,
            "entries_read": totals["entries_written"] + failed,  # non-blank lines curated
            "entries_written": totals["entries_written"],
            "entries_failed": failed,
        }
        for key in ("entries_with_windows", "entries_with_filtered_windows",
                    "entries_below_min_sample_rate", "windows", "filtered_windows",
                    "filtered_timestamps", "filtered_dur", "total_dur_window",
                    "truncation_events", "lost_win_full_data_records"):
            out[key] = totals[key]
        out["stats"] = {key: totals[key] for key in STATS_KEYS}
        out["errors_by_reason"] = dict(sorted(self.errors.items()))
        return out
