"""Beam glue: thin composite transforms, DoFns and the CombineFn.

Each wraps a pure module: reading lines (``reader``), curating a line
(``curate``), aggregating statistics (``stats``), rendering the summary
(``summary``). Nothing here opens files or talks to services while the graph
is built; all I/O happens in ``process`` or in Beam's own sinks.
"""

from __future__ import annotations

import gc
from typing import NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from alm_beam.core.curate import Curated, OutputOptions, curate_line, failed_line
from alm_beam.core.params import CurationParams
from alm_beam.core.stats import DEFAULT_BINS, INT_FIELDS, DurationBins, ErrorItem, ReadCount, RunStats
from alm_beam.core.validate import Rejection
from alm_beam.io.codecs import DecodedStream, codec_for_name
from alm_beam.io.discovery import ReadRange, shown_path
from alm_beam.io.planning import SharedRanges, claim
from alm_beam.io.reader import BLOCK_SIZE, JSON_WHITESPACE, LineProblem, is_blank, iter_lines
from alm_beam.io.storage import describe_error
from alm_beam.results.progress import REPORT_EVERY_BYTES, ProgressWriter

METRICS_NAMESPACE = "alm_beam"
GC_GEN0_THRESHOLD = 20_000
_WINDOWS = INT_FIELDS.index("windows")  # positions in stats.entry_record
_KEPT = INT_FIELDS.index("filtered_windows")
ERRORS_TAG = "errors"
STATS_TAG = "stats"
READ_COUNTS_TAG = "read_counts"
TRAIN_TAG = "train"
WINDOWS_KIND = "windows"  # CurateAsResults' kind for the main output's lines
BATCH_LINES = 256  # output lines per element with batch_lines (see _CurateFn)
BATCH_BYTES = 1 << 20
ALONE_BYTES = 64 << 10  # a line this long leaves alone: joining it would only copy it


class ManifestLine(NamedTuple):
    source: str
    data: bytes
    line: Optional[int]
    offset: Optional[int]
    problem: Optional[LineProblem] = None  # a too-long line, or a damaged file's unreadable rest


def _open_manifest(path: str, compressed: bool):
    """(the manifest's (decompressed) bytes as a binary file object, the raw file).

    Compressed files are decoded by ``codecs.DecodedStream`` over the raw
    bytes: Beam's CompressedFile stops silently at a truncated .zst/.deflate
    and Python's file classes drop a block of lines before the damage.
    ``raw.tell()`` is the bytes taken from storage (compressed bytes for a
    compressed file), for progress.
    """
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    codec = codec_for_name(path) if compressed else None
    return (DecodedStream(raw, codec) if codec else raw), raw


def _unreadable_rest(exc: BaseException, opened: bool, offset: int) -> LineProblem:
    """The problem of a range whose file vanished, became unreadable or
    failed mid-read once the job ran (one ``unreadable_file`` record)."""
    if opened:
        what = f"failed while being read, at byte {offset:,}; the rest of the range was not read"
    else:
        what = "could not be opened when the job ran (removed, replaced or made unreadable since discovery)"
    return LineProblem("unreadable_file", f"the file {what}: {describe_error(exc)}", 0)


