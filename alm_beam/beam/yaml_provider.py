"""alm_beam's transforms for Beam YAML (``pipelines/alm.yaml``, docs/yaml.md).

Beam YAML's inline python provider builds each transform from its YAML
``config`` by keyword, so these constructors take plain YAML values and no
string annotations (Beam derives the config schema from the signature).

- ``ReadAlmManifests``: a path (file, directory or glob, any Beam filesystem)
  -> outputs ``lines`` and ``counts`` (per-range line counts); the files are found when the pipeline runs,
  by the same
  discovery as the CLI's.
- ``CurateAlmManifests``: inputs ``lines`` and ``counts`` -> outputs ``entries``, ``errors``, ``stats``
  (``transforms.CurateManifests``; ``builder``/``overlap`` as in
  configs/default.yaml).
- ``WriteAlmOutput``: the outputs -> ``windows-*.jsonl``, ``train-*.jsonl``,
  ``errors-*.jsonl`` and, once both are final, ``summary.json``.

The job's paths are data: pipelines/alm.yaml quotes its Jinja variables as
JSON (``{{ input | tojson }}``), so whatever string is given arrives here as
that exact path. Beam YAML has no step before the pipeline, so the paths are
checked when the job is built: a missing input or an output that cannot be
written stops the launcher with one line, ``alm_beam: error: ...``, exit 2
(a traceback otherwise, once the pipeline already runs).
"""

import os
import re
import sys
from typing import Any, Optional

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList

from alm_beam.beam.transforms import (
    READ_COUNTS_TAG,
    AggregateRunStats,
    CurateEntries,
    CurateManifests,
    _ReadRangeFn,
    bins_for,
)
from alm_beam.core.curate import OutputOptions
from alm_beam.core.display import terminal_safe
from alm_beam.io.discovery import DiscoveryError, discover, plan_ranges
from alm_beam.io.preflight import PreflightError, preflight_output
from alm_beam.io.storage import LineCoder
from alm_beam.results.summary import build_summary

WINDOWS_PREFIX = "windows"  # the CLI's names (pipeline.py)
ERRORS_PREFIX = "errors"
SUMMARY_NAME = "summary.json"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


USAGE = """needs --jinja_variables '{"input": PATH, "output": DIR}'"""
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _stop(message: str) -> None:
    """The job cannot run as given: one line and exit 2, as the CLI's checks
    (a SystemExit passes Beam YAML's error wrapping and its pipeline's exit)."""
    print(terminal_safe(f"alm_beam: error: pipelines/alm.yaml: {message}"), file=sys.stderr)
    raise SystemExit(2)


def _job_path(value: Any, variable: str) -> str:
    """``value`` (a Jinja variable, JSON-quoted into the YAML) as a path, or one line.

    YAML reads a JSON ``\\ud83d\\ude00`` as two lone surrogates: they are
    joined back into the character the variable held.
    """
    if value is None:
        _stop(f"{USAGE} (no {variable})")
    if not isinstance(value, str) or not value:
        _stop(f"{variable} must be a path (a string), not {_json_text(value)}")
    return _SURROGATE_PAIR.sub(lambda m: m.group().encode("utf-16", "surrogatepass").decode("utf-16"), value)


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=str).decode("utf-8")[:60]


def _as_job_message(exc: Exception) -> str:
    """A discovery or preflight message in the job's terms (its variables are
    ``input`` and ``output``, not the CLI's flags)."""
    text = str(exc)
    for flag in ("--input ", "--output "):
        if text.startswith(flag):
            text = text[2:]
    return text.replace("choose another --output", "choose another output")


def _check_name_lengths(path: str) -> None:
    """A local ``path`` whose names the filesystem cannot hold: one line now,
    not the sinks' traceback once the pipeline runs."""
    if "://" in path:
        return
    existing = os.path.abspath(path)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for name in path.split("/"):
        if len(os.fsencode(name)) > limit:
            _stop(f"output {path!r}: a name in it is longer than {limit} bytes; choose another output")


def _plan(path, split_mb):
    return plan_ranges(discover([path]), int(split_mb * (1 << 20)))


class ReadAlmManifests(beam.PTransform):
    """Manifest lines under ``path`` (discovered and split into byte ranges at run time)."""

    def __init__(self, path: str, split_mb: float = 64.0):
        super().__init__()
        self._path = _job_path(path, "input")
        self._split_mb = split_mb

    def expand(self, pbegin):
        try:  # the job's only check before the pipeline (see the module docstring)
            discover([self._path])
        except DiscoveryError as exc:
            _stop(_as_job_message(exc))
        read = (
            pbegin
            | "Path" >> beam.Create([self._path])
            | "PlanRanges" >> beam.FlatMap(_plan, self._split_mb)
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(_ReadRangeFn()).with_outputs(READ_COUNTS_TAG, main="lines")
        )
        # counts: the reader's per-range line counts, which the summary checks
        # against what curation wrote and rejected (as in the CLI).
        return {"lines": read.lines, "counts": read[READ_COUNTS_TAG]}


