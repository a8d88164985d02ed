"""The CLI's one results sink (beam/results_sink.py): every kind in its shards,
summary.json from every bundle's statistics, Beam's sink protocol kept (only
the bundles that succeeded count; a retried finalize changes nothing), and
the whole CLI graph in a handful of stages."""

import gzip
import json
import os

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from alm_beam.beam.pipeline import build_pipeline
from alm_beam.beam.results_sink import TEMP_PREFIX, ResultsSink, SummaryArgs
from alm_beam.config import build_config
from alm_beam.core.stats import DEFAULT_BINS, ReadCount, RunStats
from alm_beam.io.discovery import ReadRange

SUMMARY_ARGS = SummaryArgs(
    params={"builder": {}},
    config={"output": {}},
    inputs=("in.jsonl",),
    max_error_fraction=None,
    run_info={"runner": "test", "started_epoch_s": 1.0},
    skipped_inputs=(),
)


def _sink(out, *, num_shards=0, training=True, compression="none"):
    return ResultsSink(
        str(out),
        compression=compression,
        num_shards=num_shards,
        training=training,
        bins=DEFAULT_BINS,
        summary=SUMMARY_ARGS,
    )


def _read_stats(lines, blank):
    stats = RunStats(DEFAULT_BINS)
    stats.add_read_count(ReadCount(lines, blank))
    return stats


def _lines(out, prefix, opener=open):
    found = []
    for name in sorted(os.listdir(out)):
        if name.startswith(prefix + "-"):
            with opener(out / name, "rb") as fh:
                found += fh.read().splitlines()
    return found


def _write(out, elements, **kwargs):
    with TestPipeline() as p:
        names = p | beam.Create(elements, reshuffle=False) | beam.io.Write(_sink(out, **kwargs))
        assert_that(names | beam.Map(os.path.basename), equal_to(_expected_names(out, **kwargs)))


def _expected_names(out, *, num_shards=0, training=True, compression="none"):
    suffix = {"none": ".jsonl", "gzip": ".jsonl.gz"}[compression]
    count = max(1, num_shards)
    kinds = ("windows", "errors", "train") if training else ("windows", "errors")
    return [f"{k}-{i:05d}-of-{count:05d}{suffix}" for k in kinds for i in range(count)] + ["summary.json"]


ELEMENTS = [
    ("windows", b'{"w": 1}\n{"w": 2}'),  # a batch of two lines
    ("train", b'{"t": 1}'),
    ("windows", b'{"w": 3}'),
    ("errors", b'{"e": 1}'),
    ("stats", _read_stats(4, 0)),
    ("stats", _read_stats(3, 1)),
]


def test_every_kind_lands_in_its_own_shards_and_the_summary_sums_every_bundle(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, ELEMENTS)
    assert sorted(_lines(out, "windows")) == [b'{"w": 1}', b'{"w": 2}', b'{"w": 3}']
    assert _lines(out, "errors") == [b'{"e": 1}']
    assert _lines(out, "train") == [b'{"t": 1}']
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["lines_read"], summary["blank_lines"]) == (7, 1)
    assert summary["outputs"] == {
        "windows": ["windows-00000-of-00001.jsonl"],
        "errors": ["errors-00000-of-00001.jsonl"],
        "train": ["train-00000-of-00001.jsonl"],
    }
    assert summary["inputs"] == ["in.jsonl"] and summary["run"]["runner"] == "test"
    assert not [n for n in os.listdir(out) if n.startswith(TEMP_PREFIX)]  # the temporary directory went


def test_num_shards_gives_exactly_that_many_shards_of_every_kind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, ELEMENTS, num_shards=3)  # fewer lines of each kind than shards: empty ones pad
    assert sorted(_lines(out, "windows")) == [b'{"w": 1}', b'{"w": 2}', b'{"w": 3}']
    assert _lines(out, "errors") == [b'{"e": 1}']
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["train"] == [f"train-{i:05d}-of-00003.jsonl" for i in range(3)]
    assert summary["lines_read"] == 7


def test_no_training_manifest_writes_no_train_shard_and_no_output_still_one_empty_shard(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, [("stats", _read_stats(2, 2))], training=False)
    assert sorted(os.listdir(out)) == [
        "errors-00000-of-00001.jsonl",
        "summary.json",
        "windows-00000-of-00001.jsonl",
    ]
    assert (out / "windows-00000-of-00001.jsonl").read_bytes() == b""
    assert json.loads((out / "summary.json").read_text())["outputs"]["train"] == []


def test_gzip_shards_are_gzip_files_empty_ones_too(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, [("windows", b'{"w": 1}'), ("stats", _read_stats(1, 0))], compression="gzip")
    assert _lines(out, "windows", gzip.open) == [b'{"w": 1}']
    assert gzip.decompress((out / "errors-00000-of-00001.jsonl.gz").read_bytes()) == b""


def test_only_the_bundles_that_succeeded_count_and_a_retried_finalize_changes_nothing(tmp_path):
    """Beam's protocol, called as a runner calls it: a bundle that failed (its
    writer result never reaches finalize_write) leaves nothing in the result,
    and a finalize run twice (an engine's retry) gives the same files."""
    out = tmp_path / "out"
    out.mkdir()
    sink = _sink(out)
    temp_dir = sink.initialize_write()
    failed = sink.open_writer(temp_dir, "attempt-1")
    failed.write(("windows", b'{"lost": 1}'))
    failed.write(("stats", _read_stats(1, 0)))
    failed.close()  # its bundle failed: the runner never passes this result on
    retried = sink.open_writer(temp_dir, "attempt-2")
    retried.write(("windows", b'{"kept": 1}'))
    retried.write(("stats", _read_stats(1, 0)))
    results = [retried.close()]

    first = sink.finalize_write(temp_dir, results, sink.pre_finalize(temp_dir, results))
    assert _lines(out, "windows") == [b'{"kept": 1}']
    assert json.loads((out / "summary.json").read_text())["lines_read"] == 1
    again = sink.finalize_write(temp_dir, results, None)
    assert again == first
    assert _lines(out, "windows") == [b'{"kept": 1}']
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in first)


def _stage_count(cfg, units, tmp_path):
    p = beam.Pipeline()
    build_pipeline(p, cfg, units, ["m.jsonl"], reshuffle=False, run_info={}, write_dir=str(tmp_path))
    proto = p.to_runner_api()
    _, stages = fn_runner.FnApiRunner().create_stages(proto)
    return len(stages)


def test_the_cli_pipeline_is_a_handful_of_stages(tmp_path):
    """Every stage costs a round trip to every worker and more to build and fuse
    (about 30 ms each with two workers): the CLI's graph had 22 with a text
    sink per output and a combine for the statistics."""
    cfg = build_config({}, [])
    one = [(ReadRange(str(tmp_path / "m.jsonl"), 0, -1, False),)]
    two = one + [(ReadRange(str(tmp_path / "n.jsonl"), 0, -1, False),)]
    assert _stage_count(cfg, one, tmp_path) <= 5
    assert _stage_count(cfg, two, tmp_path) <= 6  # the units reshuffled: one stage more
