"""The apache-beam a user installs is one CI tests (issue 18).

setup.py's range ends where CI's pins are: its ceiling is constraints.txt's
apache-beam (the whole suite, every CI run), its floor the one .ci/run's floor
job installs (unit and golden tests). README's "Versions" line says exactly that.
"""

import re

from conftest import REPO


def _one(pattern: str, text: str, where: str) -> str:
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{where}: expected one match of {pattern!r}, found {found}"
    return found[0]


def _versions() -> dict:
    setup = (REPO / "setup.py").read_text()
    return {
        "floor": _one(r'BEAM_FLOOR = "([0-9.]+)"', setup, "setup.py"),
        "range": _one(r'BEAM = f"(.*)"', setup, "setup.py"),
        "ceiling": _one(r'BEAM_CEILING = "([0-9.]+)"', setup, "setup.py"),
        "pinned": _one(
            r"(?m)^apache-beam==([0-9.]+)$", (REPO / "constraints.txt").read_text(), "constraints.txt"
        ),
        "floor_job": _one(r"'apache-beam==([0-9.]+)'", (REPO / ".ci" / "run").read_text(), ".ci/run"),
    }


def test_setup_admits_only_the_apache_beam_versions_ci_tests():
    v = _versions()
    assert v["range"] == ">={BEAM_FLOOR},<={BEAM_CEILING}"
    assert v["ceiling"] == v["pinned"]  # the newest installable is the one the whole suite runs on
    assert v["floor"] == v["floor_job"]  # the oldest installable is the one the floor job runs on


def test_readme_says_what_ci_ran():
    v = _versions()
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"(`apache-beam>={v['floor']},<={v['ceiling']}`)" in readme
    assert f"Tested: {v['pinned']} (`bash .ci/run`, every run: the whole suite)" in readme
    assert f"and {v['floor_job']} (`ALM_BEAM_CI_BEAM_FLOOR=1 bash .ci/run`, the optional floor job" in readme
