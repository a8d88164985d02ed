"""pipelines/portable.sh: Prism as a standalone job service plus a Beam Python SDK
worker pool, both on this machine; jobs submitted with --runner PortableRunner
--environment_type EXTERNAL. The golden cases pass there, the bundles ran in the
pool's worker processes, Prism's JobService reports every job DONE, and `down`
leaves nothing of ours.

Needs the Prism binary (`bash pipelines/prism.sh build`): skipped without it locally,
required in CI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES, REPO, require_or_skip
from runner_helpers import (
    GOLDEN_CASES,
    assert_matches_golden,
    descendants,
    free_ports,
    golden_input,
    pid_alive,
    run_cli,
    same_result,
    script,
    wait_closed,
    wait_gone,
)

from alm_beam.execution.runners import job_states, prism_binary_path

pytestmark = pytest.mark.e2e

PRISM = prism_binary_path()
BUNDLE_LINE = re.compile(r"alm_beam worker pid=(\d+) ppid=(\d+) worker_id=(\S+) processed bundle")


def _env(state_dir, ports) -> dict:
    env = dict(os.environ)
    env.update(
        ALM_PORTABLE_STATE_DIR=str(state_dir),
        ALM_PRISM_JOB_PORT=str(ports[0]),
        ALM_PRISM_WEB_PORT=str(ports[1]),
        ALM_WORKER_POOL_PORT=str(ports[2]),
    )
    return env


class Deployment:
    def __init__(self, state_dir, ports):
        self.state = state_dir
        self.ports = ports
        self.env = _env(state_dir, ports)
        self.seen_pids: set = set()

    def pid(self, name: str) -> int:
        return int((self.state / f"{name}.pid").read_text())

    def remember_processes(self) -> None:
        """Every process of the deployment (Prism, pool, the pool's SDK workers)."""
        for name in ("prism", "pool"):
            pid = self.pid(name)
            self.seen_pids.update([pid] + descendants(pid))

    def submit(self, *args):
        done = script("portable.sh", "submit", *args, env=self.env)
        self.remember_processes()
        return done


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    require_or_skip(
        os.access(PRISM, os.X_OK),
        f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
    )
    dep = Deployment(tmp_path_factory.mktemp("portable_state"), free_ports(3))
    up = script("portable.sh", "up", env=dep.env)
    assert up.returncode == 0, up.stderr
    try:
        dep.remember_processes()
        yield dep
    finally:
        down = script("portable.sh", "down", env=dep.env)
        assert down.returncode == 0, down.stderr
        assert wait_gone(sorted(dep.seen_pids)) == [], "a process of the deployment survived down"
        assert all(wait_closed(p) for p in dep.ports)


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_case_on_the_portable_deployment(case, deployment, tmp_path):
    out = tmp_path / "out"
    done = deployment.submit("--input", golden_input(case), "--output", str(out), *GOLDEN_CASES[case])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "alm_beam run summary" in done.stdout
    assert_matches_golden(out, case)


def test_work_ran_in_the_pool_workers_and_prism_reports_done(deployment, tmp_path):
    before = job_states(f"localhost:{deployment.ports[0]}")
    log = deployment.state / "pool.log"
    log_start = log.stat().st_size
    done = deployment.submit(
        "--input", str(FIXTURES / "sample_input.jsonl"), "--output", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # Prism's JobService (GetJobs) has one more job, in state DONE.
    after = job_states(f"localhost:{deployment.ports[0]}")
    new = [job for job in after if job not in before]
    assert len(new) == 1 and new[0][2] == "DONE", after
    assert all(state == "DONE" for _, _, state in after)

    # The bundles were processed by SDK worker processes the pool started (its
    # children, not the submitting CLI), one per job.
    with open(log, encoding="utf-8") as fh:
        fh.seek(log_start)
        lines = BUNDLE_LINE.findall(fh.read())
    assert lines, "no bundle processed by a pool worker"
    assert len({pid for pid, _, _ in lines}) == 1  # Prism: one SDK worker per environment
    assert {int(parent) for _, parent, _ in lines} == {deployment.pid("pool")}
    assert all(worker.startswith(new[0][0] + "[") for _, _, worker in lines), lines  # this job's


def test_split_input_equals_direct_one_and_two_workers(deployment, tmp_path):
    args = ["--input", str(FIXTURES / "nested_manifests"), "--set", "input.split_mb=0.01"]
    done = deployment.submit(*args, "--output", str(tmp_path / "portable"))
    assert done.returncode == 0, done.stderr[-3000:]
    for name, flags in {
        "direct1": ["--direct_num_workers", "1"],
        "direct2": ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
    }.items():
        ran = run_cli(args + flags + ["--output", str(tmp_path / name)], cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr[-3000:]
        same_result(tmp_path / name, tmp_path / "portable")


def test_up_twice_is_refused_and_changes_nothing(deployment):
    again = script("portable.sh", "up", env=deployment.env)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0
    assert "already up" in again.stderr and "down" in again.stderr
    assert pid_alive(deployment.pid("prism")) and pid_alive(deployment.pid("pool"))


def test_a_busy_port_is_a_one_line_error_and_starts_nothing(tmp_path):
    require_or_skip(
        os.access(PRISM, os.X_OK),
        f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
    )
    import socket

    ports = free_ports(3)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", ports[2]))
        busy.listen()
        up = script("portable.sh", "up", env=_env(tmp_path, ports))
    assert up.returncode == 2
    assert up.stderr.strip() == (
        f"portable.sh: error: port {ports[2]} (ALM_WORKER_POOL_PORT) is "
        "already in use; free it or set ALM_WORKER_POOL_PORT to "
        "another port"
    )
    assert not (tmp_path / "prism.pid").exists() and not (tmp_path / "pool.pid").exists()
    assert wait_closed(ports[0])


def test_down_stops_only_what_up_started(tmp_path):
    """A bystander process survives `down`; `down` with nothing up says so."""
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        env = _env(tmp_path, free_ports(3))
        down = script("portable.sh", "down", env=env)
        assert down.returncode == 0
        assert down.stdout.strip() == "portable.sh: nothing was running"
        # a stale pid file naming someone else's process is not ours to stop
        (tmp_path / "prism.pid").write_text(str(bystander.pid))
        (tmp_path / "prism.start").write_text("1")
        down = script("portable.sh", "down", env=env)
        assert down.returncode == 0
        assert pid_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_submit_without_up_is_a_one_line_error(tmp_path):
    done = script("portable.sh", "submit", "--output", str(tmp_path / "o"), env=_env(tmp_path, free_ports(3)))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "portable.sh: error: the portable deployment is not up; start it with 'bash pipelines/portable.sh up'"
    )


def test_a_job_service_lost_mid_run_is_one_line_and_commits_nothing(tmp_path):
    """Prism killed while a job runs: the CLI says which job service went away, in
    one line, exit 1, and the output directory holds no result (no shard, no
    summary.json); `down` then cleans up what is left."""
    require_or_skip(
        os.access(PRISM, os.X_OK),
        f"no Prism binary at {PRISM}; build it with `bash pipelines/prism.sh build`",
    )
    dep = Deployment(tmp_path / "state", free_ports(3))
    dep.state.mkdir()
    manifest = tmp_path / "big.jsonl"
    subprocess.run(
        [sys.executable, "-m", "alm_beam.synth", "--entries", "3000", "--out", str(manifest)],
        check=True,
        capture_output=True,
    )
    up = script("portable.sh", "up", env=dep.env)
    assert up.returncode == 0, up.stderr
    try:
        out = tmp_path / "out"
        env = dict(dep.env, PATH=os.path.dirname(sys.executable) + os.pathsep + dep.env["PATH"])
        cli = subprocess.Popen(
            [
                "bash",
                str(REPO / "pipelines" / "portable.sh"),
                "submit",
                "--input",
                str(manifest),
                "--output",
                str(out),
                "--quiet",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        endpoint = f"localhost:{dep.ports[0]}"
        deadline = time.monotonic() + 120
        while not any(state == "RUNNING" for _, _, state in job_states(endpoint)):
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "the job never reached RUNNING"
            time.sleep(0.1)
        os.kill(dep.pid("prism"), signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=120)
    finally:
        down = script("portable.sh", "down", env=dep.env)
    assert cli.returncode == 1, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith(
        f"alm_beam: error: job failed: the job service at {endpoint} stopped answering during the run ("
    ), stderr
    assert stderr.rstrip().endswith(f"nothing was committed to {out}"), stderr
    assert "alm_beam run summary" not in stdout
    assert not (out / "summary.json").exists()
    assert not list(out.glob("windows-*")) and not list(out.glob("errors-*"))
    assert down.returncode == 0, down.stderr
