"""Run statistics as a mergeable accumulator (pure Python, no Beam).

Per-entry numbers arrive in any order and are merged across bundles and
workers in any grouping, so float totals are kept as exact sums (Shewchuk
partials, the algorithm behind ``math.fsum``): the summary is the correctly
rounded total whatever the runner, the parallelism or the sharding. The Beam
``CombineFn`` in ``transforms.py`` is a thin wrapper around this class.

Besides the totals it keeps what the visual report (``report.py``) draws, all
mergeable exactly: fixed-bin histograms of the kept windows' durations and
speaker counts (the bins depend only on the parameters, so every worker bins
alike), one example error record per reason (the one with the smallest
``(manifest, byte offset, line)``, whatever the order of arrival), and counts
per manifest file. The per-manifest table grows with the number of manifest
files (one small row each, like the ``inputs`` list of summary.json); only
the ``LOWEST_YIELD_SHOWN`` lowest-yield rows go into summary.json.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple, Optional

import orjson


class ReadCount(NamedTuple):
    """What the reader counted in one read range (sent with the entry records)."""

    lines: int  # lines read, the unreadable rest of a damaged file counted as one
    blank: int  # of those, blank (JSON whitespace only): neither written nor an error


# Counted per written entry, summed as Python ints (exact).
INT_FIELDS = (
    "entries_written",
    "entries_with_windows",
    "entries_with_filtered_windows",
    "entries_below_min_sample_rate",
    "windows",
    "filtered_windows",
    "filtered_timestamps",
    "truncation_events",
    "lost_win_full_data_records",
    "total_segments",
    "lost_bw",
    "lost_sr",
    "lost_spk",
    "lost_win",
    "lost_no_spkr",
    "lost_next_seg_bm",
    "entries_reduced",
)
# Durations in seconds, summed exactly.
FLOAT_FIELDS = (
    "filtered_dur",
    "total_dur_window",
    "total_dur",
    "dur_lost_bw",
    "dur_lost_sr",
    "dur_lost_spk",
    "dur_lost_win",
    "dur_lost_no_spkr",
    "dur_lost_next_seg_bm",
)
# The spec's per-entry stats counters, in the spec's order, as summed in summary.json.
STATS_KEYS = (
    "total_segments",
    "total_dur",
    "lost_bw",
    "dur_lost_bw",
    "lost_sr",
    "dur_lost_sr",
    "lost_spk",
    "dur_lost_spk",
    "lost_win",
    "dur_lost_win",
    "lost_no_spkr",
    "dur_lost_no_spkr",
    "lost_next_seg_bm",
    "dur_lost_next_seg_bm",
)


LOWEST_YIELD_SHOWN = 10  # manifests listed in summary.json's manifests.lowest_yield
EXAMPLE_RAW_CHARS = 300  # raw line text kept in an error example
DURATION_BINS_MAX = 30  # at most this many duration bins over [min, max] duration


class DurationBins(NamedTuple):
    """Fixed histogram bins ``[lo + k*width, lo + (k+1)*width)``, k < count, the
    last one closed at ``hi`` (the longest accepted window).

    Chosen from the window-length bounds alone (a 1/2/5 x 10^n width), so all
    workers bin alike and merged counts are exact.
    """

    lo: float
    width: float
    count: int
    hi: float

    @classmethod
    def for_range(cls, min_duration: float, max_duration: float) -> "DurationBins":
        lo_d, hi_d = float(min_duration), float(max_duration)
        span = max(hi_d - lo_d, 0.0)
        width = 1.0
        if span > 0:
            width = 10.0 ** math.floor(math.log10(span / DURATION_BINS_MAX))
            for step in (1, 2, 5, 10):
                if span / (width * step) <= DURATION_BINS_MAX:
                    width *= step
                    break
        lo = math.floor(lo_d / width) * width
        count = max(1, math.ceil((hi_d - lo) / width))
        return cls(lo, width, count, hi_d)

    def index(self, value: float) -> int:
        """0: below the range, 1..count: the bins, count+1: above."""
        k = math.floor((value - self.lo) / self.width)
        if k < 0:
            return 0
        if k < self.count:
            return k + 1
        return self.count if value <= self.hi else self.count + 1

    def edges(self) -> list:
        return [round(self.lo + k * self.width, 9) for k in range(self.count + 1)]


DEFAULT_BINS = DurationBins.for_range(108.0, 132.0)  # the default target 120 s +/- 10 %


class ErrorItem(NamedTuple):
    """Combiner input for a rejected line: its reason and where it was."""

    reason: str
    source: str
    offset: Optional[int]
    line: Optional[int]
    record: bytes  # the error record's JSON (curate.error_record)


def _example_key(item: ErrorItem) -> tuple:
    # Unknown offsets/lines (an unreadable compressed file) sort after known ones.
    return (
        item.source,
        item.offset is None,
        item.offset or 0,
        item.line is None,
        item.line or 0,
        item.record,
    )


def entry_record(
    entry: Mapping,
    below_rate: bool,
    source: str = "",
    kept_durations: tuple = (),
    kept_speakers: tuple = (),
    *,
    reduced: bool = False,
) -> tuple:
    """The compact record of one curated entry, for the combiner:
    ``(ints, floats, source, kept_durations, kept_speakers)``.

    Taken from the full output entry (before ``--compact`` drops lists);
    every window loss has one ``lost_win_full_data`` record, so their count is
    ``lost_win`` even when the records are not collected. ``kept_durations``
    and ``kept_speakers`` hold each kept window's length (s) and distinct
    speaker count, in ``filtered_windows`` order; ``reduced``: its line was
    written in a reduced form (``curate.bounded_line``). Only what the builder and
    the filter computed is counted (an input's copies of our keys are not).
    """
    stats = entry["stats"]
    windows = len(entry["windows"])
    # Without windows the overlap filter keeps the input's own filtered_*
    # and total_dur_window values (spec section 4): they are not this run's.
    filtered_windows = len(entry["filtered_windows"]) if windows else 0
    ints = (
        1,
        1 if windows else 0,
        1 if filtered_windows else 0,
        1 if below_rate else 0,
        windows,
        filtered_windows,
        len(entry["filtered"]) if windows else 0,
        entry["truncation_events"],
        stats["lost_win"],
        stats["total_segments"],
        stats["lost_bw"],
        stats["lost_sr"],
        stats["lost_spk"],
        stats["lost_win"],
        stats["lost_no_spkr"],
        stats["lost_next_seg_bm"],
        1 if reduced else 0,
    )
    floats = (
        entry["filtered_dur"] if windows else 0.0,
        entry["total_dur_window"] if windows else 0.0,
        stats["total_dur"],
        stats["dur_lost_bw"],
        stats["dur_lost_sr"],
        stats["dur_lost_spk"],
        stats["dur_lost_win"],
        stats["dur_lost_no_spkr"],
        stats["dur_lost_next_seg_bm"],
    )
    return ints, floats, source, kept_durations, kept_speakers


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


_I_WRITTEN = INT_FIELDS.index("entries_written")
_I_SEGMENTS = INT_FIELDS.index("total_segments")
_I_WINDOWS = INT_FIELDS.index("windows")
_I_KEPT = INT_FIELDS.index("filtered_windows")
_F_KEPT_DUR = FLOAT_FIELDS.index("filtered_dur")
_F_TOTAL_DUR = FLOAT_FIELDS.index("total_dur")
# One row per manifest file: entries written, lines rejected, segments,
# windows, kept windows (ints), then total and kept duration (ExactSum).
_M_INTS = 5


def _new_manifest_row() -> list:
    return [0] * _M_INTS + [ExactSum(), ExactSum()]


class RunStats:
    """Everything summary.json reports, accumulated entry by entry."""

    __slots__ = (
        "ints",
        "floats",
        "errors",
        "lines_read",
        "blank_lines",
        "bins",
        "duration_hist",
        "speaker_hist",
        "error_examples",
        "manifests",
    )

    def __init__(self, bins: DurationBins = DEFAULT_BINS):
        self.ints = [0] * len(INT_FIELDS)
        self.floats = [ExactSum() for _ in FLOAT_FIELDS]
        self.errors: dict[str, int] = {}
        self.lines_read = 0  # counted by the reader, not derived from the outcomes
        self.blank_lines = 0
        self.bins = bins
        self.duration_hist = [0] * (bins.count + 2)  # [below, bins..., above]
        self.speaker_hist: dict[int, int] = {}
        self.error_examples: dict[str, tuple] = {}  # reason -> (key, record bytes)
        self.manifests: dict[str, list] = {}

    def _manifest(self, source: str) -> list:
        row = self.manifests.get(source)
        if row is None:
            row = self.manifests[source] = _new_manifest_row()
        return row

    def add_entry(self, record: tuple) -> None:
        ints, floats, source, kept_durations, kept_speakers = record
        acc = self.ints
        for i, v in enumerate(ints):
            acc[i] += v
        for acc_f, v in zip(self.floats, floats):
            acc_f.add(v)
        if kept_durations:
            hist, index = self.duration_hist, self.bins.index
            for d in kept_durations:
                hist[index(d)] += 1
            spk = self.speaker_hist
            for n in kept_speakers:
                spk[n] = spk.get(n, 0) + 1
        row = self._manifest(source)
        row[0] += ints[_I_WRITTEN]
        row[2] += ints[_I_SEGMENTS]
        row[3] += ints[_I_WINDOWS]
        row[4] += ints[_I_KEPT]
        row[5].add(floats[_F_TOTAL_DUR])
        row[6].add(floats[_F_KEPT_DUR])

    def add_error(self, item: ErrorItem) -> None:
        reason = item.reason
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self._manifest(item.source)[1] += 1
        key = _example_key(item)
        held = self.error_examples.get(reason)
        if held is None or key < held:
            self.error_examples[reason] = key

    def add_read_count(self, count: ReadCount) -> None:
        self.lines_read += count.lines
        self.blank_lines += count.blank

    def add(self, item) -> None:
        """Combiner input: an entry record, an ``ErrorItem``, a ``ReadCount``, or a
        partial ``RunStats`` (a bundle's, summed where the entries were curated)."""
        if type(item) is RunStats:
            self.merge(item)
        elif type(item) is ErrorItem:
            self.add_error(item)
        elif isinstance(item, ReadCount):
            self.add_read_count(item)
        else:
            self.add_entry(item)

    def merge(self, other: "RunStats") -> None:
        if other.bins != self.bins:
            raise ValueError(f"cannot merge histograms with bins {other.bins} into {self.bins}")
        for i, v in enumerate(other.ints):
            self.ints[i] += v
        for mine, theirs in zip(self.floats, other.floats):
            mine.merge(theirs)
        for reason, count in other.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + count
        self.lines_read += other.lines_read
        self.blank_lines += other.blank_lines
        for i, v in enumerate(other.duration_hist):
            self.duration_hist[i] += v
        for n, count in other.speaker_hist.items():
            self.speaker_hist[n] = self.speaker_hist.get(n, 0) + count
        for reason, key in other.error_examples.items():
            held = self.error_examples.get(reason)
            if held is None or key < held:
                self.error_examples[reason] = key
        for source, theirs in other.manifests.items():
            row = self._manifest(source)
            for i in range(_M_INTS):
                row[i] += theirs[i]
            row[5].merge(theirs[5])
            row[6].merge(theirs[6])

    @classmethod
    def merged(cls, parts: Iterable["RunStats"]) -> "RunStats":
        out = None
        for part in parts:
            if out is None:
                out = cls(part.bins)
            out.merge(part)
        return out if out is not None else cls()

    def manifest_rows(self) -> list:
        """Every manifest's counts, lowest yield (kept / total duration) first."""
        rows = []
        for source, row in self.manifests.items():
            total, kept = row[5].value, row[6].value
            rows.append(
                {
                    "manifest_filepath": source,
                    "entries_read": row[0] + row[1],
                    "entries_written": row[0],
                    "entries_failed": row[1],
                    "total_segments": row[2],
                    "windows": row[3],
                    "filtered_windows": row[4],
                    "total_dur": total,
                    "filtered_dur": kept,
                    "yield": kept / total if total > 0 else 0.0,
                }
            )
        rows.sort(key=lambda r: (r["yield"], r["manifest_filepath"]))
        return rows

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
        for key in (
            "entries_with_windows",
            "entries_with_filtered_windows",
            "entries_below_min_sample_rate",
            "windows",
            "filtered_windows",
            "filtered_timestamps",
            "filtered_dur",
            "total_dur_window",
            "truncation_events",
            "lost_win_full_data_records",
            "entries_reduced",
        ):
            out[key] = totals[key]
        out["stats"] = {key: totals[key] for key in STATS_KEYS}
        out["errors_by_reason"] = dict(sorted(self.errors.items()))
        return out

    def report_dict(self) -> dict:
        """The report's extra keys of summary.json: distributions, error examples,
        lowest-yield manifests."""
        hist = self.duration_hist
        examples = {}
        for reason in sorted(self.error_examples):
            record = orjson.loads(self.error_examples[reason][-1])
            raw = record.get("raw")
            if isinstance(raw, str) and len(raw) > EXAMPLE_RAW_CHARS:
                record["raw"] = raw[:EXAMPLE_RAW_CHARS]
                record["raw_truncated"] = True
            examples[reason] = record
        rows = self.manifest_rows()
        return {
            "distributions": {
                "kept_window_duration_s": {
                    "bin_edges": self.bins.edges(),
                    "counts": hist[1:-1],
                    "below_range": hist[0],
                    "above_range": hist[-1],
                },
                "kept_window_speakers": {
                    "values": sorted(self.speaker_hist),
                    "counts": [self.speaker_hist[n] for n in sorted(self.speaker_hist)],
                },
            },
            "error_examples": examples,
            "manifests": {
                "count": len(rows),
                "lowest_yield": rows[:LOWEST_YIELD_SHOWN],
            },
        }
