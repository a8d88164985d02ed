"""Shared test helpers: where the fixtures and golden outputs live.

The repository carries both (tests/data/, see its README.md): the fixtures
are NeMo Curator's public test manifests, the golden outputs what NeMo
Curator's own ALM stages make of them (``pipelines/regen-golden.sh``). A fresh
clone needs nothing else. The public copy in ``../shared`` (``ALM_BEAM_SHARED``
overrides), when present, is only compared with ours (tests/test_golden_data.py).
"""

import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
FIXTURES = DATA / "fixtures"
GOLDEN = DATA / "golden"
SHARED = pathlib.Path(os.environ.get("ALM_BEAM_SHARED", REPO.parent / "shared"))


def canonical(entry: dict) -> str:
    """Order-free, exact comparison key (floats by repr), ignoring manifest_filepath."""
    entry = dict(entry)
    entry.pop("manifest_filepath", None)
    return json.dumps(entry, sort_keys=True)


def beam_test_pipeline():
    """TestPipeline on Beam's FnApiRunner: the DirectRunner would first try to
    download a Prism binary, which this project never relies on."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

    return BeamTestPipeline(runner=FnApiRunner())


def processes_mentioning(marker: bytes) -> list:
    """Live processes whose command line contains ``marker`` (a forked SDK
    worker carries its runner's command line, a spawned one alm_beam's worker
    module): what a test looks for to prove a run left no worker behind."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


# CI sets ALM_BEAM_REQUIRE_ALL=1: a test that needs an external part (a Prism
# binary, an S3 server, a browser, a Flink/Spark distribution) must then run,
# not skip. On a developer's machine without that part it is skipped, with
# the reason and the command that provides it.
REQUIRE_ALL = os.environ.get("ALM_BEAM_REQUIRE_ALL") == "1"


def require_or_skip(available: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when an external part is missing."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"ALM_BEAM_REQUIRE_ALL=1 but {reason}")
    pytest.skip(reason)