class _ReadRangeFn(beam.DoFn):
    """Reads the lines that start in one byte range of one manifest.

    Blank lines are counted and dropped here; every other line goes on
    (a damaged file's unreadable rest and a too-long line as a problem). The
    range's counts go to READ_COUNTS_TAG as one ``stats.ReadCount``: the
    summary checks them against what curation wrote and rejected. A file
    that cannot be opened, or an I/O error while reading, ends the range with
    one ``unreadable_file`` problem, counted as one line: every other file
    is read, and the line balance holds. Sources are ``discovery.shown_path``.
    With a ``progress_dir`` (DirectRunner, see ``progress``) it also keeps its
    bytes and lines read in a file there, once per ``REPORT_EVERY_BYTES``.
    """

    def __init__(
        self,
        max_line_bytes: Optional[int] = None,
        progress_dir: Optional[str] = None,
        counts_with_lines: bool = False,
    ):
        self._max_line = max_line_bytes
        self._counts_with_lines = counts_with_lines
        self.lines_read = Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self.blank = Metrics.counter(METRICS_NAMESPACE, "blank_lines")
        self.bytes_read = Metrics.counter(METRICS_NAMESPACE, "bytes_read")
        self._progress_dir = progress_dir
        self._progress: Optional[ProgressWriter] = None

    def setup(self):
        if self._progress_dir:
            self._progress = ProgressWriter(self._progress_dir)

    def teardown(self):
        if self._progress is not None:
            self._progress.close()

    def process(self, unit):
        """``unit``: one ReadRange, a work unit (a tuple of them), or a
        ``SharedRanges``, whose ranges this worker reads if it claims them
        first (see planning.py)."""
        if type(unit) is SharedRanges:
            for index, rng in enumerate(unit.ranges):
                if claim(unit.claim_dir, index):
                    yield from self._read_range(rng)
            return
        for rng in (unit,) if isinstance(unit, ReadRange) else unit:
            yield from self._read_range(rng)

    def _count(self, count: ReadCount):
        return count if self._counts_with_lines else beam.pvalue.TaggedOutput(READ_COUNTS_TAG, count)

    def _read_range(self, rng: ReadRange):
        lines = blank = size = 0
        path = rng.path
        source = shown_path(path)
        progress = self._progress
        # One comparison per line; never true without progress.
        next_report = REPORT_EVERY_BYTES if progress is not None else float("inf")
        try:
            stream, raw_file = _open_manifest(path, rng.compressed)
        except Exception as exc:  # noqa: BLE001 - gone or unreadable: one record, not the run
            yield ManifestLine(source, b"", None, rng.start, _unreadable_rest(exc, False, rng.start))
            yield self._count(ReadCount(1, 0))
            self.lines_read.inc(1)
            return
        next_line, at = (1 if rng.start == 0 else None), rng.start
        with raw_file, stream:
            try:
                for raw in iter_lines(stream, rng.start, rng.end, BLOCK_SIZE, self._max_line):
                    lines += 1
                    if size >= next_report:
                        next_report = size + REPORT_EVERY_BYTES
                        progress.report(raw_file.tell() - rng.start if rng.compressed else size, lines)
                    data = raw.data
                    if raw.problem is None:
                        size += len(data) + 1
                        next_line = None if raw.line is None else raw.line + 1
                        at = raw.offset + len(data) + 1
                        if not data.strip(JSON_WHITESPACE):
                            blank += 1
                            continue
                        yield ManifestLine(source, data, raw.line, raw.offset)
                    else:
                        size += raw.problem.size
                        yield ManifestLine(source, data, raw.line, raw.offset, raw.problem)
            except OSError as exc:  # the file failed under us: the rest of the range is one record
                lines += 1
                yield ManifestLine(source, b"", next_line, at, _unreadable_rest(exc, True, at))
            if progress is not None:  # the whole range, exactly
                progress.finish_range(
                    rng.end - rng.start if rng.end >= 0 else raw_file.tell() - rng.start, lines
                )
        yield self._count(ReadCount(lines, blank))
        # Counted once per range: a counter update per line is not free.
        self.lines_read.inc(lines)
        self.blank.inc(blank)
        self.bytes_read.inc(size)


class ReadOutputs(NamedTuple):
    lines: beam.PCollection  # ManifestLine elements (no blank lines)
    counts: Optional[beam.PCollection]  # one stats.ReadCount per read range (None: they are in lines)


