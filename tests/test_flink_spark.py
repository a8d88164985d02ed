"""alm_beam on real Flink and Spark clusters (issue 17).

Each engine's cluster comes from its launcher (`bash pipelines/flink.sh up`,
`spark.sh up`): the engine's own processes, Beam's job server built from Beam's
published sources by `install`, and an SDK worker pool, all on 127.0.0.1. One
cluster per engine serves every test of this module. Checked here:

- every golden case, submitted through the launcher with the SDK harness in the
  client (LOOPBACK) and outside it (EXTERNAL: the launcher's worker pool), equals
  NeMo Curator's output, with summary.json's totals and line balance;
- a generated workload with bad and blank lines gives on the engine exactly what
  the DirectRunner gives: windows, error records, training lines, summary totals;
- the CLI's own `--runner FlinkRunner` / `SparkRunner` uses the job server that
  `install` built, with no job-server flag, and never downloads;
- the job server such a run starts dies with the run, however it ends;
- faults on the cluster: a TaskManager (Flink) or the executor (Spark) killed
  mid-job, and the job server killed mid-run;
- the engine's own API lists the jobs as finished; `down` leaves nothing.

The distributions and job servers are installed by `bash pipelines/flink.sh
install` and `bash pipelines/spark.sh install` (CI does; skipped locally without
them, failed in CI).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, canonical, require_or_skip
from runner_helpers import (
    GOLDEN_CASES,
    assert_matches_golden,
    descendants,
    free_ports,
    golden_input,
    listening,
    pid_alive,
    read_shards,
    script,
    wait_gone,
)

from alm_beam.execution.job_servers import ENGINES, job_server_jar_path
from alm_beam.execution.runners import cache_root, job_states

pytestmark = pytest.mark.e2e

FLINK_VERSION = os.environ.get("ALM_FLINK_VERSION", "1.19.3")
SPARK_VERSION = os.environ.get("ALM_SPARK_VERSION", "3.5.9")
WORKLOAD_ENTRIES = 1500

SETUP = {
    "flink": {
        "script": "flink.sh",
        "home": os.path.join(cache_root(), "flink", FLINK_VERSION),
        "names": ["jobmanager", "taskmanager", "jobserver", "pool"],
        "ports": [
            "ALM_FLINK_REST_PORT",
            "ALM_FLINK_RPC_PORT",
            "ALM_FLINK_POOL_PORT",
            "ALM_FLINK_JOB_PORT",
            "ALM_FLINK_ARTIFACT_PORT",
        ],
        "state": "ALM_FLINK_STATE_DIR",
        "environment": "ALM_FLINK_ENVIRONMENT_TYPE",
    },
    "spark": {
        "script": "spark.sh",
        "home": os.path.join(cache_root(), "spark", SPARK_VERSION),
        "names": ["master", "worker", "jobserver", "pool"],
        "ports": [
            "ALM_SPARK_MASTER_PORT",
            "ALM_SPARK_MASTER_WEBUI_PORT",
            "ALM_SPARK_WORKER_WEBUI_PORT",
            "ALM_SPARK_POOL_PORT",
            "ALM_SPARK_JOB_PORT",
            "ALM_SPARK_ARTIFACT_PORT",
        ],
        "state": "ALM_SPARK_STATE_DIR",
        "environment": "ALM_SPARK_ENVIRONMENT_TYPE",
    },
}


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class Cluster:
    """One engine's cluster from its launcher, with what a test needs to reach it."""

    def __init__(self, engine: str, state, env: dict, ports: dict):
        self.engine, self.state, self.env, self.ports = engine, state, env, ports
        self.setup = SETUP[engine]
        self.pids: set = set()

    @property
    def job_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports[self.setup['ports'][-2]]}"

    def pid(self, name: str) -> int:
        return int((self.state / f"{name}.pid").read_text())

    def remember(self) -> None:
        for name in self.setup["names"]:
            pid = self.pid(name)
            self.pids.update([pid] + descendants(pid))

    def submit(self, *flags, environment="LOOPBACK", timeout=900):
        env = dict(self.env, **{self.setup["environment"]: environment})
        return script(self.setup["script"], "submit", *flags, env=env, timeout=timeout)

    def submit_async(self, tmp_path, *flags, environment="LOOPBACK") -> Background:
        env = dict(self.env, **{self.setup["environment"]: environment})
        argv = ["bash", str(REPO / "pipelines" / self.setup["script"]), "submit", *flags]
        return Background(argv, tmp_path, env=env)

    # The engine's own view of its jobs.
    def finished_and_failed(self) -> tuple:
        if self.engine == "flink":
            jobs = _get_json(f"http://127.0.0.1:{self.ports['ALM_FLINK_REST_PORT']}/jobs/overview")["jobs"]
            states = collections.Counter(job["state"] for job in jobs)
            return states["FINISHED"], states["FAILED"] + states["CANCELED"]
        master = _get_json(f"http://127.0.0.1:{self.ports['ALM_SPARK_MASTER_WEBUI_PORT']}/json/")
        states = collections.Counter(app["state"] for app in master["completedapps"])
        return states["FINISHED"], sum(n for s, n in states.items() if s != "FINISHED")

    def cli_flags(self) -> list:
        """The CLI's own runner flags for this cluster: no job server flag."""
        if self.engine == "flink":
            return [
                "--runner",
                "FlinkRunner",
                "--flink_master",
                f"127.0.0.1:{self.ports['ALM_FLINK_REST_PORT']}",
            ]
        return [
            "--runner",
            "SparkRunner",
            "--spark_master_url",
            f"spark://127.0.0.1:{self.ports['ALM_SPARK_MASTER_PORT']}",
        ]

    def down(self) -> None:
        done = script(self.setup["script"], "down", env=self.env)
        assert done.returncode == 0, done.stderr
        assert wait_gone(sorted(self.pids)) == [], f"{self.setup['script']} down left processes"
        assert not any(listening(port) for port in self.ports.values())


