"""pipelines/alm.yaml (Beam YAML) gives the CLI's windows, errors and summary."""

import collections
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, GOLDEN, REPO, canonical

from alm_beam import run

pytestmark = pytest.mark.e2e

FN_API_RUNNER = "--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def _records(out_dir, prefix):
    return [
        json.loads(x)
        for f in sorted(out_dir.glob(f"{prefix}-*-of-*.jsonl"))
        for x in f.read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]


def test_yaml_job_equals_cli_and_golden(tmp_path, capsys):
    manifests = tmp_path / "manifests"
    shutil.copytree(FIXTURES / "nested_manifests", manifests)
    sample = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()
    (manifests / "broken.jsonl").write_bytes(sample[0] + b"\n{broken\n\n")

    cli_out, yaml_out = tmp_path / "cli", tmp_path / "yaml"
    assert run.main(["--input", str(manifests), "--output", str(cli_out)]) == 0
    capsys.readouterr()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "apache_beam.yaml.main",
            "--yaml_pipeline_file",
            str(REPO / "pipelines" / "alm.yaml"),
            "--jinja_variables",
            json.dumps({"input": str(manifests), "output": str(yaml_out)}),
            FN_API_RUNNER,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    cli_windows, yaml_windows = _records(cli_out, "windows"), _records(yaml_out, "windows")
    assert collections.Counter(map(canonical, yaml_windows)) == collections.Counter(
        map(canonical, cli_windows)
    )
    # and both are the golden case plus the one good line of broken.jsonl
    with open(GOLDEN / "nested_default.jsonl", encoding="utf-8") as fh:
        golden = [canonical(json.loads(x)) for x in fh if x.strip()]
    assert len(yaml_windows) == len(golden) + 1
    assert (
        collections.Counter(golden) - collections.Counter(map(canonical, yaml_windows))
        == collections.Counter()
    )
    assert _records(yaml_out, "errors") == _records(cli_out, "errors")
    [error] = _records(yaml_out, "errors")
    assert (error["manifest_filepath"], error["line"], error["reason"]) == (
        str(manifests / "broken.jsonl"),
        2,
        "invalid_json",
    )

    cli_summary = json.loads((cli_out / "summary.json").read_text())
    yaml_summary = json.loads((yaml_out / "summary.json").read_text())
    for key in (
        "entries_read",
        "entries_written",
        "entries_failed",
        "windows",
        "filtered_windows",
        "filtered_dur",
        "total_dur_window",
        "truncation_events",
        "stats",
        "errors_by_reason",
        "params",
        "outputs",
    ):
        assert yaml_summary[key] == cli_summary[key], key
    assert (yaml_summary["entries_read"], yaml_summary["entries_failed"]) == (len(golden) + 2, 1)


# --------------------------------------------------------------------------
# The job's variables are data (issue 19) and the documented command has no
# surprises (issue 18): no download attempt, one line for a bad path.

MARKER_NAME = "INJECTED-CODE-RAN"


def _yaml_job(variables, *flags, cwd=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "apache_beam.yaml.main",
            "--yaml_pipeline_file",
            str(REPO / "pipelines" / "alm.yaml"),
            "--jinja_variables",
            json.dumps(variables),
            *(flags or [FN_API_RUNNER]),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def _documented_command(doc_text: str) -> list:
    """The Beam YAML command a document shows, as arguments (the line that
    starts with ``python -m apache_beam.yaml.main``, with its continuations)."""
    import shlex

    lines = doc_text.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.strip().lstrip("`").startswith("python -m apache_beam.yaml.main")
    )
    command = ""
    for line in lines[start:]:
        command += line.strip().strip("`")
        if not command.endswith("\\"):
            break
        command = command[:-1] + " "
    return shlex.split(command)


