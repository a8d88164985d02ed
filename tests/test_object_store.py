"""alm_beam on an object store: a real S3-compatible server (versitygw, pipelines/s3-local.sh).

The golden cases read from and write to s3:// through Beam's own S3
filesystem and must equal the golden outputs exactly; then discovery under
a prefix, compressed objects, the error output, empty shards, and every
pre-flight failure (one line, exit 2, nothing written).
"""

import collections
import gzip
import json
import subprocess
import sys

import pytest
from conftest import FIXTURES, GOLDEN, canonical
from s3_server import BUCKET, get, names_under, put, s3_server  # noqa: F401 - fixture
from test_golden import CASES

from alm_beam import run

pytestmark = pytest.mark.e2e

ROOT = f"s3://{BUCKET}"


@pytest.fixture(scope="module")
def fixtures_on_s3(s3_server):  # noqa: F811
    """The public fixtures uploaded under s3://alm-beam/fixtures/ (nested dirs kept)."""
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file():
            put(s3_server, f"{ROOT}/fixtures/{path.relative_to(FIXTURES).as_posix()}", path.read_bytes())
    return f"{ROOT}/fixtures"


def _lines(server, url):
    return [json.loads(x) for x in get(server, url).decode("utf-8").splitlines() if x.strip()]


def _shards(server, out, prefix):
    lines = []
    for name in names_under(server, out):
        if name.startswith(prefix + "-"):
            lines.extend(_lines(server, f"{out}/{name}"))
    return lines


