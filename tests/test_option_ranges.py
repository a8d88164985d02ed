"""Issue 19 item 7: every numeric Beam option alm_beam plans with or relies on
has a range, checked before anything starts (one line, exit 2).

``--direct_num_workers=-1`` was a 42-line IndexError; 24 workers on 2 cores
started 48 processes; a huge in-memory count died with "can't start new
thread".
"""

import os

import pytest
from conftest import FIXTURES

from alm_beam import run
from alm_beam.execution.beam_flags import MAX_WORKERS_ENV, worker_ceiling

SAMPLE = FIXTURES / "sample_input.jsonl"
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _main(args, capsys):
    code = run.main(["--input", str(SAMPLE), "--quiet"] + args)
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(MAX_WORKERS_ENV, raising=False)


def test_the_ceiling_is_four_per_cpu_and_overridable(monkeypatch):
    assert worker_ceiling() == 4 * CPUS
    monkeypatch.setenv(MAX_WORKERS_ENV, "100")
    assert worker_ceiling() == 100


CEILING_TEXT = f"(4 x this machine's {CPUS} CPUs; set {MAX_WORKERS_ENV} to allow more)"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--direct_num_workers=-1"], f"--direct_num_workers=-1: allowed: 1 .. {4 * CPUS} {CEILING_TEXT}"),
        (["--direct_num_workers=0"], f"--direct_num_workers=0: allowed: 1 .. {4 * CPUS} {CEILING_TEXT}"),
        (
            ["--direct_num_workers", str(4 * CPUS + 1), "--direct_running_mode", "multi_processing"],
            f"--direct_num_workers={4 * CPUS + 1}: allowed: 1 .. {4 * CPUS} {CEILING_TEXT}",
        ),
        (
            ["--direct_num_workers=100000000"],
            f"--direct_num_workers=100000000: allowed: 1 .. {4 * CPUS} {CEILING_TEXT}",
        ),
        (["--job_port=70000"], "--job_port=70000: allowed: 0 .. 65535 (0: any free port)"),
        (["--artifact_port=-5"], "--artifact_port=-5: allowed: 0 .. 65535 (0: any free port)"),
        (["--expansion_port=65536"], "--expansion_port=65536: allowed: 0 .. 65535 (0: any free port)"),
        (["--job_server_timeout=0"], "--job_server_timeout=0: allowed: 1 .. 86400 (seconds)"),
        (["--parallelism=0"], "--parallelism=0: allowed: -1 (the engine's default) or 1 .. 32768"),
        (
            ["--max_parallelism=40000"],
            "--max_parallelism=40000: allowed: -1 (the engine's default) or 1 .. 32768",
        ),
        (
            ["--sdk_worker_parallelism=-3"],
            f"--sdk_worker_parallelism=-3: allowed: 0 (the runner chooses) .. {4 * CPUS} {CEILING_TEXT}",
        ),
    ],
)
def test_out_of_range_is_one_line_before_anything_starts(tmp_path, capsys, flags, message):
    code, err = _main(["--output", str(tmp_path / "out")] + flags, capsys)
    assert code == 2
    assert err.splitlines() == [f"alm_beam: error: {message}"]
    assert not (tmp_path / "out").exists()


def test_a_config_value_is_checked_the_same(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("pipeline_options:\n  direct_num_workers: -1\n")
    code, err = _main(["--config", str(config), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"alm_beam: error: --direct_num_workers=-1: allowed: 1 .. {4 * CPUS} {CEILING_TEXT}"
    ]


def test_the_override_allows_more_and_is_checked_itself(tmp_path, capsys, monkeypatch):
    from alm_beam.core.params import ConfigError
    from alm_beam.execution.beam_flags import beam_option_parser, check_command_line

    parser = beam_option_parser()
    monkeypatch.setenv(MAX_WORKERS_ENV, str(4 * CPUS + 8))
    known = check_command_line(parser, [], [f"--direct_num_workers={4 * CPUS + 8}"])
    assert known.direct_num_workers == 4 * CPUS + 8
    for bad in ("0", "many", "-2"):
        monkeypatch.setenv(MAX_WORKERS_ENV, bad)
        with pytest.raises(ConfigError) as err:
            check_command_line(parser, [], ["--direct_num_workers=2"])
        assert str(err.value) == f"{MAX_WORKERS_ENV}={bad!r}: expected a whole number >= 1"


@pytest.mark.e2e
def test_values_in_range_still_run(tmp_path, capsys):
    code, err = _main(
        ["--output", str(tmp_path / "out"), "--direct_num_workers", "2", "--job_server_timeout", "60"], capsys
    )
    assert code == 0, err