@pytest.mark.parametrize("doc", ["README.md", "docs/yaml.md"])
def test_the_documented_command_never_tries_a_download(tmp_path, doc):
    args = _documented_command((REPO / doc).read_text(encoding="utf-8"))
    assert args[:3] == ["python", "-m", "apache_beam.yaml.main"], args
    at = args.index("--jinja_variables") + 1
    args[at] = json.dumps({"input": str(FIXTURES / "sample_input.jsonl"), "output": str(tmp_path / "out")})
    proc = subprocess.run([sys.executable, *args[1:]], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = (proc.stdout + proc.stderr).lower()
    assert "prism" not in said and "download" not in said and "falling back" not in said, said[-3000:]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["entries_read"] == 5


# Each is a directory name: quotes, a newline, backslash escapes YAML and JSON
# would read, YAML flow and comment syntax, a Jinja delimiter, non-ASCII.
HOSTILE_NAMES = [
    "q\"uote's",
    "new\nline",
    "back\\x41slash\\n\\u0041",
    "]: {yaml: [syntax}, # not a comment &anchor *alias !!binary |-",
    "{{ jinja }} {% raw %}",
    "caf\u00e9 \U0001f600",
]


def test_paths_reach_the_pipeline_exactly_as_given(tmp_path):
    """Input and output named with every hostile character at once: the job
    reads that input (not another directory) and writes into that output."""
    name = "-".join(HOSTILE_NAMES)
    manifests = tmp_path / f"in-{name}"
    manifests.mkdir()
    shutil.copy(FIXTURES / "sample_input.jsonl", manifests / "m.jsonl")
    decoy = tmp_path / f"in-{name}".replace("\\x41", "A").replace("\\n", "\n").replace("\\u0041", "A")
    decoy.mkdir()  # where YAML's reading of the backslash escapes would lead
    (decoy / "decoy.jsonl").write_text("{decoy\n")
    out = tmp_path / f"out-{name}"
    proc = _yaml_job({"input": str(manifests), "output": str(out)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["inputs"] == [str(manifests)]
    assert (summary["entries_read"], summary["entries_failed"]) == (5, 0)
    assert {w["manifest_filepath"] for w in _records(out, "windows")} == {str(manifests / "m.jsonl")}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([manifests.name, decoy.name, out.name])


def _injection(tmp_path) -> str:
    """An output value that, pasted into the YAML text, closes the path's
    quotes and adds a PyTransform whose constructor runs a command (it worked
    against the job before its variables were quoted)."""
    marker = tmp_path / MARKER_NAME
    source = (
        "def make():\n  import subprocess\n"
        f"  subprocess.run(['touch', {str(marker)!r}])\n"
        "  import apache_beam as beam\n  return beam.Map(lambda x: x)\n"
    )
    return (
        str(tmp_path / "out") + '"\n'
        "        num_shards: 0\n"
        "    - type: PyTransform\n"
        "      name: Injected\n"
        "      input: ReadManifests.lines\n"
        "      config:\n"
        "        constructor: __constructor__\n"
        "        kwargs:\n"
        f"          source: {json.dumps(source)}\n"
        "    - type: WriteAlmOutput\n"
        "      name: WriteAgain\n"
        "      input: {entries: CurateEntries.entries, errors: CurateEntries.errors,\n"
        "              stats: CurateEntries.stats}\n"
        "      config:\n"
        '        path: "' + str(tmp_path / "out2")
    )


def test_an_injection_attempt_never_runs_and_is_one_line(tmp_path):
    injected = _injection(tmp_path)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    assert max(len(name.encode()) for name in injected.split("/")) > limit  # as a path: too long a name
    proc = _yaml_job({"input": str(FIXTURES / "sample_input.jsonl"), "output": injected})
    assert not (tmp_path / MARKER_NAME).exists(), "the injected code ran"
    assert proc.returncode == 2, proc.stderr[-3000:]
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("alm_beam")]
    assert (
        line.startswith("alm_beam: error: pipelines/alm.yaml: output ")
        and f"longer than {limit} bytes" in line
    )
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == []  # neither the literal path nor out2


def test_an_injection_attempt_that_fits_a_name_is_read_as_that_name(tmp_path):
    """An input value that, pasted into the YAML text, adds a PyTransform
    running a command, short enough to be a directory name: the job reads the
    directory of that name, and the command never runs."""
    injected = (
        'in"\n    - {type: PyTransform, input: ReadManifests.lines, config: {constructor: __constructor__, '
        'kwargs: {source: "def f():\\n  import subprocess,apache_beam as b\\n'
        f"  subprocess.run(['touch','{MARKER_NAME}'])\\n  return b.Map(str)\"}}}}}}\n#"
    )
    assert len(injected.encode()) < os.pathconf(tmp_path, "PC_NAME_MAX") and "/" not in injected
    (tmp_path / injected).mkdir()
    shutil.copy(FIXTURES / "sample_input.jsonl", tmp_path / injected / "m.jsonl")
    proc = _yaml_job({"input": injected, "output": "out"}, cwd=tmp_path)
    assert not (tmp_path / MARKER_NAME).exists(), "the injected code ran"
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["inputs"], summary["entries_read"]) == ([injected], 5)


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({"input": "{missing}", "output": "{out}"}, "input '{missing}': no such file or directory"),
        ({"input": "{empty}", "output": "{out}"}, "holds no .jsonl/.json manifest"),
        ({"input": "{manifest}", "output": "{file}/out"}, "not a directory"),
        ({"output": "{out}"}, 'needs --jinja_variables \'{"input": PATH, "output": DIR}\' (no input)'),
        ({"input": "{manifest}"}, 'needs --jinja_variables \'{"input": PATH, "output": DIR}\' (no output)'),
        ({"input": 5, "output": "{out}"}, "input must be a path (a string), not 5"),
    ],
    ids=[
        "missing-input",
        "empty-input",
        "output-under-a-file",
        "no-input",
        "no-output",
        "input-not-a-string",
    ],
)
def test_a_bad_input_or_output_is_one_line(tmp_path, variables, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a directory\n")
    places = {
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "out": str(tmp_path / "out"),
        "file": str(tmp_path / "file"),
        "manifest": str(FIXTURES / "sample_input.jsonl"),
    }

    def fill(text):
        for name, place in places.items():
            text = text.replace("{" + name + "}", place)
        return text

    variables = {k: fill(v) if isinstance(v, str) else v for k, v in variables.items()}
    expected = fill(expected)
    proc = _yaml_job(variables)
    assert proc.returncode == 2, proc.stderr[-3000:]
    # Beam YAML's own start-up log lines come first; the error is one line of ours
    ours = [line for line in proc.stderr.splitlines() if line.startswith("alm_beam")]
    assert len(ours) == 1 and ours[0].startswith("alm_beam: error: pipelines/alm.yaml: "), proc.stderr[-3000:]
    assert expected in ours[0], ours[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