class ReadManifestLines(beam.PTransform):
    """Work units (ReadRanges or tuples of them, planned before the pipeline) ->
    ManifestLine elements.

    With ``reshuffle`` the lines are redistributed so the CPU-heavy curation
    spreads over all workers even when one file dominates the input.
    ``counts_with_lines``: each range's ``ReadCount`` goes among its lines, for
    ``CurateAsResults``, and ``counts`` is None (a second output would meet the
    statistics in a Flatten, which the runners materialize: a stage more).
    """

    def __init__(
        self,
        ranges: Sequence[ReadRange],
        reshuffle: bool,
        max_line_bytes: Optional[int] = None,
        progress_dir: Optional[str] = None,
        *,
        counts_with_lines: bool = False,
    ):
        super().__init__()
        self._ranges = list(ranges)
        self._reshuffle = reshuffle
        self._max_line = max_line_bytes
        self._progress_dir = progress_dir  # where the read step keeps its progress (progress.py)
        self._counts_with_lines = counts_with_lines

    def expand(self, pbegin):
        read = (
            pbegin
            | "ListRanges" >> beam.Create(self._ranges, reshuffle=len(self._ranges) > 1)
            | "ReadRanges"
            >> beam.ParDo(
                _ReadRangeFn(self._max_line, self._progress_dir, self._counts_with_lines)
            ).with_outputs(READ_COUNTS_TAG, main="lines")
        )
        lines = read.lines
        if self._reshuffle:
            lines = lines | "SpreadLines" >> beam.Reshuffle()
        return ReadOutputs(lines, None if self._counts_with_lines else read[READ_COUNTS_TAG])