def _golden(case):
    with open(GOLDEN / f"{case}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _run(server, args, capsys):
    code = run.main(list(args) + server.flags)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_case_from_s3_to_s3(case, s3_server, fixtures_on_s3, capsys):  # noqa: F811
    source = (
        f"{fixtures_on_s3}/nested_manifests"
        if case.startswith("nested")
        else f"{fixtures_on_s3}/sample_input.jsonl"
    )
    out = f"{ROOT}/golden-out/{case}"
    code, printed, err = _run(s3_server, ["--input", source, "--output", out] + CASES[case], capsys)
    assert code == 0, err

    got = _shards(s3_server, out, "windows")
    golden = _golden(case)
    assert collections.Counter(map(canonical, got)) == collections.Counter(map(canonical, golden))
    assert {e["manifest_filepath"] for e in got} <= {
        f"{fixtures_on_s3}/sample_input.jsonl",
        *(
            f"{fixtures_on_s3}/nested_manifests/{d}/{n}.jsonl"
            for d, n in (
                ("subdir_a", "manifest_a"),
                ("subdir_a", "manifest_a2"),
                ("subdir_b", "manifest_b"),
                ("subdir_b", "manifest_b2"),
            )
        ),
    }
    # The empty errors output is an empty object (Beam alone cannot write one to S3).
    # The run record (docs/output-directory.md) stays; the lock and staging are gone.
    assert names_under(s3_server, out) == [
        ".alm_beam-run.json",
        "errors-00000-of-00001.jsonl",
        "report.html",
        "summary.json",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
    ]
    record = json.loads(get(s3_server, f"{out}/.alm_beam-run.json"))
    assert record["state"] == "committed"
    assert get(s3_server, f"{out}/errors-00000-of-00001.jsonl") == b""

    summary = json.loads(get(s3_server, f"{out}/summary.json"))
    with open(GOLDEN / f"{case}.summary.json", encoding="utf-8") as fh:
        expected = json.load(fh)["summary"]
    assert summary["entries_written"] == expected["entries"]
    for key in ("windows", "filtered_windows", "truncation_events", "entries_with_windows"):
        assert summary[key] == expected[key], key
    assert f"output: {out}" in printed


def test_directory_prefix_finds_nested_manifests_only(s3_server, fixtures_on_s3, capsys):  # noqa: F811
    """A prefix is searched like a directory: the four .jsonl under two "subdirectories",
    not notes.txt."""
    out = f"{ROOT}/prefix-out"
    code, _, err = _run(
        s3_server, ["--input", f"{fixtures_on_s3}/nested_manifests/", "--output", out], capsys
    )
    assert code == 0, err
    summary = json.loads(get(s3_server, f"{out}/summary.json"))
    assert summary["inputs"] == [
        f"{fixtures_on_s3}/nested_manifests/subdir_{d}/manifest_{n}.jsonl"
        for d, n in (("a", "a"), ("a", "a2"), ("b", "b"), ("b", "b2"))
    ]
    golden = _golden("nested_default")
    assert collections.Counter(map(canonical, _shards(s3_server, out, "windows"))) == collections.Counter(
        map(canonical, golden)
    )


def test_gzip_object_and_glob(s3_server, capsys):  # noqa: F811
    raw = (FIXTURES / "sample_input.jsonl").read_bytes()
    put(s3_server, f"{ROOT}/gz/part-1.jsonl.gz", gzip.compress(raw))
    out = f"{ROOT}/gz-out"
    code, _, err = _run(s3_server, ["--input", f"{ROOT}/gz/*.jsonl.gz", "--output", out], capsys)
    assert code == 0, err
    assert collections.Counter(map(canonical, _shards(s3_server, out, "windows"))) == collections.Counter(
        map(canonical, _golden("sample_default"))
    )


def test_error_output_and_padded_empty_shards(s3_server, capsys):  # noqa: F811
    """A bad line goes to the errors output on S3; --num_shards 3 with one error and
    two entries pads empty shards, which S3 only takes through our PutObject fix."""
    good = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()[:2]
    put(s3_server, f"{ROOT}/bad/m.jsonl", good[0] + b"\n{not json\n" + good[1] + b"\n")
    out = f"{ROOT}/bad-out"
    code, _, err = _run(
        s3_server, ["--input", f"{ROOT}/bad/m.jsonl", "--output", out, "--num_shards", "3"], capsys
    )
    assert code == 0, err
    assert names_under(s3_server, out) == sorted(
        [f"{p}-0000{i}-of-00003.jsonl" for p in ("errors", "train", "windows") for i in range(3)]
        + [".alm_beam-run.json", "report.html", "summary.json"]
    )
    errors = _shards(s3_server, out, "errors")
    assert len(errors) == 1
    assert errors[0]["manifest_filepath"] == f"{ROOT}/bad/m.jsonl"
    assert errors[0]["line"] == 2
    assert len(_shards(s3_server, out, "windows")) == 2
    summary = json.loads(get(s3_server, f"{out}/summary.json"))
    assert (summary["entries_read"], summary["entries_written"], summary["entries_failed"]) == (3, 2, 1)


def test_output_probe_is_removed_and_nonempty_output_refused(s3_server, fixtures_on_s3, capsys):  # noqa: F811
    out = f"{ROOT}/probe-out"
    args = ["--input", f"{fixtures_on_s3}/sample_input.jsonl", "--output", out]
    assert _run(s3_server, args, capsys)[0] == 0
    assert not [n for n in names_under(s3_server, out) if "probe" in n]
    code, _, err = _run(s3_server, args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "directory is not empty" in err
    assert not [n for n in names_under(s3_server, out) if "probe" in n]


# --- pre-flight failures: one line, exit 2, nothing written --------------------------------


def _cli(server, args, flags=None):
    """The real entry point in a subprocess; returns (exit code, stderr lines)."""
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run"] + args + (server.flags if flags is None else flags),
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [x for x in proc.stderr.splitlines() if "apitools" not in x]
    return proc.returncode, lines


def _flag(server, name, value):
    return [f"--{name}={value}" if f.startswith(f"--{name}=") else f for f in server.flags]


@pytest.mark.parametrize(
    "label, args, expected",
    [
        (
            "input bucket missing",
            ["--input", "s3://no-such-bucket/m/", "--output", f"{ROOT}/pf"],
            "alm_beam: error: --input s3://no-such-bucket/m/: bucket no-such-bucket does not exist",
        ),
        (
            "output bucket missing",
            ["--input", f"{ROOT}/fixtures/sample_input.jsonl", "--output", "s3://no-such-bucket/out"],
            "alm_beam: error: --output s3://no-such-bucket/out: bucket no-such-bucket does not exist",
        ),
        (
            "object missing",
            ["--input", f"{ROOT}/fixtures/nothing.jsonl", "--output", f"{ROOT}/pf"],
            f"alm_beam: error: --input '{ROOT}/fixtures/nothing.jsonl': no such file or directory",
        ),
        (
            "unknown scheme",
            ["--input", "nosuch://x/m.jsonl", "--output", f"{ROOT}/pf"],
            "alm_beam: error: --input nosuch://x/m.jsonl: no Beam filesystem handles nosuch://",
        ),
    ],
)
def test_preflight_location_errors(label, args, expected, s3_server, fixtures_on_s3):  # noqa: F811
    code, err = _cli(s3_server, args)
    assert code == 2, label
    assert len(err) == 1 and err[0].startswith(expected), err
    assert names_under(s3_server, f"{ROOT}/pf") == []


@pytest.mark.parametrize(
    "label, option, value, expected",
    [
        (
            "wrong secret",
            "s3_secret_access_key",
            "not-the-secret",
            "the secret key does not match the access key; check --s3_secret_access_key",
        ),
        (
            "unknown access key",
            "s3_access_key_id",
            "nobody",
            "the access key is not known to the server; check --s3_access_key_id",
        ),
        ("no server there", "s3_endpoint_url", "http://127.0.0.1:9", "cannot reach the storage endpoint"),
    ],
)
def test_preflight_credential_and_endpoint_errors(label, option, value, expected, s3_server, fixtures_on_s3):  # noqa: F811
    code, err = _cli(
        s3_server,
        ["--input", f"{ROOT}/fixtures/sample_input.jsonl", "--output", f"{ROOT}/pf"],
        _flag(s3_server, option, value),
    )
    assert code == 2, label
    assert len(err) == 1, err
    assert err[0].startswith(f"alm_beam: error: --input {ROOT}/fixtures/sample_input.jsonl: " + expected), err
    assert names_under(s3_server, f"{ROOT}/pf") == []


def test_preflight_missing_extra_names_the_install(s3_server):  # noqa: F811
    """Without boto3 (hidden from the import system), the run stops before Beam's
    'AssertionError: Missing boto3 requirement', naming the extra."""
    code = (
        "import sys; sys.modules['boto3'] = None; from alm_beam.run import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--input", f"{ROOT}/m.jsonl", "--output", "s3://other/out"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [x for x in proc.stderr.splitlines() if "apitools" not in x]
    assert proc.returncode == 2
    assert lines == [
        f"alm_beam: error: --input {ROOT}/m.jsonl: s3:// needs boto3, which is "
        "not installed; install it with: pip install 'alm_beam[aws]'"
    ]


def _alive(pid: int) -> bool:
    """Running (a zombie, exited and not yet reaped by init, is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_s3_local_script_up_flags_down(tmp_path):
    """The script on its own: up twice (second is a no-op), flags, down by pid, down again."""
    import os

    from conftest import require_or_skip
    from s3_server import BINARY, SCRIPT, VERSION, _free_port

    require_or_skip(BINARY.exists(), f"versitygw {VERSION} not built; run: pipelines/s3-local.sh build")
    port = _free_port()
    env = dict(os.environ, ALM_BEAM_S3_STATE=str(tmp_path), ALM_BEAM_S3_PORT=str(port))

    def sh(cmd):
        return subprocess.run([str(SCRIPT), cmd], env=env, capture_output=True, text=True, timeout=60)

    assert sh("up").returncode == 0
    try:
        pid = int((tmp_path / "pid").read_text())
        assert sh("up").stderr.startswith(f"s3-local: already running (pid {pid})")
        assert sh("flags").stdout.splitlines() == [
            f"--s3_endpoint_url=http://127.0.0.1:{port}",
            "--s3_access_key_id=alm-beam-local",
            "--s3_secret_access_key=alm-beam-local-secret",
            "--s3_region_name=us-east-1",
        ]
        assert (tmp_path / "data" / "alm-beam").is_dir()
    finally:
        assert sh("down").returncode == 0
    assert not _alive(pid)
    assert not (tmp_path / "pid").exists()
    assert sh("down").stderr == "s3-local: not running\n"
    assert sh("flags").returncode == 1


def test_s3_local_server_stops_when_the_watched_process_dies(tmp_path):
    """A test run killed before its fixture's `down` still leaves no server behind."""
    import os
    import time

    from conftest import require_or_skip
    from s3_server import BINARY, SCRIPT, VERSION, _free_port

    require_or_skip(BINARY.exists(), f"versitygw {VERSION} not built; run: pipelines/s3-local.sh build")
    stand_in = subprocess.Popen(["sleep", "600"])
    env = dict(
        os.environ,
        ALM_BEAM_S3_STATE=str(tmp_path),
        ALM_BEAM_S3_PORT=str(_free_port()),
        ALM_BEAM_S3_WATCH_PID=str(stand_in.pid),
    )
    try:
        subprocess.run([str(SCRIPT), "up"], env=env, check=True, capture_output=True, timeout=60)
        pid = int((tmp_path / "pid").read_text())
        assert _alive(pid)
        stand_in.kill()
        stand_in.wait()
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        stand_in.kill()
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=60)


def test_two_worker_processes_read_and_write_s3(s3_server, fixtures_on_s3, tmp_path):  # noqa: F811
    """`--direct_running_mode multi_processing`: the SDK worker processes get the
    run's pipeline options (the S3 endpoint and credentials) like the runner
    process, and the result equals the golden output. (Before, the workers had
    no options, and every S3 access in them failed, retried with back-off.)"""
    out = f"{ROOT}/two-workers-out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            f"{fixtures_on_s3}/nested_manifests",
            "--output",
            out,
            "--set",
            "input.split_mb=0.01",
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
            "--quiet",
        ]
        + s3_server.flags,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = _shards(s3_server, out, "windows")
    golden = _golden("nested_default")
    assert collections.Counter(map(canonical, got)) == collections.Counter(map(canonical, golden))
    summary = json.loads(get(s3_server, f"{out}/summary.json"))
    assert summary["run"]["work_units"] == 2
    assert summary["entries_failed"] == 0
