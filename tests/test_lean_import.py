"""A run imports Beam without pandas and pymongo; as the whole process also
without pyarrow, and on the DirectRunner with local locations without boto3
and requests (issue 20, item 3: the fixed cost).

Beam imports pandas whenever it is installed, only to register pandas type
hints and CSV transforms that alm_beam's pipeline never uses (0.2 to 0.45 s of
every run), and pymongo for its MongoDB connector (0.1 to 0.15 s).
``lean_import.unused_modules_hidden_from_beam`` hides them during the
command; these cases check that a whole run does without it, with every output
written, and that a library caller's process is left as it was. No timing is
asserted (docs/performance.md has the measured times).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# main() in a fresh interpreter; then what it left in sys.modules.
PROBE = """
import json, sys
PRELOAD
from alm_beam import run
code = run.main(sys.argv[1:])
after = {"beam": "apache_beam" in sys.modules, "pandas": "pandas" in sys.modules,
         "hidden": "pandas" in sys.modules and sys.modules["pandas"] is None,
         "pymongo": "pymongo" in sys.modules, "bson": "bson" in sys.modules}
import pandas  # a library caller's own import still works afterwards
after["pandas_usable"] = hasattr(pandas, "DataFrame")
print(json.dumps({"code": code, **after}))
"""


def probe(tmp_path, args, preload=""):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.replace("PRELOAD", preload), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_imports_beam_without_pandas_and_leaves_it_importable(tmp_path, workers):
    args = ["--output", "out", "--quiet"]
    if workers > 1:
        args += ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    result = probe(tmp_path, args)
    assert result == {
        "code": 0,
        "beam": True,
        "pandas": False,
        "hidden": False,
        "pymongo": False,
        "bson": False,
        "pandas_usable": True,
    }
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["entries_written"] > 0
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.e2e
def test_a_caller_that_imported_pandas_keeps_it(tmp_path):
    result = probe(tmp_path, ["--output", "out", "--quiet"], preload="import pandas")
    assert result == {
        "code": 0,
        "beam": True,
        "pandas": True,  # the caller's own
        "hidden": False,
        "pymongo": False,  # still hidden from Beam: the caller did not import it
        "bson": False,
        "pandas_usable": True,
    }


def test_the_block_is_scoped_leaves_what_the_caller_loaded_and_steps_aside_after_beam(monkeypatch):
    from alm_beam.execution.lean_import import unused_modules_hidden_from_beam

    for name in ("pandas", "pymongo", "bson", "apache_beam"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    own = object()
    monkeypatch.setitem(sys.modules, "bson", own)  # a caller's own import
    with unused_modules_hidden_from_beam() as hidden:
        assert hidden is True
        with pytest.raises(ImportError):
            import pandas  # noqa: F401
        assert sys.modules["pymongo"] is None  # what makes Beam's import of it fail
        assert sys.modules["bson"] is own
    assert "pandas" not in sys.modules and "pymongo" not in sys.modules
    assert sys.modules["bson"] is own

    monkeypatch.setitem(sys.modules, "apache_beam", object())
    with unused_modules_hidden_from_beam() as hidden:
        assert hidden is False
        assert "pandas" not in sys.modules


# The command as the whole process (``cli``): refused by a Beam flag check, so
# after Beam's import and before any work.
WHOLE_PROCESS_PROBE = """
import json, sys
from alm_beam import run
code = run.main(sys.argv[2:], whole_process=sys.argv[1] == "whole")
print(json.dumps({"code": code, "beam": "apache_beam" in sys.modules,
                  **{name: sys.modules.get(name) is not None for name in ("pyarrow", "boto3", "requests")}}))
"""
BAD_WORKERS = ["--direct_num_workers", "x"]  # Beam's parser refuses it: exit 2 once Beam is imported
DASK = ["--runner", "DaskRunner"]  # refused once Beam is imported, and not the DirectRunner


@pytest.mark.e2e
@pytest.mark.parametrize(
    "mode, args, kept",
    [
        ("whole", BAD_WORKERS, {"pyarrow": False, "boto3": False, "requests": False}),
        (
            "whole",
            ["--input", "s3://bucket/in.jsonl", *BAD_WORKERS],
            {"pyarrow": False, "boto3": True, "requests": True},
        ),
        (
            "whole",
            ["--temp_location", "gs://bucket/tmp", *BAD_WORKERS],
            {"pyarrow": False, "boto3": True, "requests": True},
        ),
        ("whole", DASK, {"pyarrow": False, "boto3": True, "requests": True}),
        ("library", BAD_WORKERS, {"pyarrow": True, "boto3": True, "requests": True}),
    ],
    ids=["local", "s3-input", "gs-flag", "other-runner", "library"],
)
def test_a_whole_process_run_also_skips_what_only_remote_locations_or_other_runners_need(
    tmp_path, mode, args, kept
):
    proc = subprocess.run(
        [sys.executable, "-c", WHOLE_PROCESS_PROBE, mode, *args, "--output", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"code": 2, "beam": True, **kept}
    assert ("DaskRunner is refused" if args is DASK else "invalid int value") in proc.stderr
