"""The pipeline graph, and nothing else: read -> curate -> write -> summarize.

Called with everything already validated and discovered (see ``run.py``);
building the graph has no side effects.
"""

from __future__ import annotations

from typing import Sequence

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList

from alm_beam.config import RunConfig
from alm_beam.curate import OutputOptions
from alm_beam.discovery import ReadRange
from alm_beam.summary import build_summary
from alm_beam.transforms import AggregateRunStats, CurateEntries, ReadManifestLines

WINDOWS_PREFIX = "windows"
ERRORS_PREFIX = "errors"
TRAIN_PREFIX = "train"
SUMMARY_NAME = "summary.json"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


def _summary_line(stats, *, window_files, error_files, params, inputs, max_error_fraction,
                  run_info, train_files=()) -> bytes:
    doc = build_summary(stats, params=params, inputs=inputs, window_files=window_files,
                        error_files=error_files, max_error_fraction=max_error_fraction,
                        run_info=run_info, train_files=train_files)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def build_pipeline(p: beam.Pipeline, cfg: RunConfig, units: Sequence[tuple[ReadRange, ...]],
                   inputs: Sequence[str], *, reshuffle: bool, run_info: dict) -> None:
    out_dir = cfg.output.path
    options = OutputOptions(compact=cfg.output.compact, max_raw_chars=cfg.output.max_raw_chars,
                            training_manifest=cfg.output.training_manifest)

    read = p | "ReadManifests" >> ReadManifestLines(
        units, reshuffle, max_line_bytes=cfg.input.max_line_bytes)
    curated = read.lines | "CurateEntries" >> CurateEntries(cfg.params, options)

    window_files = curated.entries | "WriteWindows" >> beam.io.WriteToText(
        FileSystems.join(out_dir, WINDOWS_PREFIX), file_name_suffix=".jsonl",
        num_shards=cfg.output.num_shards, shard_name_template=SHARD_TEMPLATE)
    error_files = curated.errors | "WriteErrors" >> beam.io.WriteToText(
        FileSystems.join(out_dir, ERRORS_PREFIX), file_name_suffix=".jsonl",
        num_shards=cfg.output.num_shards, shard_name_template=SHARD_TEMPLATE)
    train_files = []  # output.training_manifest: false writes no train shards
    if cfg.output.training_manifest:
        train_files = AsList(curated.train | "WriteTraining" >> beam.io.WriteToText(
            FileSystems.join(out_dir, TRAIN_PREFIX), file_name_suffix=".jsonl",
            num_shards=cfg.output.num_shards, shard_name_template=SHARD_TEMPLATE))

    # summary.json is written last: its step waits on the final names of all
    # result sinks (side inputs), so it only exists once the shards are final.
    # The reader's per-range counts travel with the entry records, so the
    # summary step can check that every line read was written, rejected or blank.
    _ = ((curated.stats, read.counts)
         | "CollectStats" >> beam.Flatten()
         | "AggregateStats" >> AggregateRunStats()
         | "BuildSummary" >> beam.Map(
             _summary_line, window_files=AsList(window_files),
             error_files=AsList(error_files), train_files=train_files,
             params=cfg.params.as_dict(),
             inputs=list(inputs), max_error_fraction=cfg.input.max_error_fraction,
             run_info=run_info)
         | "WriteSummary" >> beam.io.WriteToText(
             FileSystems.join(out_dir, SUMMARY_NAME), num_shards=1, shard_name_template=""))