def _installed(engine: str) -> None:
    setup = SETUP[engine]
    hint = f"bash pipelines/{setup['script']} install"
    require_or_skip(
        os.path.isfile(os.path.join(setup["home"], ".installed")),
        f"no {engine} distribution at {setup['home']}; run `{hint}`",
    )
    jar = job_server_jar_path(ENGINES[engine])
    require_or_skip(os.path.isfile(jar), f"no {engine} job server at {jar}; run `{hint}`")


@pytest.fixture(scope="module", params=["flink", "spark"])
def cluster(request, tmp_path_factory):
    engine = request.param
    _installed(engine)
    setup = SETUP[engine]
    state = tmp_path_factory.mktemp(f"{engine}-state")
    ports = dict(zip(setup["ports"], free_ports(len(setup["ports"]))))
    env = dict(os.environ, **{var: str(port) for var, port in ports.items()})
    env[setup["state"]] = str(state)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    up = script(setup["script"], "up", env=env)
    handle = Cluster(engine, state, env, ports)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        handle.remember()
    except BaseException:
        script(setup["script"], "down", env=env)
        raise
    handle.submitted = 0
    try:
        yield handle
    finally:
        handle.down()


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """A generated workload with rejected and blank lines, and the DirectRunner's
    output for it: what every engine must reproduce."""
    root = tmp_path_factory.mktemp("workload")
    generated = root / "generated.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.synth",
            "--entries",
            str(WORKLOAD_ENTRIES),
            "--seed",
            "17",
            "--out",
            str(generated),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    lines = generated.read_bytes().splitlines()
    bad = [b'{"audio_filepath": "x.wav", "segments": [{"start": 0, "end": null}]}', b"{not json", b""]
    manifest = root / "workload.jsonl"
    manifest.write_bytes(b"\n".join(lines[:700] + bad + lines[700:]) + b"\n")
    direct = root / "direct"
    done = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--input", str(manifest), "--output", str(direct), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return manifest, direct


def _totals(out_dir) -> dict:
    summary = json.loads((out_dir / "summary.json").read_text())
    keys = (
        "lines_read",
        "blank_lines",
        "entries_read",
        "entries_written",
        "entries_failed",
        "windows",
        "filtered_windows",
        "filtered_dur",
        "total_dur_window",
        "stats",
        "errors_by_reason",
    )
    return {key: summary.get(key) for key in keys}