class _CurateFn(beam.DoFn):
    """parse -> validate -> build -> filter -> serialize; bad lines go to ERRORS_TAG,
    an entry's training lines (one element per entry that has any) to TRAIN_TAG.

    Statistics are summed here, per bundle and window, into one ``stats.RunStats``
    each, emitted to STATS_TAG in ``finish_bundle``: a record per entry would
    cross a stage boundary (the runners materialize the Flatten that joins them
    with the reader's counts), encoded, sent to the runner and read back, which
    cost more than curating a small entry and kept a second worker waiting on
    the runner process. ``RunStats`` merges exactly, so the totals do not depend
    on the bundles. Counters are likewise reported once per bundle.

    ``batch_lines`` (the CLI's pipeline, whose sinks write elements as lines):
    output lines and training lines leave in newline-joined batches of up to
    ``BATCH_LINES`` lines or ``BATCH_BYTES`` bytes, per window, so the sinks'
    per-element work (window assignment, the writer's calls) is paid per batch;
    a line of ``ALONE_BYTES`` or more leaves alone, unjoined. The files hold
    the same lines.

    ``one_output`` (``CurateAsResults``, with ``batch_lines``): every output is
    a ``(kind, value)`` pair on the main output, for ``results_sink``, and the
    reader's ``ReadCount`` elements, which come among the lines, are summed
    into the bundle's statistics.
    """

    def __init__(
        self,
        params: CurationParams,
        options: OutputOptions,
        bins: DurationBins = DEFAULT_BINS,
        batch_lines: bool = False,
        one_output: bool = False,
    ):
        self._params = params
        self._options = options
        self._bins = bins
        self._batch_lines = batch_lines or one_output
        self._one_output = one_output
        self._batches: dict = {}  # (tag, window) -> [lines, bytes]
        self.written = Metrics.counter(METRICS_NAMESPACE, "entries_written")
        self.failed = Metrics.counter(METRICS_NAMESPACE, "entries_failed")
        self.blank = Metrics.counter(METRICS_NAMESPACE, "blank_lines")
        self.windows = Metrics.counter(METRICS_NAMESPACE, "windows")
        self.kept = Metrics.counter(METRICS_NAMESPACE, "filtered_windows")
        self._counts: list = []
        self._failures: dict = {}
        self._stats: dict = {}  # window -> RunStats of this bundle

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
        self._stats = {}
        self._batches = {}

    def _batched(self, tag, window, line: bytes) -> Optional[bytes]:
        """Add ``line`` to its batch; the batch, newline-joined, once it is full.

        A line of ``ALONE_BYTES`` or more is returned as it is, an element of
        its own: its element costs nothing beside its bytes, and joining would
        copy it once more (most of the output is such lines: 3.7 GB of the bench's
        16,000 default entries)."""
        if len(line) >= ALONE_BYTES:
            return line
        batch = self._batches.get((tag, window))
        if batch is None:
            batch = self._batches[(tag, window)] = [[], 0]
        batch[0].append(line)
        batch[1] += len(line) + 1
        if len(batch[0]) >= BATCH_LINES or batch[1] >= BATCH_BYTES:
            del self._batches[(tag, window)]
            return b"\n".join(batch[0])
        return None

    def _out(self, tag, value):
        """``value`` as an output of ``tag`` (None: the main output's lines)."""
        if self._one_output:
            return (WINDOWS_KIND if tag is None else tag, value)
        return value if tag is None else beam.pvalue.TaggedOutput(tag, value)

    def process(self, item: ManifestLine, window=beam.DoFn.WindowParam):
        if type(item) is ReadCount:  # one_output: a range's counts, among its lines
            stats = self._stats.get(window)
            if stats is None:
                stats = self._stats[window] = RunStats(self._bins)
            stats.add_read_count(item)
            return
        problem = item.problem
        if problem is None:
            outcome = curate_line(
                item.data,
                item.source,
                self._params,
                line=item.line,
                offset=item.offset,
                options=self._options,
            )
        else:
            outcome = failed_line(
                item.data,
                item.source,
                item.line,
                item.offset,
                Rejection(problem.code, problem.detail),
                self._options.max_raw_chars,
                raw_bytes=problem.size,
            )
        counts = self._counts
        if outcome is None:  # blank: the reader drops (and counts) these before curation
            counts[1] += 1
            return
        stats = self._stats.get(window)
        if stats is None:
            stats = self._stats[window] = RunStats(self._bins)
        if type(outcome) is Curated:
            ints = outcome.record[0]
            counts[0] += 1
            counts[2] += ints[_WINDOWS]
            counts[3] += ints[_KEPT]
            stats.add_entry(outcome.record)
            if not self._batch_lines:
                yield outcome.line
                if outcome.train:
                    yield beam.pvalue.TaggedOutput(TRAIN_TAG, outcome.train)
                return
            full = self._batched(None, window, outcome.line)
            if full is not None:
                yield (WINDOWS_KIND, full) if self._one_output else full
            if outcome.train:
                full = self._batched(TRAIN_TAG, window, outcome.train)
                if full is not None:
                    yield self._out(TRAIN_TAG, full)
        else:
            reason = outcome.reason
            self._failures[reason] = self._failures.get(reason, 0) + 1
            stats.add_error(ErrorItem(reason, item.source, item.offset, item.line, outcome.line))
            yield self._out(ERRORS_TAG, outcome.line)

    def finish_bundle(self):
        one = self._one_output
        for (tag, window), (lines, _) in self._batches.items():
            rest = b"\n".join(lines)
            if one:
                yield WindowedValue(self._out(tag, rest), window.max_timestamp(), (window,))
            else:
                rest = WindowedValue(rest, window.max_timestamp(), (window,))
                yield rest if tag is None else beam.pvalue.TaggedOutput(tag, rest)
        self._batches = {}
        for window, stats in self._stats.items():
            if one:
                yield WindowedValue((STATS_TAG, stats), window.max_timestamp(), (window,))
            else:
                yield beam.pvalue.TaggedOutput(
                    STATS_TAG, WindowedValue(stats, window.max_timestamp(), (window,))
                )
        self._stats = {}
        written, blank, windows, kept = self._counts
        for counter, value in (
            (self.written, written),
            (self.blank, blank),
            (self.windows, windows),
            (self.kept, kept),
        ):
            if value:
                counter.inc(value)
        failed = sum(self._failures.values())
        if failed:
            self.failed.inc(failed)
            for reason, count in self._failures.items():
                Metrics.counter(METRICS_NAMESPACE, f"failed_{reason}").inc(count)


