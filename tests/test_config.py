"""Configuration: defaults, YAML, --set, validation messages; all before any pipeline."""

import pytest
from conftest import REPO

from alm_beam import run
from alm_beam.config import build_config, load_yaml, parse_set
from alm_beam.core.params import ConfigError


def cfg(*sets, raw=None):
    return build_config(raw or {}, [parse_set(s) for s in sets])


def test_defaults_are_the_tutorial_values():
    c = cfg()
    b, o = c.params.builder, c.params.overlap
    assert (b.target_window_duration, b.tolerance, b.min_sample_rate, b.min_bandwidth) == (
        120.0,
        0.1,
        16000,
        8000,
    )
    assert (b.min_speakers, b.max_speakers, b.truncation) == (2, 5, True)
    assert b.drop_fields == ("words",) and b.drop_fields_top_level == ("words", "segments")
    assert (o.overlap_percentage, o.target_duration) == (50, 120.0)
    assert b.min_duration == 120.0 - 120.0 * 0.1 and b.max_duration == 120.0 + 120.0 * 0.1


def test_default_yaml_equals_builtin_defaults():
    assert build_config(load_yaml(str(REPO / "configs" / "default.yaml"))).params == cfg().params


@pytest.mark.parametrize("name", ["default", "short_windows", "permissive", "aggressive_overlap"])
def test_shipped_configs_are_valid(name):
    build_config(load_yaml(str(REPO / "configs" / f"{name}.yaml")))


def test_short_windows_recipe():
    p = build_config(load_yaml(str(REPO / "configs" / "short_windows.yaml"))).params
    assert (p.builder.target_window_duration, p.builder.tolerance) == (30, 0.2)
    assert (p.builder.min_speakers, p.builder.max_speakers) == (2, 3)
    assert (p.overlap.overlap_percentage, p.overlap.target_duration) == (30, 30)


def test_set_values_are_yaml():
    c = cfg(
        "builder.truncation=false",
        "builder.min_speakers=3",
        "builder.drop_fields=[words, confidence]",
        "overlap.overlap_percentage=30",
        "output.compact=true",
    )
    assert c.params.builder.truncation is False
    assert c.params.builder.min_speakers == 3
    assert c.params.builder.drop_fields == ("words", "confidence")
    assert c.params.overlap.overlap_percentage == 30
    assert c.output.compact is True


def test_comma_string_drop_fields_like_the_reference():
    assert cfg("builder.drop_fields=words,text").params.builder.drop_fields == ("words", "text")


def test_set_wins_over_yaml():
    c = cfg("builder.max_speakers=4", raw={"builder": {"max_speakers": 3}})
    assert c.params.builder.max_speakers == 4


@pytest.mark.parametrize(
    "setting,needle",
    [
        ("builder.tolerance=1", "builder.tolerance=1: out of range; allowed: 0 <= tolerance < 1"),
        ("builder.tolerance=-0.1", "0 <= tolerance < 1"),
        ("builder.target_window_duration=0", "builder.target_window_duration=0"),
        ("overlap.overlap_percentage=101", "0 <= overlap_percentage <= 100"),
        ("overlap.target_duration=-5", "overlap.target_duration=-5: out of range; allowed: > 0"),
        ("builder.min_sample_rate=-1", "builder.min_sample_rate=-1"),
        ("builder.min_bandwidth=-1", "builder.min_bandwidth=-1"),
        ("builder.min_speakers=2.5", "expected an integer"),
        ("builder.truncation=maybe", "builder.truncation='maybe': expected true or false"),
        ("builder.tolerance=true", "expected a number"),
        ("builder.drop_fields=5", "builder.drop_fields=5"),
        ("builder.drop_fields=[start]", "may not drop 'start'"),
        ("builder.window=3", "builder.window: unknown key"),
        ("overlap.threshold=3", "overlap.threshold: unknown key"),
        ("output.num_shards=-1", "output.num_shards=-1"),
        ("input.max_error_fraction=2", "0 <= max_error_fraction <= 1"),
        ("input.reshuffle=sometimes", "input.reshuffle='sometimes': allowed: auto, true, false"),
        ("input.max_line_mb=0", "input.max_line_mb=0: allowed: a number of MB, 0.001 <= max_line_mb"),
        ("input.max_line_mb=0.0001", "0.001 <= max_line_mb <= 1.04858e+06"),
        ("input.max_line_mb=.inf", "input.max_line_mb=.inf: not a finite number"),
        ("input.max_line_mb=.nan", "input.max_line_mb=.nan: not a finite number"),
        ("input.max_line_mb=big", "input.max_line_mb='big'"),
        ("nosection.x=1", "unknown section 'nosection'"),
    ],
)
def test_invalid_values_name_key_value_and_range(setting, needle):
    with pytest.raises(ConfigError) as err:
        cfg(setting)
    assert needle in str(err.value)


def test_max_line_mb_default_and_bytes():
    assert cfg().input.max_line_mb == 64 and cfg().input.max_line_bytes == 64 << 20
    assert cfg("input.max_line_mb=0.01").input.max_line_bytes == 10485
    assert cfg("input.max_line_mb=2").input.max_line_bytes == 2 << 20


def test_min_speakers_above_max_speakers():
    with pytest.raises(ConfigError, match=r"builder.min_speakers=4 > builder.max_speakers=3"):
        cfg("builder.min_speakers=4", "builder.max_speakers=3")


def test_set_without_section_or_equals():
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_set("min_speakers=3")
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_set("builder.min_speakers")


def test_unknown_top_level_section_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bulider:\n  min_speakers: 3\n")
    with pytest.raises(ConfigError, match="bulider: unknown section"):
        build_config(load_yaml(str(path)))


def test_pipeline_options_become_leading_flags():
    c = build_config(
        {
            "pipeline_options": {
                "direct_num_workers": 2,
                "save_main_session": True,
                "experiments": ["a", "b"],
                "skip": False,
            }
        }
    )
    assert c.pipeline_options == (
        "--direct_num_workers=2",
        "--save_main_session",
        "--experiments=a",
        "--experiments=b",
    )


@pytest.mark.e2e
def test_entry_point_rejects_bad_config_before_any_pipeline(tmp_path, capsys):
    out = tmp_path / "out"
    code = run.main(["--input", str(tmp_path), "--output", str(out), "--set", "builder.min_speakers=9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "builder.min_speakers=9 > builder.max_speakers=5" in err
    assert not out.exists()


@pytest.mark.e2e
def test_entry_point_rejects_unknown_flags(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text("")
    # (the input is the file: an output inside an input directory is refused too)
    code = run.main(["--input", str(tmp_path / "m.jsonl"), "--output", str(tmp_path / "o"), "--inptu", "x"])
    assert code == 2
    assert "--inptu" in capsys.readouterr().err


@pytest.mark.e2e
def test_help_lists_our_options(capsys):
    with pytest.raises(SystemExit) as done:
        run.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--input",
        "--output",
        "--config",
        "--set",
        "--num_shards",
        "--compact",
        "--overwrite",
        "--max_error_fraction",
        "builder.min_speakers",
        "input.max_line_mb",
    ):
        assert flag in text