def assert_same_as_direct(out_dir, direct_dir) -> None:
    """Windows, error records, training lines and the totals equal the DirectRunner's."""
    for prefix in ("windows", "errors", "train"):
        got, want = read_shards(out_dir, prefix), read_shards(direct_dir, prefix)
        assert want, prefix
        assert collections.Counter(map(canonical, got)) == collections.Counter(map(canonical, want)), prefix
    totals = _totals(out_dir)
    assert totals == _totals(direct_dir)
    # the line balance, from the reader's count and the outputs' counts
    assert (
        totals["lines_read"] == totals["entries_written"] + totals["entries_failed"] + totals["blank_lines"]
    )
    assert (out_dir / "report.html").is_file()


def _wait_running(endpoint: str, run, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert run.proc.poll() is None, run.stderr()[-3000:]
        try:
            if any(state == "RUNNING" for _, _, state in job_states(endpoint, timeout=5)):
                return
        except Exception:  # noqa: BLE001 - the job service may still be starting
            pass
        assert time.monotonic() < deadline, "the job never reached RUNNING"
        time.sleep(0.2)


def test_up_reports_its_cluster(cluster):
    if cluster.engine == "flink":
        overview = _get_json(f"http://127.0.0.1:{cluster.ports['ALM_FLINK_REST_PORT']}/overview")
        assert overview["flink-version"] == FLINK_VERSION
        assert overview["taskmanagers"] == 1 and overview["slots-total"] == 2
    else:
        master = _get_json(f"http://127.0.0.1:{cluster.ports['ALM_SPARK_MASTER_WEBUI_PORT']}/json/")
        assert master["status"] == "ALIVE" and master["aliveworkers"] == 1
        assert master["workers"][0]["host"] == "127.0.0.1"
    assert listening(int(cluster.job_endpoint.rsplit(":", 1)[1]))
    again = script(cluster.setup["script"], "up", env=cluster.env)
    assert again.returncode == 2 and "already up" in again.stderr


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_case_through_the_launcher(cluster, case, tmp_path):
    # The SDK harness outside the client (EXTERNAL, the launcher's worker pool)
    # for every other case, and in the client (LOOPBACK) for the rest.
    environment = "EXTERNAL" if sorted(GOLDEN_CASES).index(case) % 2 == 0 else "LOOPBACK"
    out = tmp_path / "out"
    done = cluster.submit(
        "--input",
        golden_input(case),
        "--output",
        str(out),
        "--quiet",
        *GOLDEN_CASES[case],
        environment=environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cluster.submitted += 1
    assert_matches_golden(out, case)


def test_generated_workload_equals_the_direct_runner(cluster, workload, tmp_path):
    manifest, direct = workload
    out = tmp_path / "out"
    parallelism = ["--parallelism", "2"] if cluster.engine == "flink" else []
    done = cluster.submit(
        "--input", str(manifest), "--output", str(out), "--quiet", *parallelism, environment="EXTERNAL"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cluster.submitted += 1
    assert_same_as_direct(out, direct)


def test_the_cli_runner_uses_the_built_job_server_and_leaves_none(cluster, tmp_path):
    out = tmp_path / "out"
    before = set(_job_server_pids())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            *cluster.cli_flags(),
            "--input",
            golden_input("sample_default"),
        ]
        + ["--output", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cluster.submitted += 1
    assert_matches_golden(out, "sample_default")
    assert "Downloading" not in done.stderr and "download" not in done.stderr.lower()
    assert f"{ENGINES[cluster.engine].runner}: Beam's job server" in done.stderr
    assert wait_gone(sorted(set(_job_server_pids()) - before)) == []


def test_the_engine_lists_every_job_finished(cluster):
    finished, failed = cluster.finished_and_failed()
    assert failed == 0
    assert finished >= cluster.submitted > 0


def _job_server_pids() -> list:
    """Java processes running a job server jar with our CLI's free ports (not the launcher's)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"-job-server-2.70.0.jar") for arg in argv) and any(
            b"-artifacts-" in arg for arg in argv
        ):
            found.append(int(pid))
    return found


class Background:
    """A command running in the background, its output in files (a pipe nobody
    reads would stall it)."""

    def __init__(self, argv: list, tmp_path, env=None):
        self.stdout_path, self.stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _started_job_server(run: Background, engine: str, seconds: float = 300) -> tuple:
    """Wait until the CLI names the job server it started: (pid, endpoint)."""
    marker = f"alm_beam: {ENGINES[engine].runner}: Beam's job server (pid "
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in run.stderr().splitlines():
            if line.startswith(marker):
                pid = int(line[len(marker) :].split(")", 1)[0])
                endpoint = line.split(") at ", 1)[1].split(",", 1)[0]
                return pid, endpoint
        assert run.proc.poll() is None, run.stderr()[-3000:]
        time.sleep(0.2)
    raise AssertionError("the CLI never named its job server: " + run.stderr()[-3000:])


@pytest.mark.parametrize("ending", ["SIGINT", "SIGTERM", "SIGKILL", "failure"])
def test_the_job_server_a_run_starts_dies_with_it(cluster, workload, tmp_path, ending):
    if cluster.engine == "spark" and ending in ("SIGINT", "SIGTERM"):
        pytest.skip(
            "the job server's lifetime is engine-independent (ChildProcess): Flink runs all four endings"
        )
    manifest, _ = workload
    out = tmp_path / "out"
    if ending == "failure":
        # The run itself fails: an error budget a small input exceeds. Small, because
        # the engine's restart strategy runs the failing job again a few times.
        small = tmp_path / "small.jsonl"
        small.write_bytes(pathlib.Path(golden_input("sample_default")).read_bytes() + b"{not json\n")
        flags = ["--input", str(small), "--max_error_fraction", "0"]
    else:
        flags = ["--input", str(manifest)]
    run = Background(
        [sys.executable, "-m", "alm_beam.run", *cluster.cli_flags(), *flags, "--output", str(out)], tmp_path
    )
    server, endpoint = _started_job_server(run, cluster.engine)
    if ending != "failure":
        _wait_running(endpoint, run)
        os.kill(run.proc.pid, getattr(signal, ending))
    returncode = run.finish(timeout=900)
    expected = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9, "failure": 1}[ending]
    assert returncode == expected, run.stderr()[-3000:]
    assert wait_gone([server], 30) == [], f"the job server (pid {server}) outlived the run ({ending})"
    assert not (out / "summary.json").exists()
    if ending in ("SIGINT", "SIGTERM", "failure"):
        assert "Traceback" not in run.stderr(), run.stderr()[-3000:]
    _wait_engine_ready(cluster)


def test_a_killed_worker_process_gives_the_exact_result(cluster, workload, tmp_path):
    """Flink: the TaskManager is killed mid-job; the launcher's supervisor starts a
    new one and the restart strategy runs the job again. Spark: the executor is
    killed mid-job; the worker starts a new one and the failed tasks run again.
    Either way the result is exact, or the run fails with one line and commits
    nothing; never a result that looks finished and is not."""
    manifest, direct = workload
    out = tmp_path / "out"
    run = cluster.submit_async(
        tmp_path, "--input", str(manifest), "--output", str(out), "--quiet", environment="EXTERNAL"
    )
    try:
        _wait_running(cluster.job_endpoint, run)
        time.sleep(3)  # into the job's work
        victims = _engine_worker_pids(cluster)
        assert victims, "no TaskManager/executor process found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
    finally:
        returncode = run.finish(timeout=900)
    stderr = run.stderr()
    if returncode == 0:
        cluster.submitted += 1
        assert_same_as_direct(out, direct)
    else:
        assert returncode == 1, stderr[-3000:]
        assert [line for line in stderr.splitlines() if line.startswith("alm_beam: error:")], stderr[-3000:]
        assert "Traceback" not in stderr
        assert not (out / "summary.json").exists()
    _wait_engine_ready(cluster)


def _engine_worker_pids(cluster) -> list:
    """The JVMs that run the job's tasks: the TaskManager (Flink), the executor (Spark)."""
    marker = (
        b"org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
        if cluster.engine == "flink"
        else b"org.apache.spark.executor.CoarseGrainedExecutorBackend"
    )
    root = cluster.pid("taskmanager" if cluster.engine == "flink" else "worker")
    found = []
    for pid in [root] + descendants(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker in fh.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def _cancel_leftover_flink_jobs(cluster) -> None:
    """A job whose client was killed runs on (and restarts) in the cluster until its
    SDK harness is found gone; cancel it so the next test has the slots."""
    rest = f"http://127.0.0.1:{cluster.ports['ALM_FLINK_REST_PORT']}"
    for job in _get_json(f"{rest}/jobs/overview")["jobs"]:
        if job["state"] not in ("FINISHED", "FAILED", "CANCELED"):
            request = urllib.request.Request(f"{rest}/jobs/{job['jid']}?mode=cancel", method="PATCH")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).close()


def _wait_engine_ready(cluster, seconds: float = 300) -> None:
    """After a fault: the cluster offers its slots (Flink) / an alive worker (Spark) again."""
    if cluster.engine == "flink":
        _cancel_leftover_flink_jobs(cluster)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if cluster.engine == "flink":
                o = _get_json(f"http://127.0.0.1:{cluster.ports['ALM_FLINK_REST_PORT']}/overview")
                if o["taskmanagers"] >= 1 and o["slots-available"] >= 2:
                    return
            else:
                m = _get_json(f"http://127.0.0.1:{cluster.ports['ALM_SPARK_MASTER_WEBUI_PORT']}/json/")
                if m["aliveworkers"] >= 1 and not m["activeapps"]:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the {cluster.engine} cluster did not recover within {seconds} s")


def test_a_job_server_killed_mid_run_is_one_line_and_commits_nothing(cluster, workload, tmp_path):
    manifest, _ = workload
    out = tmp_path / "out"
    run = Background(
        [sys.executable, "-m", "alm_beam.run", *cluster.cli_flags(), "--input", str(manifest)]
        + ["--output", str(out), "--quiet"],
        tmp_path,
    )
    try:
        server, endpoint = _started_job_server(run, cluster.engine)
        _wait_running(endpoint, run)
        os.kill(server, signal.SIGKILL)
    finally:
        returncode = run.finish(timeout=600)
    rest = run.stderr()
    assert returncode == 1, rest[-3000:]
    errors = [line for line in rest.splitlines() if line.startswith("alm_beam: error:")]
    assert len(errors) == 1 and "Traceback" not in rest, rest[-3000:]
    assert f"the job service at {endpoint} stopped answering" in errors[0]
    assert errors[0].rstrip().endswith(f"nothing was committed to {out}")
    assert not (out / "summary.json").exists()
    assert not list(out.glob("windows-*"))
    assert not pid_alive(server)
    _wait_engine_ready(cluster)


def test_submit_without_up_is_a_one_line_error(tmp_path):
    for name, state_var in (("flink.sh", "ALM_FLINK_STATE_DIR"), ("spark.sh", "ALM_SPARK_STATE_DIR")):
        done = script(name, "submit", env=dict(os.environ, **{state_var: str(tmp_path)}))
        assert done.returncode == 2
        assert done.stderr.strip().startswith(f"{name}: error: the ")
        assert done.stderr.strip().count("\n") == 0


def test_a_missing_job_server_is_one_line_naming_the_install(tmp_path):
    """--runner FlinkRunner/SparkRunner without a built job server: exit 2, one line,
    before anything starts; a URL as the jar is refused (we never download)."""
    env = dict(os.environ, ALM_BEAM_CACHE=str(tmp_path / "empty-cache"))
    for engine in ENGINES.values():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "alm_beam.run",
                "--runner",
                engine.runner,
                "--input",
                golden_input("sample_default"),
                "--output",
                str(tmp_path / "o"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"bash pipelines/{engine.script} install" in done.stderr
        url = subprocess.run(
            [sys.executable, "-m", "alm_beam.run", "--runner", engine.runner]
            + [f"--{engine.jar_option}", "https://example.invalid/x.jar"]
            + ["--input", golden_input("sample_default"), "--output", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert url.returncode == 2 and "never downloads" in url.stderr, url.stderr
    assert not (tmp_path / "o").exists()