class CuratedOutputs(NamedTuple):
    entries: beam.PCollection  # output JSON lines (bytes)
    errors: beam.PCollection  # error record JSON lines (bytes)
    stats: beam.PCollection  # stats.RunStats, one per bundle and window (merge with AggregateRunStats)
    train: beam.PCollection  # training lines, newline-joined per entry (bytes)


class CurateEntries(beam.PTransform):
    """One fused step after the read: no entry is decoded or encoded twice.

    ``stats`` holds partial ``RunStats`` binned by ``bins`` (by default the
    parameters' window-length range, ``bins_for``): aggregate them with an
    ``AggregateRunStats`` of the same bins. ``batch_lines``: ``entries`` and
    ``train`` hold newline-joined batches of lines (for a text sink), not a line
    (an entry's training lines) each.
    """

    def __init__(
        self,
        params: CurationParams,
        options: OutputOptions,
        bins: Optional[DurationBins] = None,
        *,
        batch_lines: bool = False,
    ):
        super().__init__()
        self._params = params
        self._options = options
        self._bins = bins if bins is not None else bins_for(params)
        self._batch_lines = batch_lines

    def expand(self, lines):
        curate = _CurateFn(self._params, self._options, self._bins, self._batch_lines)
        out = lines | "Curate" >> beam.ParDo(curate).with_outputs(
            ERRORS_TAG, STATS_TAG, TRAIN_TAG, main="entries"
        )
        return CuratedOutputs(out.entries, out[ERRORS_TAG], out[STATS_TAG], out[TRAIN_TAG])


class CurateAsResults(beam.PTransform):
    """The CLI's curation step: manifest lines, with the reader's ``ReadCount``
    elements among them (``ReadManifestLines(counts_with_lines=True)``) ->
    one PCollection of ``(kind, value)`` for ``results_sink.ResultsSink``.

    Kinds: ``windows`` and ``train`` (newline-joined batches of lines, or one
    long line), ``errors`` (an error record's line) and ``stats`` (a bundle's
    ``RunStats``, the reader's counts included). One output, so the curation,
    the writers and the statistics stay in one fused stage: the outputs of
    ``CurateEntries`` would each need a sink of their own, and the statistics
    a combine, each a few stages more.
    """

    def __init__(self, params: CurationParams, options: OutputOptions, bins: Optional[DurationBins] = None):
        super().__init__()
        self._params = params
        self._options = options
        self._bins = bins if bins is not None else bins_for(params)

    def expand(self, lines):
        return lines | "Curate" >> beam.ParDo(
            _CurateFn(self._params, self._options, self._bins, batch_lines=True, one_output=True)
        )


def bins_for(params: CurationParams) -> DurationBins:
    """The kept-window duration histogram's bins for these parameters."""
    return DurationBins.for_range(params.builder.min_duration, params.builder.max_duration)


class RunStatsCombineFn(beam.CombineFn):
    """Thin wrapper: all arithmetic lives in ``stats.RunStats`` (inputs: partial
    ``RunStats``, ``ReadCount``, and per-entry records or ``ErrorItem``)."""

    def __init__(self, bins: DurationBins = DEFAULT_BINS):
        super().__init__()
        self._bins = bins

    def create_accumulator(self):
        return RunStats(self._bins)

    def add_input(self, acc, item):
        acc.add(item)
        return acc

    def merge_accumulators(self, accumulators):
        merged = RunStats(self._bins)
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc):
        return acc


class AggregateRunStats(beam.PTransform):
    """Entry records and error items -> one ``RunStats``; ``bins`` are the
    kept-window duration histogram's (``DurationBins.for_range``)."""

    def __init__(self, bins: DurationBins = DEFAULT_BINS):
        super().__init__()
        self._bins = bins

    def expand(self, stats):
        return stats | "SumStats" >> beam.CombineGlobally(RunStatsCombineFn(self._bins))


