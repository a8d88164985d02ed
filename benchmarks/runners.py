"""Wall time of one generated workload on each local runner, in one invocation:

    python -m benchmarks.runners --entries 3000 --seed 1 [--compact]

- DirectRunner, one worker (the FnApiRunner in the CLI process);
- DirectRunner, two worker processes (``multi_processing``);
- PrismRunner (Prism from ``pipelines/prism.sh build``, SDK harness in the CLI);
- the portable deployment (``pipelines/portable.sh up``; ``submit``: Prism as a job
  service, the SDK harness in a worker process of the pool; ``up`` and ``down`` are
  outside the timing, as for a cluster that is already running);
- with ``--engines flink,spark``: a Flink cluster (``pipelines/flink.sh up``) at
  parallelism 1 and 2 and a Spark cluster (``pipelines/spark.sh up``), each job
  submitted to the launcher's job server with the SDK harness in its worker pool
  (EXTERNAL); ``up`` and ``down`` outside the timing.

Each run is the whole ``python -m alm_beam.run`` process, timed from outside. The
outputs must be the same multiset of lines, or the benchmark fails. Ratios are to
the first run, from the same invocation: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO_PIPELINES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines")


def _lines(out_dir: str) -> collections.Counter:
    """The output lines as a multiset of their SHA-1 digests (the full output is large)."""
    found = collections.Counter()
    for path in glob.glob(os.path.join(out_dir, "windows-*-of-*.jsonl")):
        with open(path, "rb") as fh:
            found.update(hashlib.sha1(line).digest() for line in fh if line.strip())
    return found


def _free_ports(count: int) -> list:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("0.0.0.0", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _timed(argv: list, env=None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"runner_bench: {' '.join(argv[:6])} ... failed:\n{done.stderr[-2000:]}")
    return elapsed


def _engine_runs(engine: str, work: str, env: dict, common: list) -> list:
    """Bring the engine's local cluster up, time its jobs, bring it down."""
    script = ["bash", os.path.join(REPO_PIPELINES, f"{engine}.sh")]
    names = (
        ["ALM_FLINK_REST_PORT", "ALM_FLINK_RPC_PORT", "ALM_FLINK_POOL_PORT", "ALM_FLINK_JOB_PORT"]
        + ["ALM_FLINK_ARTIFACT_PORT"]
        if engine == "flink"
        else ["ALM_SPARK_MASTER_PORT", "ALM_SPARK_MASTER_WEBUI_PORT", "ALM_SPARK_WORKER_WEBUI_PORT"]
        + ["ALM_SPARK_POOL_PORT", "ALM_SPARK_JOB_PORT", "ALM_SPARK_ARTIFACT_PORT"]
    )
    env = dict(env, **dict(zip(names, map(str, _free_ports(len(names))))))
    env[f"ALM_{engine.upper()}_STATE_DIR"] = os.path.join(work, f"{engine}_state")
    env[f"ALM_{engine.upper()}_ENVIRONMENT_TYPE"] = "EXTERNAL"
    runs = (
        [("Flink, parallelism 1", ["--parallelism", "1"]), ("Flink, parallelism 2", ["--parallelism", "2"])]
        if engine == "flink"
        else [("Spark (local cluster, 2 cores)", [])]
    )
    subprocess.run(script + ["up"], env=env, check=True, stdout=subprocess.DEVNULL)
    results = []
    try:
        for i, (name, flags) in enumerate(runs):
            out = os.path.join(work, f"{engine}{i}")
            seconds = _timed(script + ["submit"] + common + flags + ["--output", out], env)
            results.append((f"{name} ({engine}.sh submit, worker pool)", seconds, out))
    finally:
        subprocess.run(script + ["down"], env=env, stdout=subprocess.DEVNULL)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.runners", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--entries", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--compact", action="store_true", help="pass --compact to every run (much smaller output)"
    )
    parser.add_argument(
        "--engines",
        default="",
        help="also run on these local clusters: flink, spark or flink,spark "
        "(needs `bash pipelines/flink.sh install` / `spark.sh install`)",
    )
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(engines) - {"flink", "spark"})
    if unknown:
        parser.error(f"--engines: unknown {', '.join(unknown)} (flink, spark)")

    work = tempfile.mkdtemp(prefix="alm_runner_bench_")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    ports = _free_ports(3)
    env.update(
        ALM_PORTABLE_STATE_DIR=os.path.join(work, "portable_state"),
        ALM_PRISM_JOB_PORT=str(ports[0]),
        ALM_PRISM_WEB_PORT=str(ports[1]),
        ALM_WORKER_POOL_PORT=str(ports[2]),
    )
    try:
        manifest = os.path.join(work, "input.jsonl")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "alm_beam.synth",
                "--entries",
                str(args.entries),
                "--seed",
                str(args.seed),
                "--out",
                manifest,
            ],
            check=True,
        )
        common = ["--input", manifest] + (["--compact"] if args.compact else [])
        cli = [sys.executable, "-m", "alm_beam.run"]
        portable = ["bash", os.path.join(REPO_PIPELINES, "portable.sh")]
        runs = [
            ("DirectRunner, 1 worker", cli + ["--direct_num_workers", "1"]),
            (
                "DirectRunner, 2 workers (multi_processing)",
                cli + ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
            ),
            ("PrismRunner (SDK harness in the CLI process)", cli + ["--runner", "PrismRunner"]),
            ("portable.sh submit (Prism job service + worker pool)", portable + ["submit"]),
        ]
        subprocess.run(portable + ["up"], env=env, check=True, stdout=subprocess.DEVNULL)
        results = []
        try:
            for i, (name, command) in enumerate(runs):
                out = os.path.join(work, f"out{i}")
                results.append((name, _timed(command + common + ["--output", out], env), out))
        finally:
            subprocess.run(portable + ["down"], env=env, stdout=subprocess.DEVNULL)
        for engine in engines:
            results += _engine_runs(engine, work, env, common)
        reference = _lines(results[0][2])
        for name, _, out in results[1:]:
            if _lines(out) != reference:
                raise SystemExit(f"runner_bench: {name} wrote different output")
        size = os.path.getsize(manifest) / 1e6
        print(
            f"{args.entries} generated conversations (seed {args.seed}, {size:.0f} MB), "
            f"{len(reference)} output lines, identical on every runner"
        )
        print("| run | wall s | entries/s | wall vs DirectRunner 1 worker |")
        print("| --- | ---: | ---: | ---: |")
        base = results[0][1]
        for name, seconds, _ in results:
            print(f"| {name} | {seconds:.1f} | {args.entries / seconds:,.0f} | {seconds / base:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
