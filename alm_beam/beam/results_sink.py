"""The CLI's one Beam sink: every result file of a run, and summary.json last.

A run writes three kinds of JSONL shards (windows, errors, train) and
summary.json, whose totals come from the statistics of every bundle. Written
with Beam's text sink, that was four ``WriteToText``s and a ``CombineGlobally``:
20 stages on the FnApiRunner (21 with two work units), of which all but two
moved a handful of small elements, and each costs a round trip to every worker
(20 to 40 ms with two workers), more again to build the graph and to fuse it.
Here one ``iobase.Sink`` takes ``(kind, value)`` elements (``CurateAsResults``'
output) and the whole run is five stages (six); the files and their names are
the same.

The protocol is Beam's (``iobase.Write``), so every runner treats it as any
sink: a writer per bundle writes one temporary file per kind it is given and
merges the bundle's statistics; only the writer results of bundles that
succeeded reach ``finalize_write`` (a retried bundle's first files are left in
the temporary directory, which goes with the staging area). ``finalize_write``
pads each kind to its shard count with empty files, renames the temporary
files to their final names, then writes summary.json (through a temporary
name), so summary.json exists only once every shard does.
"""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple, Optional, Sequence

import orjson
from apache_beam.io import iobase
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from alm_beam.beam.transforms import ERRORS_TAG, STATS_TAG, TRAIN_TAG, WINDOWS_KIND
from alm_beam.core.stats import DurationBins, RunStats
from alm_beam.io.output_dir import SUMMARY_NAME, test_pause
from alm_beam.io.storage import allow_empty_objects
from alm_beam.results.summary import build_summary, finished_run_info

# The kinds of CurateAsResults' elements; the first three are the shards' prefixes.
WINDOWS, ERRORS, TRAIN = WINDOWS_KIND, ERRORS_TAG, TRAIN_TAG
STATS = STATS_TAG  # a partial RunStats: merged, never written as lines
SHARD_NAME = "{prefix}-{index:05d}-of-{count:05d}{suffix}"
# output.compression -> Beam's compression type and the JSONL shards' suffix
OUTPUT_CODECS = {
    "none": (CompressionTypes.UNCOMPRESSED, ".jsonl"),
    "gzip": (CompressionTypes.GZIP, ".jsonl.gz"),
    "zstd": (CompressionTypes.ZSTD, ".jsonl.zst"),
}
TEMP_PREFIX = "beam-temp-results-"


class WrittenBundle(NamedTuple):
    """One writer's result: its temporary files, and the statistics it was given."""

    files: tuple  # ((kind, temporary path), ...)
    stats: Optional[RunStats]


class SummaryArgs(NamedTuple):
    """What summary.json says beside the statistics and the file names."""

    params: dict
    config: dict
    inputs: tuple
    max_error_fraction: Optional[float]
    run_info: dict
    skipped_inputs: tuple


def summary_json(stats: RunStats, outputs: dict, args: SummaryArgs) -> bytes:
    """summary.json's bytes; ``outputs``: kind -> final file names."""
    doc = build_summary(
        stats,
        params=args.params,
        inputs=args.inputs,
        window_files=outputs[WINDOWS],
        error_files=outputs[ERRORS],
        train_files=outputs.get(TRAIN, ()),
        max_error_fraction=args.max_error_fraction,
        run_info=finished_run_info(args.run_info, time.time()),
        skipped_inputs=args.skipped_inputs,
        config=args.config,
        # The CLI checks the line balance and the error budget once the job has
        # ended (run._finish_staged_result): a check failing inside the job would
        # be retried by an engine's restart strategy, and a rerun Flink job fails
        # on its first attempt's files instead.
        check=False,
    )
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


class _ResultsWriter(iobase.Writer):
    """One bundle's files: one per kind it is given, opened at its first line."""

    def __init__(self, sink: "ResultsSink", temp_dir: str, uid: str):
        self._sink = sink
        self._stem = FileSystems.join(temp_dir, uid)
        self._handles: dict = {}  # kind -> writable file
        self._paths: list = []  # (kind, path)
        self._stats: Optional[RunStats] = None

    def write(self, element) -> None:
        kind, value = element
        handle = self._handles.get(kind)
        if handle is not None:
            handle.write(value)
            handle.write(b"\n")
        elif kind == STATS:
            if self._stats is None:
                self._stats = RunStats(self._sink.bins)
            self._stats.merge(value)
        else:
            path = f"{self._stem}.{kind}"
            handle = self._handles[kind] = self._sink.create(path)
            self._paths.append((kind, path))
            handle.write(value)
            handle.write(b"\n")

    def close(self) -> WrittenBundle:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}
        return WrittenBundle(tuple(self._paths), self._stats)


