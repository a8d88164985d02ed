"""Beam glue: thin composite transforms, DoFns and the CombineFn.

Each wraps a pure module: reading lines (``reader``), curating a line
(``curate``), aggregating statistics (``stats``), rendering the summary
(``summary``). Nothing here opens files or talks to services while the graph
is built; all I/O happens in ``process`` or in Beam's own sinks.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from alm_beam.curate import Curated, OutputOptions, curate_line
from alm_beam.discovery import ReadRange
from alm_beam.params import CurationParams
from alm_beam.reader import iter_lines
from alm_beam.stats import RunStats

METRICS_NAMESPACE = "alm_beam"
ERRORS_TAG = "errors"
STATS_TAG = "stats"


class ManifestLine(NamedTuple):
    source: str
    data: bytes
    line: Optional[int]
    offset: int


class _ReadRangeFn(beam.DoFn):
    """Reads the lines that start in one byte range of one manifest."""

    def __init__(self):
        self.lines_read = Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self.bytes_read = Metrics.counter(METRICS_NAMESPACE, "bytes_read")

    def process(self, rng: ReadRange):
        compression = CompressionTypes.AUTO if rng.compressed else CompressionTypes.UNCOMPRESSED
        lines = size = 0
        with FileSystems.open(rng.path, compression_type=compression) as stream:
            for raw in iter_lines(stream, rng.start, rng.end):
                lines += 1
                size += len(raw.data) + 1
                yield ManifestLine(rng.path, raw.data, raw.line, raw.offset)
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

    def start_bundle(self):
        # written, blank, windows, filtered windows; failures by reason
        self._counts = [0, 0, 0, 0]
        self._failures = {}

    def process(self, item: ManifestLine):
        outcome = curate_line(item.data, item.source, self._params, line=item.line,
                              offset=item.offset, options=self._options)
        counts = self._counts
        if outcome is None:
            counts[1] += 1
            return
        if type(outcome) is Curated:
            ints = outcome.record[0]
            counts[0] += 1
            counts[2] += ints[4]
            counts[3] += ints[5]
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
