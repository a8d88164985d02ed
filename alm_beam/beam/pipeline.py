"""The pipeline graph, and nothing else: read -> curate -> write -> summarize.

Called with everything already validated and discovered (see ``run.py``);
building the graph has no side effects.
"""

from __future__ import annotations

from typing import Optional, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList

from alm_beam.beam.transforms import AggregateRunStats, CurateEntries, ReadManifestLines, bins_for
from alm_beam.config import RunConfig
from alm_beam.core.curate import OutputOptions
from alm_beam.io.discovery import ReadRange
from alm_beam.io.output_dir import SUMMARY_NAME, test_pause
from alm_beam.io.storage import LineCoder
from alm_beam.results.summary import build_summary, finished_run_info

WINDOWS_PREFIX = "windows"
ERRORS_PREFIX = "errors"
TRAIN_PREFIX = "train"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
# output.compression -> Beam's compression type and the JSONL shards' suffix
OUTPUT_CODECS = {
    "none": (CompressionTypes.UNCOMPRESSED, ".jsonl"),
    "gzip": (CompressionTypes.GZIP, ".jsonl.gz"),
    "zstd": (CompressionTypes.ZSTD, ".jsonl.zst"),
}


def recorded_config(cfg: RunConfig) -> dict:
    """summary.json's ``config``: every input and output setting that shapes what
    is written, so a consumer can tell which output it holds (builder and overlap
    are ``params``). Not recorded: ``output.path`` (where the summary lies),
    ``output.overwrite`` (changes nothing written) and Beam's pipeline options
    (they may hold credentials; the runner is ``run.runner``)."""
    return {
        "input": {
            "paths": list(cfg.input.paths),
            "split_mb": cfg.input.split_mb,
            "reshuffle": cfg.input.reshuffle,
            "max_error_fraction": cfg.input.max_error_fraction,
            "max_line_mb": cfg.input.max_line_mb,
        },
        "output": {
            "compact": cfg.output.compact,
            "training_manifest": cfg.output.training_manifest,
            "num_shards": cfg.output.num_shards,
            "compression": cfg.output.compression,
            "max_raw_chars": cfg.output.max_raw_chars,
        },
    }


def _jsonl_sink(write_dir: str, prefix: str, cfg: RunConfig) -> beam.io.WriteToText:
    """Beam's text sink for one JSONL output, compressed as ``output.compression`` says."""
    compression, suffix = OUTPUT_CODECS[cfg.output.compression]
    return beam.io.WriteToText(
        FileSystems.join(write_dir, prefix),
        file_name_suffix=suffix,
        compression_type=compression,
        num_shards=cfg.output.num_shards,
        shard_name_template=SHARD_TEMPLATE,
        coder=LineCoder(),
    )


def _summary_line(
    stats,
    *,
    window_files,
    error_files,
    params,
    inputs,
    max_error_fraction,
    run_info,
    skipped_inputs=(),
    train_files=(),
    config=None,
) -> bytes:
    import time

    test_pause("summary")  # both result sinks have finalized (tests kill the run here)
    doc = build_summary(
        stats,
        params=params,
        inputs=inputs,
        window_files=window_files,
        error_files=error_files,
        max_error_fraction=max_error_fraction,
        run_info=finished_run_info(run_info, time.time()),
        skipped_inputs=skipped_inputs,
        train_files=train_files,
        config=config,
        # The CLI checks the line balance and the error budget once the job has
        # ended (run._finish_staged_result): a check failing inside the job would
        # be retried by an engine's restart strategy, and a rerun Flink job fails
        # on its first attempt's files instead.
        check=False,
    )
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def build_pipeline(
    p: beam.Pipeline,
    cfg: RunConfig,
    units: Sequence[tuple[ReadRange, ...]],
    inputs: Sequence[str],
    *,
    reshuffle: bool,
    run_info: dict,
    write_dir: str,
    progress_dir: Optional[str] = None,
    skipped_inputs: Sequence[dict] = (),
) -> None:
    """``write_dir`` is the run's staging area (``output_dir.OutputRun.staging``):
    final names appear in the output directory only at the commit after the run.
    ``skipped_inputs``: discovery's paths not read, as {path, reason} dicts."""
    options = OutputOptions(
        compact=cfg.output.compact,
        max_raw_chars=cfg.output.max_raw_chars,
        training_manifest=cfg.output.training_manifest,
        max_line_bytes=cfg.input.max_line_bytes,  # output lines the reader takes back
    )

    read = p | "ReadManifests" >> ReadManifestLines(
        units, reshuffle, max_line_bytes=cfg.input.max_line_bytes, progress_dir=progress_dir
    )
    bins = bins_for(cfg.params)
    # batch_lines: the sinks write newline-joined batches of lines (same files)
    curated = read.lines | "CurateEntries" >> CurateEntries(cfg.params, options, bins, batch_lines=True)

    window_files = curated.entries | "WriteWindows" >> _jsonl_sink(write_dir, WINDOWS_PREFIX, cfg)
    error_files = curated.errors | "WriteErrors" >> _jsonl_sink(write_dir, ERRORS_PREFIX, cfg)
    train_files = []  # output.training_manifest: false writes no train shards
    if cfg.output.training_manifest:
        train_files = AsList(curated.train | "WriteTraining" >> _jsonl_sink(write_dir, TRAIN_PREFIX, cfg))

    # summary.json is written last: its step waits on the finalized names of the
    # result sinks (side inputs), so it only exists once they are complete. The
    # reader's per-range counts travel with the statistics, so the summary can
    # show that every line read was written, rejected or blank. report.html is
    # rendered from summary.json alone by the CLI's commit step (run.py), once
    # the job has ended: in the job it took a sink and three more stages.
    _ = (
        (curated.stats, read.counts)
        | "CollectStats" >> beam.Flatten()
        | "AggregateStats" >> AggregateRunStats(bins)
        | "BuildSummary"
        >> beam.Map(
            _summary_line,
            window_files=AsList(window_files),
            error_files=AsList(error_files),
            train_files=train_files,
            params=cfg.params.as_dict(),
            config=recorded_config(cfg),
            inputs=list(inputs),
            max_error_fraction=cfg.input.max_error_fraction,
            run_info=run_info,
            skipped_inputs=list(skipped_inputs),
        )
        | "WriteSummary"
        >> beam.io.WriteToText(
            FileSystems.join(write_dir, SUMMARY_NAME), num_shards=1, shard_name_template="", coder=LineCoder()
        )
    )
