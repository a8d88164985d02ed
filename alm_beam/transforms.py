"""Beam glue: thin composite transforms, DoFns and the CombineFn.

Each wraps a pure module: reading lines (``reader``), curating a line
(``curate``), aggregating statistics (``stats``), rendering the summary
(``summary``). Nothing here opens files or talks to services while the graph
is built; all I/O happens in ``process`` or in Beam's own sinks.
"""

from __future__ import annotations

import bz2
import gc
import gzip
import lzma
import zlib
from typing import NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from alm_beam.curate import Curated, OutputOptions, curate_line, failed_line
from alm_beam.discovery import ReadRange
from alm_beam.params import CurationParams
from alm_beam.reader import BLOCK_SIZE, iter_lines
from alm_beam.stats import INT_FIELDS, RunStats
from alm_beam.validate import Rejection

METRICS_NAMESPACE = "alm_beam"
GC_GEN0_THRESHOLD = 20_000
_WINDOWS = INT_FIELDS.index("windows")            # positions in stats.entry_record
_KEPT = INT_FIELDS.index("filtered_windows")
ERRORS_TAG = "errors"
STATS_TAG = "stats"


class ManifestLine(NamedTuple):
    source: str
    data: bytes
    line: Optional[int]
    offset: Optional[int]
    unreadable: Optional[str] = None  # set on the last item of a corrupt compressed file


# Python's decompressors raise on a truncated or corrupt stream; Beam's
# CompressedFile just ends early, silently dropping the rest of the file.
_DECOMPRESSORS = {CompressionTypes.GZIP: lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
                  CompressionTypes.BZIP2: lambda raw: bz2.BZ2File(raw, mode="rb"),
                  CompressionTypes.LZMA: lambda raw: lzma.LZMAFile(raw, mode="rb")}


def _open_manifest(path: str, compressed: bool):
    kind = CompressionTypes.detect_compression_type(path) if compressed else None
    if kind in _DECOMPRESSORS:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        return _DECOMPRESSORS[kind](raw)
    return FileSystems.open(path, compression_type=CompressionTypes.AUTO if compressed
                            else CompressionTypes.UNCOMPRESSED)


def _is_corrupt_stream(exc: Exception) -> bool:
    """A decompression failure; real I/O errors still fail the bundle (the runner retries)."""
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)):
        return True
    return isinstance(exc, OSError) and exc.errno is None  # bz2: "Invalid data stream"


COMPRESSED_BLOCK_SIZE = 8 << 10


class _ReadRangeFn(beam.DoFn):
    """Reads the lines that start in one byte range of one manifest."""

    def __init__(self):
        self.lines_read = Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self.bytes_read = Metrics.counter(METRICS_NAMESPACE, "bytes_read")

    def process(self, rng: ReadRange):
        lines = size = 0
        try:
            # Small reads from a decompressor: a damaged stream raises on the read
            # that reaches the damage, losing only what that one read decoded.
            block = COMPRESSED_BLOCK_SIZE if rng.compressed else BLOCK_SIZE
            with _open_manifest(rng.path, rng.compressed) as stream:
                for raw in iter_lines(stream, rng.start, rng.end, block):
                    lines += 1
                    size += len(raw.data) + 1
                    yield ManifestLine(rng.path, raw.data, raw.line, raw.offset)
        except Exception as exc:  # noqa: BLE001 - narrowed right below
            if not (rng.compressed and _is_corrupt_stream(exc)):
                raise
            # One error record for the unreadable rest, so nothing is dropped silently.
            # (Compressed files are read whole, so `lines` is the last good line number.)
            yield ManifestLine(rng.path, b"", None, None, (
                f"compressed manifest is corrupt or truncated after line {lines}; the rest "
                f"of the file was not read: {type(exc).__name__}: {exc}"))
        # Counted once per range: a counter update per line is not free.
        self.lines_read.inc(lines)
        self.bytes_read.inc(size)


class ReadManifestLines(beam.PTransform):
    """Manifest byte ranges (planned before the pipeline) -> ManifestLine elements.

    With ``reshuffle`` the lines are redistributed so the CPU-heavy curation
    spreads over all workers even when one file dominates the input.
    """

    def __init__(self, ranges: Sequence[ReadRange], reshuffle: bool):
        super().__init__()
        self._ranges = list(ranges)
        self._reshuffle = reshuffle

    def expand(self, pbegin):
        lines = (pbegin
                 | "ListRanges" >> beam.Create(self._ranges, reshuffle=len(self._ranges) > 1)
                 | "ReadRanges" >> beam.ParDo(_ReadRangeFn()))
        if self._reshuffle:
            lines = lines | "SpreadLines" >> beam.Reshuffle()
        return lines


