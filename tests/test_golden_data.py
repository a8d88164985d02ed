"""The repository's own test data (tests/data/): what it is and where it came from.

The golden outputs are NeMo Curator's (``pipelines/regen-golden.sh``); these
checks need no pipeline and no NeMo Curator. When the public copy of the
fixtures and golden files is beside the checkout (``../shared``, or
``ALM_BEAM_SHARED``), ours must agree with it, compared as its README says: a
multiset of parsed lines, ``manifest_filepath`` ignored.
"""

import collections
import hashlib
import json
import re

import pytest
from conftest import DATA, FIXTURES, GOLDEN, REPO, SHARED, canonical
from runner_helpers import GOLDEN_CASES
from test_golden import CASES

from alm_beam import run


def _summary(case: str, root=GOLDEN) -> dict:
    with open(root / f"{case}.summary.json", encoding="utf-8") as fh:
        return json.load(fh)


def _entries(path) -> collections.Counter:
    with open(path, encoding="utf-8") as fh:
        return collections.Counter(canonical(json.loads(line)) for line in fh if line.strip())


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _public(where: str):
    """The public copy's ``where`` folder, or a skip when it is not beside the checkout."""
    path = SHARED / where
    if not path.is_dir():
        pytest.skip(f"no public {where} at {path} to compare with (optional; ALM_BEAM_SHARED names it)")
    return path


def test_every_golden_case_has_its_files_and_nothing_else():
    names = sorted(p.name for p in GOLDEN.iterdir())
    assert names == sorted(f"{case}{ext}" for case in CASES for ext in (".jsonl", ".summary.json"))
    assert CASES == GOLDEN_CASES  # the runner tests (Prism, portable) run the same cases


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_summary_records_the_files_it_was_made_from(case):
    """Inputs and output by sha256: a fixture or golden file edited by hand is caught."""
    doc = _summary(case)
    assert doc["output_sha256"] == _sha256(GOLDEN / f"{case}.jsonl")
    assert doc["inputs"], case
    for item in doc["inputs"]:
        assert _sha256(DATA / item["path"]) == item["sha256"], item["path"]
    assert doc["summary"]["entries"] == sum(_entries(GOLDEN / f"{case}.jsonl").values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_golden_run_uses_the_parameters_nemo_curator_was_given(case):
    """test_golden.py's flags for a case configure alm_beam exactly as the stages were."""
    args = run.build_arg_parser().parse_args(["--output", "unused"] + CASES[case])
    params = run.resolve_config(args).params
    builder, overlap = params.builder, params.overlap
    ours = {
        "target_window_duration": builder.target_window_duration,
        "tolerance": builder.tolerance,
        "min_sample_rate": builder.min_sample_rate,
        "min_bandwidth": builder.min_bandwidth,
        "min_speakers": builder.min_speakers,
        "max_speakers": builder.max_speakers,
        "truncation": builder.truncation,
        "drop_fields": ",".join(builder.drop_fields),
        "drop_fields_top_level": ",".join(builder.drop_fields_top_level),
        "overlap_percentage": overlap.overlap_percentage,
        "target_duration": overlap.target_duration,
    }
    assert ours == _summary(case)["params"]


def test_golden_files_name_the_nemo_curator_that_made_them():
    """tests/data/README.md, every summary and pipelines/nemo-reference.sh agree on the version."""
    script = (REPO / "pipelines" / "nemo-reference.sh").read_text()
    [version] = re.findall(r"NEMO_CURATOR_VERSION:-([0-9.]+)\}", script)
    for case in CASES:
        doc = _summary(case)
        assert doc["nemo_curator"] == version, case
        assert doc["producer"] == f"NeMo Curator {version} ALMDataBuilderStage + ALMDataOverlapStage"
    assert f"NeMo Curator {version}" in (DATA / "README.md").read_text()


def test_fixtures_equal_the_public_ones():
    public = _public("fixtures")
    ours = {p.relative_to(FIXTURES): _sha256(p) for p in FIXTURES.rglob("*") if p.is_file()}
    theirs = {p.relative_to(public): _sha256(p) for p in public.rglob("*") if p.is_file()}
    assert ours == theirs


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_outputs_equal_the_public_ones(case):
    public = _public("golden")
    assert _entries(GOLDEN / f"{case}.jsonl") == _entries(public / f"{case}.jsonl")
    ours, theirs = _summary(case), _summary(case, public)
    assert ours["params"] == theirs["params"]
    # per_file_entries is keyed by where each producer kept its inputs
    ours_totals, theirs_totals = dict(ours["summary"]), dict(theirs["summary"])
    ours_files, theirs_files = ours_totals.pop("per_file_entries"), theirs_totals.pop("per_file_entries")
    assert ours_totals == theirs_totals
    assert list(ours_files.values()) == list(theirs_files.values())
    assert [i["sha256"] for i in ours["inputs"]] == [i["sha256"] for i in theirs["inputs"]]
