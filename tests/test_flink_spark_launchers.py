"""pipelines/flink.sh and pipelines/spark.sh against real Flink and Spark processes:
`up` brings the cluster up on 127.0.0.1, the cluster's own status API answers
(Flink REST /overview, Spark master /json/), `down` leaves nothing.

The distributions are installed by `bash pipelines/flink.sh install` and
`bash pipelines/spark.sh install` (CI does; skipped locally without them).
Submitting a job needs Beam's Flink/Spark job-server jar, which the Maven registry
reachable here does not serve: those tests run when ALM_FLINK_JOB_SERVER_JAR /
ALM_SPARK_JOB_SERVER_JAR names the jar, and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from conftest import require_or_skip
from runner_helpers import (
    assert_matches_golden,
    descendants,
    free_ports,
    golden_input,
    listening,
    script,
    wait_gone,
)

from alm_beam.execution.runners import cache_root

pytestmark = pytest.mark.e2e

FLINK_VERSION = os.environ.get("ALM_FLINK_VERSION", "2.2.1")
SPARK_VERSION = os.environ.get("ALM_SPARK_VERSION", "3.5.9")
FLINK_HOME = os.path.join(cache_root(), "flink", FLINK_VERSION)
SPARK_HOME = os.path.join(cache_root(), "spark", SPARK_VERSION)


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class Cluster:
    def __init__(self, script_name, state, env, names, ports):
        self.script, self.state, self.env, self.names, self.ports = (script_name, state, env, names, ports)
        self.pids: set = set()

    def remember(self):
        for name in self.names:
            pid = int((self.state / f"{name}.pid").read_text())
            self.pids.update([pid] + descendants(pid))

    def down(self):
        done = script(self.script, "down", env=self.env)
        assert done.returncode == 0, done.stderr
        assert wait_gone(sorted(self.pids)) == [], f"{self.script} down left processes"
        assert not any(listening(p) for p in self.ports)
        return done


def _cluster(script_name, tmp_path, installed, install_hint, names, port_vars, state_var):
    require_or_skip(
        os.path.isfile(os.path.join(installed, ".installed")),
        f"no distribution at {installed}; run `{install_hint}`",
    )
    ports = free_ports(len(port_vars))
    env = dict(os.environ, **{var: str(port) for var, port in zip(port_vars, ports)})
    env[state_var] = str(tmp_path / "state")
    cluster = Cluster(script_name, tmp_path / "state", env, names, ports)
    up = script(script_name, "up", env=env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        cluster.remember()
    except BaseException:
        script(script_name, "down", env=env)
        raise
    return cluster


@pytest.fixture
def flink(tmp_path):
    cluster = _cluster(
        "flink.sh",
        tmp_path,
        FLINK_HOME,
        "bash pipelines/flink.sh install",
        ["jobmanager", "taskmanager", "pool"],
        ["ALM_FLINK_REST_PORT", "ALM_FLINK_RPC_PORT", "ALM_FLINK_POOL_PORT"],
        "ALM_FLINK_STATE_DIR",
    )
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def spark(tmp_path):
    cluster = _cluster(
        "spark.sh",
        tmp_path,
        SPARK_HOME,
        "bash pipelines/spark.sh install",
        ["master", "worker", "pool"],
        [
            "ALM_SPARK_MASTER_PORT",
            "ALM_SPARK_MASTER_WEBUI_PORT",
            "ALM_SPARK_WORKER_WEBUI_PORT",
            "ALM_SPARK_POOL_PORT",
        ],
        "ALM_SPARK_STATE_DIR",
    )
    try:
        yield cluster
    finally:
        cluster.down()


def test_flink_up_reports_its_cluster_and_down_leaves_nothing(flink):
    overview = _get_json(f"http://127.0.0.1:{flink.ports[0]}/overview")
    assert overview["flink-version"] == FLINK_VERSION
    assert overview["taskmanagers"] == 1
    assert overview["slots-total"] == 2
    assert overview["jobs-running"] == 0
    status = script("flink.sh", "status", env=flink.env)
    assert json.loads(status.stdout)["taskmanagers"] == 1
    again = script("flink.sh", "up", env=flink.env)
    assert again.returncode == 2 and "already up" in again.stderr


def test_spark_up_reports_its_cluster_and_down_leaves_nothing(spark):
    master = _get_json(f"http://127.0.0.1:{spark.ports[1]}/json/")
    assert master["status"] == "ALIVE"
    assert master["url"] == f"spark://127.0.0.1:{spark.ports[0]}"
    assert master["aliveworkers"] == 1
    assert [w["state"] for w in master["workers"]] == ["ALIVE"]
    assert master["workers"][0]["host"] == "127.0.0.1"
    status = script("spark.sh", "status", env=spark.env)
    assert json.loads(status.stdout)["aliveworkers"] == 1


def _jar_or_skip(variable: str) -> str:
    jar = os.environ.get(variable)
    if not jar:  # not require_or_skip: the jar is not obtainable here (README, Engines)
        pytest.skip(
            f"{variable} is not set: Beam's job-server jar is needed to submit a job "
            "(not served by the Maven registry reachable here)"
        )
    return jar


@pytest.mark.parametrize("environment_type", ["LOOPBACK", "EXTERNAL"])
def test_flink_submit_matches_golden(environment_type, tmp_path):
    _jar_or_skip("ALM_FLINK_JOB_SERVER_JAR")
    cluster = _cluster(
        "flink.sh",
        tmp_path,
        FLINK_HOME,
        "bash pipelines/flink.sh install",
        ["jobmanager", "taskmanager", "pool"],
        ["ALM_FLINK_REST_PORT", "ALM_FLINK_RPC_PORT", "ALM_FLINK_POOL_PORT"],
        "ALM_FLINK_STATE_DIR",
    )
    try:
        cluster.env["ALM_FLINK_ENVIRONMENT_TYPE"] = environment_type
        done = script(
            "flink.sh",
            "submit",
            "--input",
            golden_input("sample_default"),
            "--output",
            str(tmp_path / "out"),
            env=cluster.env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert_matches_golden(tmp_path / "out", "sample_default")
        overview = _get_json(f"http://127.0.0.1:{cluster.ports[0]}/overview")
        assert overview["jobs-finished"] == 1 and overview["jobs-failed"] == 0
    finally:
        cluster.down()


@pytest.mark.parametrize("environment_type", ["LOOPBACK", "EXTERNAL"])
def test_spark_submit_matches_golden(environment_type, tmp_path):
    _jar_or_skip("ALM_SPARK_JOB_SERVER_JAR")
    cluster = _cluster(
        "spark.sh",
        tmp_path,
        SPARK_HOME,
        "bash pipelines/spark.sh install",
        ["master", "worker", "pool"],
        [
            "ALM_SPARK_MASTER_PORT",
            "ALM_SPARK_MASTER_WEBUI_PORT",
            "ALM_SPARK_WORKER_WEBUI_PORT",
            "ALM_SPARK_POOL_PORT",
        ],
        "ALM_SPARK_STATE_DIR",
    )
    try:
        cluster.env["ALM_SPARK_ENVIRONMENT_TYPE"] = environment_type
        done = script(
            "spark.sh",
            "submit",
            "--input",
            golden_input("sample_default"),
            "--output",
            str(tmp_path / "out"),
            env=cluster.env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert_matches_golden(tmp_path / "out", "sample_default")
        master = _get_json(f"http://127.0.0.1:{cluster.ports[1]}/json/")
        assert [app["state"] for app in master["completedapps"]] == ["FINISHED"]
    finally:
        cluster.down()


def test_submit_without_up_is_a_one_line_error(tmp_path):
    for name, state_var in (("flink.sh", "ALM_FLINK_STATE_DIR"), ("spark.sh", "ALM_SPARK_STATE_DIR")):
        done = script(name, "submit", env=dict(os.environ, **{state_var: str(tmp_path)}))
        assert done.returncode == 2
        assert done.stderr.strip().startswith(f"{name}: error: the ")
        assert done.stderr.strip().count("\n") == 0
