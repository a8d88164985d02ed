"""The pipeline graph, and nothing else: read -> curate -> write (the summary last).

Called with everything already validated and discovered (see ``run.py``);
building the graph has no side effects.
"""

from __future__ import annotations

from typing import Optional, Sequence

import apache_beam as beam

from alm_beam.beam.results_sink import ResultsSink, SummaryArgs
from alm_beam.beam.transforms import (
    ERRORS_TAG,
    TRAIN_TAG,
    WINDOWS_KIND,
    CurateAsResults,
    ReadManifestLines,
    bins_for,
)
from alm_beam.config import RunConfig
from alm_beam.core.curate import OutputOptions
from alm_beam.io.discovery import ReadRange

WINDOWS_PREFIX = WINDOWS_KIND  # the shards' names: windows-*, errors-*, train-*
ERRORS_PREFIX = ERRORS_TAG
TRAIN_PREFIX = TRAIN_TAG


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
        units,
        reshuffle,
        max_line_bytes=cfg.input.max_line_bytes,
        progress_dir=progress_dir,
        counts_with_lines=True,
    )
    # One stage reads, curates and writes; the results sink then finalizes
    # every shard and writes summary.json (results_sink.py: five stages in all, six with two work units).
    # The reader's per-range counts travel with the statistics, so the summary
    # can show that every line read was written, rejected or blank. report.html
    # is rendered from summary.json alone by the CLI's commit step (run.py).
    sink = ResultsSink(
        write_dir,
        compression=cfg.output.compression,
        num_shards=cfg.output.num_shards,
        training=cfg.output.training_manifest,
        bins=bins_for(cfg.params),
        summary=SummaryArgs(
            params=cfg.params.as_dict(),
            config=recorded_config(cfg),
            inputs=tuple(inputs),
            max_error_fraction=cfg.input.max_error_fraction,
            run_info=run_info,
            skipped_inputs=tuple(skipped_inputs),
        ),
    )
    _ = (
        read.lines
        | "CurateEntries" >> CurateAsResults(cfg.params, options, sink.bins)
        | "WriteResults" >> beam.io.Write(sink)
    )