class ResultsSink(iobase.Sink):
    """windows-, errors- and train-*.jsonl shards and summary.json in ``write_dir``.

    ``num_shards``: 0 writes a shard per bundle (at least one per kind); N > 0
    exactly N per kind (Beam's ``Write`` then groups the elements into N
    writers). ``training``: whether train shards are written at all.
    """

    skip_if_empty = True  # Beam's padding would add writers: finalize_write pads per kind

    def __init__(
        self,
        write_dir: str,
        *,
        compression: str,
        num_shards: int,
        training: bool,
        bins: DurationBins,
        summary: SummaryArgs,
    ):
        super().__init__()
        self.write_dir = write_dir
        self.compression = compression
        self.num_shards = num_shards
        self.kinds = (WINDOWS, ERRORS, TRAIN) if training else (WINDOWS, ERRORS)
        self.bins = bins
        self.summary = summary

    def display_data(self):
        return {"write_dir": self.write_dir, "compression": self.compression}

    def create(self, path: str):
        """A new file at ``path``, compressed as ``output.compression`` says."""
        return FileSystems.create(path, "application/octet-stream", OUTPUT_CODECS[self.compression][0])

    def initialize_write(self) -> str:
        temp_dir = FileSystems.join(self.write_dir, TEMP_PREFIX + uuid.uuid4().hex)
        FileSystems.mkdirs(temp_dir)
        return temp_dir

    def open_writer(self, init_result: str, uid: str) -> _ResultsWriter:
        allow_empty_objects()  # an S3 object may be an empty shard's (storage.py)
        return _ResultsWriter(self, init_result, uid)

    def pre_finalize(self, init_result, writer_results):
        return None

    def finalize_write(self, init_result: str, writer_results, pre_finalize_result) -> list:
        allow_empty_objects()
        temp_dir = init_result
        stats = RunStats(self.bins)
        temps: dict = {kind: [] for kind in self.kinds}
        for written in writer_results:
            for kind, path in written.files:
                temps[kind].append(path)
            if written.stats is not None:
                stats.merge(written.stats)
        suffix = OUTPUT_CODECS[self.compression][1]
        sources, targets, outputs = [], [], {}
        for kind, paths in temps.items():
            paths.sort()
            for extra in range(max(1, self.num_shards) - len(paths)):
                empty = FileSystems.join(temp_dir, f"empty-{extra}.{kind}")
                self.create(empty).close()
                paths.append(empty)
            names = [
                SHARD_NAME.format(prefix=kind, index=i, count=len(paths), suffix=suffix)
                for i in range(len(paths))
            ]
            outputs[kind] = names
            sources += paths
            targets += [FileSystems.join(self.write_dir, name) for name in names]
        _rename_once(sources, targets)
        test_pause("summary")  # every shard has its final name (tests kill the run here)
        temp_summary = FileSystems.join(temp_dir, SUMMARY_NAME)
        with self.create_plain(temp_summary) as fh:
            fh.write(summary_json(stats, outputs, self.summary))
        summary_path = FileSystems.join(self.write_dir, SUMMARY_NAME)
        FileSystems.rename([temp_summary], [summary_path])
        try:
            FileSystems.delete([temp_dir])
        except Exception:  # noqa: BLE001 - a leftover goes with the staging area at the commit
            pass
        return targets + [summary_path]

    @staticmethod
    def create_plain(path: str):
        return FileSystems.create(path, "application/json", CompressionTypes.UNCOMPRESSED)


def _rename_once(sources: Sequence[str], targets: Sequence[str]) -> None:
    """Rename each temporary file to its final name; a pair already renamed (a
    retried finalize) is left as it is."""
    todo_src, todo_dst = [], []
    for src, dst in zip(sources, targets):
        if not FileSystems.exists(src) and FileSystems.exists(dst):
            continue
        todo_src.append(src)
        todo_dst.append(dst)
    if todo_src:
        FileSystems.rename(todo_src, todo_dst)
