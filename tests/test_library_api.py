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