class _CurateFn(beam.DoFn):
    """parse -> validate -> build -> filter -> serialize; bad lines go to ERRORS_TAG.

    Counters are summed per bundle and reported in ``finish_bundle`` (a
    counter update per element costs more than the bookkeeping here).
    """

    def __init__(self, params: CurationParams, options: OutputOptions):
        self._params = params
        self._options = options
        self.written = Metrics.counter(METRICS_NAMESPACE, "entries_written")
        self.failed = Metrics.counter(METRICS_NAMESPACE, "entries_failed")
        self.blank = Metrics.counter(METRICS_NAMESPACE, "blank_lines")
        self.windows = Metrics.counter(METRICS_NAMESPACE, "windows")
        self.kept = Metrics.counter(METRICS_NAMESPACE, "filtered_windows")
        self._counts: list = []
        self._failures: dict = {}

    def setup(self):
        # One line holds a few thousand dicts and lists (one per word) for well
        # under a millisecond, and they form no cycles: refcounting frees them.
        # With CPython's default gen-0 threshold (700) the cyclic collector
        # still runs a few times per line, scanning them for nothing (~3% of
        # the run). A larger threshold keeps that off this worker's hot path;
        # cycles elsewhere are still collected.
        gen0, gen1, gen2 = gc.get_threshold()
        if 0 < gen0 < GC_GEN0_THRESHOLD:
            gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)

    def start_bundle(self):
        # written, blank, windows, filtered windows; failures by reason
        self._counts = [0, 0, 0, 0]
        self._failures = {}

    def process(self, item: ManifestLine):
        if item.unreadable is None:
            outcome = curate_line(item.data, item.source, self._params, line=item.line,
                                  offset=item.offset, options=self._options)
        else:
            outcome = failed_line(item.data, item.source, item.line, item.offset,
                                  Rejection("unreadable_file", item.unreadable),
                                  self._options.max_raw_chars)
        counts = self._counts
        if outcome is None:
            counts[1] += 1
            return
        if type(outcome) is Curated:
            ints = outcome.record[0]
            counts[0] += 1
            counts[2] += ints[_WINDOWS]
            counts[3] += ints[_KEPT]
            yield outcome.line
            yield beam.pvalue.TaggedOutput(STATS_TAG, outcome.record)
        else:
            reason = outcome.reason
            self._failures[reason] = self._failures.get(reason, 0) + 1
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, outcome.line)
            yield beam.pvalue.TaggedOutput(STATS_TAG, reason)

    def finish_bundle(self):
        written, blank, windows, kept = self._counts
        for counter, value in ((self.written, written), (self.blank, blank),
                               (self.windows, windows), (self.kept, kept)):
            if value:
                counter.inc(value)
        failed = sum(self._failures.values())
        if failed:
            self.failed.inc(failed)
            for reason, count in self._failures.items():
                Metrics.counter(METRICS_NAMESPACE, f"failed_{reason}").inc(count)


class CuratedOutputs(NamedTuple):
    entries: beam.PCollection   # output JSON lines (bytes)
    errors: beam.PCollection    # error record JSON lines (bytes)
    stats: beam.PCollection     # stats.entry_record tuples and error reason strings


class CurateEntries(beam.PTransform):
    """One fused step after the read: no entry is decoded or encoded twice."""

    def __init__(self, params: CurationParams, options: OutputOptions):
        super().__init__()
        self._params = params
        self._options = options

    def expand(self, lines):
        out = lines | "Curate" >> beam.ParDo(_CurateFn(self._params, self._options)) \
            .with_outputs(ERRORS_TAG, STATS_TAG, main="entries")
        return CuratedOutputs(out.entries, out[ERRORS_TAG], out[STATS_TAG])


class RunStatsCombineFn(beam.CombineFn):
    """Thin wrapper: all arithmetic lives in ``stats.RunStats``."""

    def create_accumulator(self):
        return RunStats()

    def add_input(self, acc, item):
        acc.add(item)
        return acc

    def merge_accumulators(self, accumulators):
        return RunStats.merged(accumulators)

    def extract_output(self, acc):
        return acc


class AggregateRunStats(beam.PTransform):
    def expand(self, stats):
        return stats | "SumStats" >> beam.CombineGlobally(RunStatsCombineFn())
