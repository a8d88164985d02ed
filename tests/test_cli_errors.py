"""The command line's own mistakes: one line, exit 2, before any pipeline exists.

Covers issue 10 items 1 (shell-expanded globs), 10 (YAML alias bomb, short
values in messages), 11 (config values checked against what the pipeline can
process; numbers as a user reads them), 12 (output location checks before the
pipeline; unknown runner) and 13 (the real error first and alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from bad_inputs.corpus import run_in_process
from conftest import FIXTURES

from alm_beam.config import build_config, load_yaml, parse_set
from alm_beam.core.params import ConfigError
from alm_beam.run import build_arg_parser, resolve_config

SAMPLE = FIXTURES / "sample_input.jsonl"
SAMPLE_ENTRIES = 5
STRAY = (
    "alm_beam: error: unexpected argument(s): 'b.jsonl'; give several inputs after one "
    "--input (--input a.jsonl b.jsonl) and quote a glob (--input 'dir/*.jsonl')"
)
INT64 = "integers must fit in 64 bits (at most 9223372036854775807)"


def cli(args, cwd=None):
    """main() in this process, run from ``cwd`` (relative paths land there)."""
    old = os.getcwd()
    os.chdir(cwd or old)
    try:
        return run_in_process(args)
    finally:
        os.chdir(old)


def one_error_line(result) -> str:
    assert result.code == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def subprocess_cli(args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return proc


@pytest.fixture
def inputs(tmp_path):
    """Three copies of the sample manifest, as a shell glob would name them."""
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        shutil.copy(SAMPLE, tmp_path / name)
    return tmp_path


# --- item 1: several paths after --input; a stray argument is an error ----------


def test_input_takes_several_paths_and_is_repeatable():
    args, rest = build_arg_parser().parse_known_args(
        ["--input", "a.jsonl", "b.jsonl", "--input", "c.jsonl", "--output", "o"]
    )
    assert rest == []
    assert resolve_config(args).input.paths == ("a.jsonl", "b.jsonl", "c.jsonl")


@pytest.mark.e2e
def test_shell_expanded_glob_reads_every_file(inputs):
    """What `--input dir/*.jsonl` unquoted becomes: every file after --input is read."""
    proc = subprocess_cli(["--input", "a.jsonl", "b.jsonl", "c.jsonl", "--output", "out"], cwd=inputs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((inputs / "out" / "summary.json").read_text())
    assert summary["entries_read"] == 3 * SAMPLE_ENTRIES
    assert [os.path.basename(p) for p in summary["inputs"]] == ["a.jsonl", "b.jsonl", "c.jsonl"]


@pytest.mark.parametrize(
    "args",
    [
        ["--input", "a.jsonl", "--output", "out", "b.jsonl"],
        ["--input", "a.jsonl", "--runner", "DirectRunner", "b.jsonl", "--output", "out"],
        ["--input", "a.jsonl", "--runner=DirectRunner", "b.jsonl", "--output", "out"],
        ["--input", "a.jsonl", "--direct_num_workers", "1", "b.jsonl", "--output", "out"],
        ["--input", "a.jsonl", "--streaming", "b.jsonl", "--output", "out"],  # after a bool flag
        ["b.jsonl", "--input", "a.jsonl", "--output", "out"],
    ],
    ids=[
        "after-own-flag",
        "after-beam-flag-value",
        "after-beam-flag=value",
        "after-beam-int-flag",
        "after-beam-bool-flag",
        "first",
    ],
)
def test_stray_argument_is_refused(args, inputs):
    result = cli(args, cwd=inputs)
    assert one_error_line(result) == STRAY
    assert not (inputs / "out").exists()


def test_several_strays_are_named_up_to_three(inputs):
    result = cli(
        [
            "--output",
            "out",
            "--input",
            "a.jsonl",
            "--streaming",
            "b.jsonl",
            "c.jsonl",
            "d.jsonl",
            "e.jsonl",
            "f.jsonl",
        ],
        cwd=inputs,
    )
    assert one_error_line(result) == (
        "alm_beam: error: unexpected argument(s): 'b.jsonl', 'c.jsonl', 'd.jsonl' and 2 more; "
        "give several inputs after one --input (--input a.jsonl b.jsonl) and quote a glob "
        "(--input 'dir/*.jsonl')"
    )


@pytest.mark.parametrize(
    "flags,runner,workers,mode,streaming",
    [
        (["--runner", "DirectRunner"], "DirectRunner", None, None, False),
        (["--runner=DirectRunner"], "DirectRunner", None, None, False),
        (
            ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
            None,
            2,
            "multi_processing",
            False,
        ),
        (["--streaming", "--runner", "FlinkRunner"], "FlinkRunner", None, None, True),
    ],
)
def test_beam_flag_values_are_not_strays(flags, runner, workers, mode, streaming):
    from alm_beam.execution.beam_flags import beam_option_parser, check_command_line

    known = check_command_line(beam_option_parser(), [], flags)
    assert (known.runner, known.direct_num_workers, known.streaming) == (runner, workers or 1, streaming)
    if mode:
        assert known.direct_running_mode == mode


# --- item 10: alias bombs and long values ------------------------------------------


def alias_bomb(levels: int = 6) -> str:
    """A few hundred bytes that PyYAML expands into 9**levels strings."""
    items = ["&l0 [x, x, x, x, x, x, x, x, x]"]
    items += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "builder:\n  max_speakers: [" + ", ".join(items) + "]\n"


def test_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 600
    result = cli(["--config", str(path), "--output", str(tmp_path / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --config {path}: not valid YAML: line 2, column 18: YAML anchors "
        "and aliases (&l0) are not supported in a config; write the value out"
    )


def test_a_plain_alias_is_refused_too(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("builder:\n  min_speakers: 2\n  max_speakers: *two\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(str(path))
    assert str(exc.value) == (
        f"--config {path}: not valid YAML: line 3, column 17: YAML "
        "anchors and aliases (*two) are not supported in a config; write "
        "the value out"
    )


@pytest.mark.parametrize(
    "yaml_value,shown,problem",
    [
        ('"' + "x" * 1_000_000 + '"', "'" + "x" * 27 + "..." + "x" * 28 + "'", "expected an integer"),
        (
            "[" + ", ".join(str(i) for i in range(100_000)) + "]",
            "[0, 1, 2, 3, 4, 5, ...]",
            "expected an integer",
        ),
        ("1" * 5000, "1" * 28 + "..." + "1" * 29, f"an integer of 5000 digits; {INT64}"),
        (
            "{" + ", ".join(f"k{i}: {i}" for i in range(10_000)) + "}",
            "{'k0': 0, 'k1': 1, 'k10': 10, 'k100': 100, ...}",
            "expected an integer",
        ),
    ],
    ids=["long-string", "long-list", "5000-digit-integer", "big-mapping"],
)
def test_messages_show_only_a_short_prefix_of_a_value(tmp_path, yaml_value, shown, problem):
    path = tmp_path / "c.yaml"
    path.write_text(f"builder:\n  max_speakers: {yaml_value}\n")
    result = cli(["--config", str(path), "--output", str(tmp_path / "out")])
    assert one_error_line(result) == f"alm_beam: error: builder.max_speakers={shown}: {problem}"


# --- item 11: values the pipeline cannot process; numbers as a user reads them -----


@pytest.mark.parametrize(
    "setting,message",
    [
        (
            "builder.max_speakers=100000000000000000000000",
            f"builder.max_speakers=100000000000000000000000: out of range; {INT64}",
        ),
        (
            "builder.min_sample_rate=18446744073709551616",
            f"builder.min_sample_rate=18446744073709551616: out of range; {INT64}",
        ),
        (
            "builder.min_bandwidth=-9223372036854775809",
            f"builder.min_bandwidth=-9223372036854775809: out of range; {INT64}",
        ),
        (
            "output.max_raw_chars=9223372036854775808",
            f"output.max_raw_chars=9223372036854775808: out of range; {INT64}",
        ),
        (
            "input.split_mb=1e-300",
            "input.split_mb=1e-300: allowed: auto, or "
            "9.5367431640625e-07 (one byte) <= split_mb <= 8796093022207 (a 64-bit byte count)",
        ),
        (
            "input.split_mb=1e300",
            "input.split_mb=1e+300: allowed: auto, or "
            "9.5367431640625e-07 (one byte) <= split_mb <= 8796093022207 (a 64-bit byte count)",
        ),
        (
            "output.num_shards=100001",
            "output.num_shards=100001: allowed: an integer 0..100000 (0: the runner decides)",
        ),
        ("builder.tolerance=1e3", "builder.tolerance=1000.0: out of range; allowed: 0 <= tolerance < 1"),
        ("builder.max_speakers=0x10", "builder.max_speakers=0x10: not a decimal number; write 16"),
        ("builder.max_speakers=0o17", "builder.max_speakers=0o17: not a decimal number; write 15"),
        ("builder.tolerance=.inf", "builder.tolerance=.inf: not a finite number"),
        ("builder.tolerance=-.inf", "builder.tolerance=-.inf: not a finite number"),
        ("builder.tolerance=.nan", "builder.tolerance=.nan: not a finite number"),
        ("builder.tolerance=nan", "builder.tolerance=nan: not a finite number"),
        (
            "builder.target_window_duration=1e999",
            "builder.target_window_duration=1e999: beyond the largest number (about 1.8e308)",
        ),
        ("builder.min_speakers=1.2.3", "builder.min_speakers=1.2.3: not a number"),
        ("input.max_error_fraction=.nan", "input.max_error_fraction=.nan: not a finite number"),
    ],
)
def test_out_of_range_values_are_one_line(tmp_path, setting, message):
    result = cli(["--input", str(SAMPLE), "--output", str(tmp_path / "out"), "--set", setting])
    assert one_error_line(result) == f"alm_beam: error: {message}"
    assert not (tmp_path / "out").exists()


def test_window_bounds_must_be_finite():
    with pytest.raises(ConfigError) as exc:
        build_config(
            {}, [parse_set("builder.target_window_duration=1e308"), parse_set("builder.tolerance=0.9")]
        )
    assert str(exc.value) == (
        "builder.target_window_duration=1e+308 with builder.tolerance=0.9: the longest window "
        "(target_window_duration * (1 + tolerance)) is beyond the largest number; allowed: a "
        "smaller target_window_duration"
    )


@pytest.mark.parametrize(
    "setting,field,value",
    [
        ("builder.target_window_duration=1e3", "target_window_duration", 1000.0),
        ("builder.tolerance=1e-1", "tolerance", 0.1),
        ("builder.tolerance=.5", "tolerance", 0.5),
        ("builder.max_speakers=010", "max_speakers", 10),
        ("builder.max_speakers=+3", "max_speakers", 3),
        ("builder.min_sample_rate=16_000", "min_sample_rate", 16000),
        ("builder.max_speakers=5.", "max_speakers", 5),
        ("builder.max_speakers=9223372036854775807", "max_speakers", 9223372036854775807),
    ],
)
def test_numbers_parse_as_a_user_reads_them(setting, field, value):
    got = getattr(build_config({}, [parse_set(setting)]).params.builder, field)
    assert got == value and type(got) is type(value)


def test_config_file_numbers_follow_the_same_rules(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("builder:\n  max_speakers: 010\n  target_window_duration: 1e2\ninput:\n  split_mb: .5\n")
    cfg = build_config(load_yaml(str(path)))
    assert (
        cfg.params.builder.max_speakers,
        cfg.params.builder.target_window_duration,
        cfg.input.split_mb,
    ) == (10, 100.0, 0.5)


def test_quoted_numbers_stay_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('output:\n  path: "010"\n')
    assert build_config(load_yaml(str(path))).output.path == "010"


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"builder:\n  min_speakers: 2 # \xff\xfe\n")
    result = cli(["--config", str(path), "--output", str(tmp_path / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --config {path}: not UTF-8 text (byte 0xff at offset 29); save it as UTF-8"
    )


def test_deeply_nested_yaml_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("builder:\n  max_speakers: " + "[" * 100_000 + "\n")
    result = cli(["--config", str(path), "--output", str(tmp_path / "out")])
    assert one_error_line(result) == f"alm_beam: error: --config {path}: YAML nested too deeply"


def test_yaml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("builder:\n  min_speakers: [2\n  max_speakers: 3\n")
    result = cli(["--config", str(path), "--output", str(tmp_path / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --config {path}: not valid YAML: line 3, column 15: expected ',' "
        "or ']', but got ':'"
    )


@pytest.mark.e2e
def test_largest_integer_values_run_to_the_end(tmp_path):
    """The 64-bit bound is the real one: at the bound the run completes and the
    value is recorded exactly in summary.json."""
    out = tmp_path / "out"
    result = cli(
        [
            "--input",
            str(SAMPLE),
            "--output",
            str(out),
            "--set",
            "builder.max_speakers=9223372036854775807",
            "--set",
            "builder.min_bandwidth=9223372036854775807",
        ]
    )
    assert result.code == 0, result.stderr[-2000:]
    params = json.loads((out / "summary.json").read_text())["params"]["builder"]
    assert (params["max_speakers"], params["min_bandwidth"]) == (2**63 - 1, 2**63 - 1)


# --- item 12: the output location, and the runner, before the pipeline --------------


def test_output_whose_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli(["--input", str(SAMPLE), "--output", str(tmp_path / "file" / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --output {tmp_path}/file/out: its parent {tmp_path}/file is not a "
        "directory; choose another --output"
    )


def test_output_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli(["--input", str(SAMPLE), "--output", str(tmp_path / "file")])
    assert one_error_line(result) == (
        f"alm_beam: error: --output {tmp_path}/file: exists and is not a directory; choose another --output"
    )


def test_probe_leaves_nothing_behind(tmp_path):
    from alm_beam.io.preflight import preflight_local

    preflight_local(str(tmp_path))
    preflight_local(str(tmp_path / "not" / "yet"))
    assert os.listdir(tmp_path) == []


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (a tmpfs mounted ro); skipped where mounting
    is not allowed."""
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_output_on_a_read_only_file_system(read_only_dir):
    result = cli(["--input", str(SAMPLE), "--output", str(read_only_dir / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --output {read_only_dir}/out: cannot write there (in "
        f"{read_only_dir}, where it would be created): Read-only file system; choose a "
        "writable --output"
    )
    result = cli(["--input", str(SAMPLE), "--output", str(read_only_dir)])
    assert one_error_line(result) == (
        f"alm_beam: error: --output {read_only_dir}: cannot write there: Read-only file system;"
        " choose a writable --output"
    )


@pytest.fixture
def immutable_dir(tmp_path):
    """A directory with the immutable attribute (root may not write there either)."""
    path = tmp_path / "immutable"
    path.mkdir()
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a directory immutable here: {made.stderr.strip()}")
    yield path
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_output_in_an_immutable_directory(immutable_dir):
    result = cli(["--input", str(SAMPLE), "--output", str(immutable_dir / "out")])
    assert one_error_line(result) == (
        f"alm_beam: error: --output {immutable_dir}/out: cannot write there (in "
        f"{immutable_dir}, where it would be created): Operation not permitted; choose a "
        "writable --output"
    )
    assert os.listdir(immutable_dir) == []


def test_unknown_runner_is_refused_before_the_pipeline(tmp_path):
    result = cli(["--input", str(SAMPLE), "--output", str(tmp_path / "out"), "--runner", "Flinkk"])
    line = one_error_line(result)
    assert line.startswith("alm_beam: error: --runner Flinkk: unknown runner; known: ")
    assert "FlinkRunner" in line and "DirectRunner" in line
    assert line.endswith(", or the dotted path of a PipelineRunner class")
    assert not (tmp_path / "out").exists()


def test_runner_path_that_cannot_be_imported(tmp_path):
    result = cli(
        ["--input", str(SAMPLE), "--output", str(tmp_path / "out"), "--runner", "no_such_module.FastRunner"]
    )
    assert one_error_line(result) == (
        "alm_beam: error: --runner no_such_module.FastRunner: "
        "cannot be loaded (No module named 'no_such_module')"
    )


# --- item 13: the real error first and alone --------------------------------------

UNRECOGNIZED = (
    "alm_beam: error: unrecognized option(s): {} (neither an alm_beam option nor a "
    "Beam pipeline option; see --help)"
)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args,line",
    [
        (["--outptu", "x"], UNRECOGNIZED.format("--outptu")),
        (["--direct_num_workerz", "2"], UNRECOGNIZED.format("--direct_num_workerz")),
        (["--runer=FlinkRunner"], UNRECOGNIZED.format("--runer")),
        (
            ["--num_shards", "abc"],
            "alm_beam: error: argument --num_shards: invalid int value: 'abc' (see --help)",
        ),
        (
            ["--direct_num_workers", "abc"],
            "alm_beam: error: argument --direct_num_workers: invalid int value: 'abc'",
        ),
        (
            ["--set", "pipeline_options.direct_num_workerz=2"],
            "alm_beam: error: --set pipeline_options.direct_num_workerz: unknown Beam option (see --help)",
        ),
    ],
    ids=["own-flag", "beam-flag", "beam-flag=value", "own-value", "beam-value", "set-option"],
)
def test_misspelled_flag_is_the_only_line(tmp_path, args, line):
    """No "curating the bundled sample" note, no Beam warning: only the error
    (a real process, so Beam's logging would show)."""
    proc = subprocess_cli(args + ["--output", "out"], cwd=tmp_path)
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [line], "")
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_misspelled_config_pipeline_option_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("pipeline_options:\n  direct_num_workerz: 2\n")
    proc = subprocess_cli(["--config", str(path), "--output", "out"], cwd=tmp_path)
    assert (proc.returncode, proc.stderr.splitlines()) == (
        2,
        [
            f"alm_beam: error: --config {path}: pipeline_options.direct_num_workerz: unknown Beam "
            "option (see --help)"
        ],
    )


def test_config_pipeline_option_with_a_bad_value_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("pipeline_options:\n  direct_num_workers: many\n")
    result = cli(["--config", str(path), "--input", str(SAMPLE), "--output", str(tmp_path / "o")])
    assert one_error_line(result) == (
        f"alm_beam: error: --config {path}: pipeline_options.direct_num_workers: argument "
        "--direct_num_workers: invalid int value: 'many'"
    )