class CurateAlmManifests(beam.PTransform):
    """``transforms.CurateManifests`` with its parameters as YAML config."""

    def __init__(self, builder: Optional[dict] = None, overlap: Optional[dict] = None, compact: bool = False):
        super().__init__()
        self._curate = CurateManifests(builder, overlap, compact=compact)
        self._params = self._curate._params
        self._compact = compact

    def expand(self, inputs):
        """``inputs``: ReadAlmManifests' {lines, counts}, or a PCollection of lines."""
        if not isinstance(inputs, dict):
            out = inputs | "Curate" >> self._curate
            return {"entries": out.entries, "errors": out.errors, "stats": out.stats}
        bins = bins_for(self._params)
        curated = inputs["lines"] | "CurateEntries" >> CurateEntries(
            self._params, OutputOptions(compact=self._compact, training_manifest=True), bins
        )
        stats = (
            (curated.stats, inputs["counts"])
            | "CollectStats" >> beam.Flatten()
            | "AggregateStats" >> AggregateRunStats(bins)
        )
        # stats: one stats.RunStats (WriteAlmOutput builds summary.json from it)
        return {"entries": curated.entries, "errors": curated.errors, "stats": stats, "train": curated.train}


def _summary_json(stats, *, window_files, error_files, train_files, inputs, params) -> bytes:
    doc = build_summary(
        stats,
        params=params,
        inputs=inputs,
        window_files=window_files,
        error_files=error_files,
        train_files=train_files,
        max_error_fraction=None,
        run_info={
            "alm_beam": __import__("alm_beam").__version__,
            "apache_beam": beam.__version__,
            "job": "Beam YAML",
        },
    )
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


class WriteAlmOutput(beam.PTransform):
    """entries, errors and stats (named inputs) -> the CLI's output files under ``path``.

    ``params`` is echoed into summary.json (pass the same builder/overlap
    config as CurateAlmManifests; the defaults when omitted).
    """

    def __init__(
        self,
        path: str,
        num_shards: int = 0,
        builder: Optional[dict] = None,
        overlap: Optional[dict] = None,
        inputs: Optional[Any] = None,
    ):
        super().__init__()
        from alm_beam.core.params import make_params

        self._path = _job_path(path, "output")
        try:
            preflight_output(self._path)
        except PreflightError as exc:
            _stop(_as_job_message(exc))
        _check_name_lengths(self._path)
        self._num_shards = num_shards
        self._params = make_params(builder, overlap).as_dict()
        if isinstance(inputs, str):
            inputs = _job_path(inputs, "input")
        self._inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])

    def expand(self, pcolls):
        join = FileSystems.join
        window_files = pcolls["entries"] | "WriteWindows" >> beam.io.WriteToText(
            join(self._path, WINDOWS_PREFIX),
            file_name_suffix=".jsonl",
            num_shards=self._num_shards,
            shard_name_template=SHARD_TEMPLATE,
            coder=LineCoder(),
        )
        error_files = pcolls["errors"] | "WriteErrors" >> beam.io.WriteToText(
            join(self._path, ERRORS_PREFIX),
            file_name_suffix=".jsonl",
            num_shards=self._num_shards,
            shard_name_template=SHARD_TEMPLATE,
            coder=LineCoder(),
        )
        train_files = []  # the training manifest, when the job wires CurateAlmManifests.train
        if "train" in pcolls:
            train_files = AsList(
                pcolls["train"]
                | "WriteTraining"
                >> beam.io.WriteToText(
                    join(self._path, "train"),
                    file_name_suffix=".jsonl",
                    num_shards=self._num_shards,
                    shard_name_template=SHARD_TEMPLATE,
                    coder=LineCoder(),
                )
            )
        return (
            pcolls["stats"]
            | "BuildSummary"
            >> beam.Map(
                _summary_json,
                window_files=AsList(window_files),
                error_files=AsList(error_files),
                train_files=train_files,
                inputs=self._inputs,
                params=self._params,
            )
            | "WriteSummary"
            >> beam.io.WriteToText(
                join(self._path, SUMMARY_NAME), num_shards=1, shard_name_template="", coder=LineCoder()
            )
        )
