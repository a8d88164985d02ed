"""The library API: ``from alm_beam import CurateManifests`` in someone else's pipeline."""

import collections
import json
import subprocess
import sys

import pytest
from conftest import FIXTURES, GOLDEN, REPO, beam_test_pipeline, canonical


def test_import_alm_beam_does_not_import_beam():
    """The CLI imports alm_beam before Beam for start-up speed; CurateManifests is lazy."""
    code = (
        "import sys, alm_beam; assert 'apache_beam' not in sys.modules, 'eager'; "
        "from alm_beam import CurateManifests; assert 'apache_beam' in sys.modules; "
        "print(CurateManifests.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "alm_beam.beam.transforms"


def test_unknown_attribute_is_an_attribute_error():
    import alm_beam

    with pytest.raises(AttributeError):
        alm_beam.NoSuchThing  # noqa: B018


def _golden(case):
    with open(GOLDEN / f"{case}.jsonl", encoding="utf-8") as fh:
        return sorted(canonical(json.loads(x)) for x in fh if x.strip())


def _canonical_line(line: bytes) -> str:
    return canonical(json.loads(line))


@pytest.mark.e2e
def test_curate_manifests_matches_golden_with_errors_and_stats():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from alm_beam import CurateManifests

    source = str(FIXTURES / "sample_input.jsonl")
    raw = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()
    # str and bytes lines, a blank line (skipped, as in the CLI) and one broken line
    elements = (
        [(source, line.decode("utf-8")) for line in raw[:2]]
        + [(source, line) for line in raw[2:]]
        + [(source, b""), ("other.jsonl", b"{oops")]
    )
    with open(GOLDEN / "sample_spk2to3.summary.json", encoding="utf-8") as fh:
        expected = json.load(fh)["summary"]

    def check_stats(found):
        [stats] = found
        assert (stats["entries_read"], stats["entries_written"], stats["entries_failed"]) == (
            expected["entries"] + 1,
            expected["entries"],
            1,
        )
        assert stats["errors_by_reason"] == {"invalid_json": 1}
        for key in ("windows", "filtered_windows", "truncation_events"):
            assert stats[key] == expected[key], key

    def check_errors(found):
        [record] = [json.loads(x) for x in found]
        assert record["manifest_filepath"] == "other.jsonl"
        assert record["raw"] == "{oops"

    with beam_test_pipeline() as p:
        curated = p | beam.Create(elements) | CurateManifests(builder={"max_speakers": 3})
        assert_that(
            curated.entries | beam.Map(_canonical_line), equal_to(_golden("sample_spk2to3")), label="entries"
        )
        assert_that(curated.errors, check_errors, label="errors")
        assert_that(curated.stats, check_stats, label="stats")


def _read_outputs(out_dir, prefix: str) -> list:
    """Every line (bytes) of a CLI run's ``prefix`` shards."""
    return [
        line for path in sorted(out_dir.glob(f"{prefix}-*.jsonl")) for line in path.read_bytes().splitlines()
    ]


@pytest.mark.e2e
def test_library_stats_entries_and_training_lines_equal_the_cli_run(tmp_path):
    """The same manifest through the CLI and through CurateManifests: read as
    docs/library.md reads it, the stats dict equals summary.json's totals (lines
    read and blank lines included) and the entries and error records are the
    CLI's; given as ManifestLines with their line numbers and byte offsets
    (which training lines carry), the training lines are the CLI's too."""
    import apache_beam as beam
    from apache_beam.coders import BytesCoder
    from apache_beam.testing.util import assert_that, equal_to

    from alm_beam import CurateManifests, ManifestLine
    from alm_beam.run import main

    raw = [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]
    manifest = tmp_path / "m.jsonl"
    # entries, an empty and a whitespace-only line (blank), a broken line, no final newline
    lines = raw[:2] + [b"", b" \t", b"{oops"] + raw[2:]
    manifest.write_bytes(b"\n".join(lines))
    out = tmp_path / "cli"
    assert main(["--input", str(manifest), "--output", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["lines_read"], summary["blank_lines"]) == (len(lines), 2)  # the input as written
    offsets = [sum(len(x) + 1 for x in lines[:n]) for n in range(len(lines))]
    numbered = [ManifestLine(str(manifest), x, n + 1, offsets[n]) for n, x in enumerate(lines)]

    def equals_the_summary(found):
        [stats] = found
        assert stats == {key: summary[key] for key in stats}
        assert {"lines_read", "blank_lines", "entries_read", "windows", "stats"} <= set(stats)

    with beam_test_pipeline() as p:
        read = p | beam.io.ReadFromTextWithFilename(str(manifest), coder=BytesCoder())
        curated = read | "AsRead" >> CurateManifests()
        assert_that(curated.stats, equals_the_summary, label="stats")
        assert_that(curated.entries, equal_to(_read_outputs(out, "windows")), label="entries")
        errors = curated.errors | beam.Map(lambda line: json.loads(line)["raw"])
        assert_that(errors, equal_to(["{oops"]), label="errors")
        with_lines = p | "Numbered" >> beam.Create(numbered) | "WithLineNumbers" >> CurateManifests()
        assert_that(with_lines.train, equal_to(_read_outputs(out, "train")), label="train")
        assert_that(with_lines.stats, equals_the_summary, label="numbered stats")


@pytest.mark.e2e
def test_training_lines_can_be_left_out():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to, is_not_empty

    from alm_beam import CurateManifests

    source = str(FIXTURES / "sample_input.jsonl")
    elements = [(source, line) for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()]
    with beam_test_pipeline() as p:
        lines = p | beam.Create(elements)
        assert_that((lines | "With" >> CurateManifests()).train, is_not_empty(), label="with")
        without = lines | "Without" >> CurateManifests(training=False)
        assert_that(without.train, equal_to([]), label="without")


def test_bad_parameter_fails_when_the_transform_is_made():
    from alm_beam import CurateManifests
    from alm_beam.core.params import ConfigError

    with pytest.raises(ConfigError, match="min_speakers"):
        CurateManifests(builder={"min_speakers": 6, "max_speakers": 5})


@pytest.mark.e2e
def test_library_example_runs(tmp_path):
    """docs/library.md's example, run as a user would, equals the golden case."""
    out = tmp_path / "curated"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "pipelines" / "library_example.py"),
            "--input",
            str(FIXTURES / "nested_manifests" / "*" / "*.jsonl"),
            "--output",
            str(out),
            "--runner",
            "apache_beam.runners.portability.fn_api_runner.FnApiRunner",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    windows = [
        json.loads(x)
        for f in sorted(tmp_path.glob("curated-windows*.jsonl"))
        for x in f.read_text().splitlines()
        if x.strip()
    ]
    assert collections.Counter(map(canonical, windows)) == collections.Counter(_golden("nested_default"))
    assert [x for f in tmp_path.glob("curated-errors*.jsonl") for x in f.read_text().splitlines()] == []
    stats = json.loads((tmp_path / "curated-stats.json").read_text())
    assert stats["entries_written"] == len(windows) and stats["entries_failed"] == 0
    assert (stats["lines_read"], stats["blank_lines"]) == (len(windows), 0)  # 4 manifests of 5 lines
    train = [
        json.loads(x)
        for f in sorted(tmp_path.glob("curated-train*.jsonl"))
        for x in f.read_text().splitlines()
        if x.strip()
    ]
    # one training line per kept window of the golden output
    assert len(train) == stats["filtered_windows"] == sum(len(e["filtered_windows"]) for e in windows)
    assert collections.Counter((t["audio_filepath"], t["offset"]) for t in train) == collections.Counter(
        (e["audio_filepath"], w["segments"][0]["start"]) for e in windows for w in e["filtered_windows"]
    )