def _as_manifest_line(element) -> ManifestLine:
    """``(source, line)`` with ``line`` as bytes or str (no newline), or a ManifestLine."""
    if type(element) is ManifestLine:
        return element
    source, data = element
    if isinstance(data, str):
        data = data.encode("utf-8")
    return ManifestLine(str(source), data.rstrip(b"\r\n"), None, None)


class _CountLinesFn(beam.DoFn):
    """The library's reader: every input element is one line read; blank ones are
    counted and dropped before curation, as the CLI's reader does, so the
    statistics balance the same way. The counts go to READ_COUNTS_TAG as one
    ``stats.ReadCount`` per bundle and window (see ``_CurateFn``: not one per line)."""

    def start_bundle(self):
        self._counts = {}  # window -> [lines, blank]

    def process(self, element, window=beam.DoFn.WindowParam):
        line = _as_manifest_line(element)
        blank = line.problem is None and is_blank(line.data)
        counts = self._counts.get(window)
        if counts is None:
            counts = self._counts[window] = [0, 0]
        counts[0] += 1
        if blank:
            counts[1] += 1
        else:
            yield line

    def finish_bundle(self):
        for window, (lines, blank) in self._counts.items():
            counted = WindowedValue(ReadCount(lines, blank), window.max_timestamp(), (window,))
            yield beam.pvalue.TaggedOutput(READ_COUNTS_TAG, counted)
        self._counts = {}


def _split_training_lines(joined: bytes) -> list:
    return joined.split(b"\n")


class CuratedManifests(NamedTuple):
    entries: beam.PCollection  # output JSON lines (bytes), as the CLI writes them
    errors: beam.PCollection  # error record JSON lines (bytes): source, reason, raw line
    stats: beam.PCollection  # one dict: summary.json's totals (stats.RunStats.to_dict)
    train: beam.PCollection  # training lines (bytes), one per kept window, as in train-*.jsonl


class CurateManifests(beam.PTransform):
    """The library API: manifest lines with their source -> entries, errors,
    statistics and training lines.

    Input elements: ``(source, line)`` pairs, ``line`` as bytes or str without
    its newline (what ``beam.io.ReadFromTextWithFilename`` yields), or
    ``ManifestLine`` values (which also carry line numbers and byte offsets
    for error records). ``builder`` and ``overlap`` take NeMo Curator's stage
    parameter names (``configs/default.yaml``); missing keys keep the
    defaults. Every element counts as a line read; blank ones are counted and
    skipped, as in the CLI. ``training=False``: no training lines (``train``
    stays empty).
    """

    def __init__(
        self,
        builder: Optional[dict] = None,
        overlap: Optional[dict] = None,
        *,
        compact: bool = False,
        training: bool = True,
        params: Optional[CurationParams] = None,
    ):
        super().__init__()
        from alm_beam.core.params import make_params  # validates now: a bad key fails at once

        self._params = params if params is not None else make_params(builder, overlap)
        self._options = OutputOptions(compact=compact, training_manifest=training)

    def expand(self, lines):
        read = lines | "AsManifestLines" >> beam.ParDo(_CountLinesFn()).with_outputs(
            READ_COUNTS_TAG, main="lines"
        )
        bins = bins_for(self._params)
        curated = read.lines | "CurateEntries" >> CurateEntries(self._params, self._options, bins)
        stats = (
            (curated.stats, read[READ_COUNTS_TAG])
            | "WithReadCounts" >> beam.Flatten()
            | "AggregateStats" >> AggregateRunStats(bins)
            | "StatsAsDict" >> beam.Map(RunStats.to_dict)
        )
        train = curated.train | "TrainingLines" >> beam.FlatMap(_split_training_lines)
        return CuratedManifests(curated.entries, curated.errors, stats, train)
