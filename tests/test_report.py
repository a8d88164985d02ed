"""report.html: self-contained, rebuilt from summary.json alone, and right in a real browser."""

import base64
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES
from headless_chromium import chromium

from alm_beam.results.report import render_html
from alm_beam.results.summary import render_report

BAD_LINES = [
    b'{"audio_filepath": 1}',  # wrong_type:audio_filepath
    b"[1, 2]",  # not_an_object
    b"{not json",  # invalid_json
    b'{"audio_filepath": "</script><b>x", "segments": 3}',
]


def _summary_doc():
    """A summary.json document as a run writes it (small, with every report key)."""
    return {
        "lines_read": 13,
        "blank_lines": 1,
        "entries_read": 12,
        "entries_written": 9,
        "entries_failed": 3,
        "entries_with_windows": 8,
        "entries_with_filtered_windows": 7,
        "entries_below_min_sample_rate": 1,
        "windows": 300,
        "filtered_windows": 40,
        "filtered_timestamps": 39,
        "filtered_dur": 4800.5,
        "total_dur_window": 36000.25,
        "truncation_events": 17,
        "lost_win_full_data_records": 250,
        "stats": {
            "total_segments": 1234,
            "total_dur": 9000.0,
            "lost_bw": 10,
            "dur_lost_bw": 30.0,
            "lost_sr": 20,
            "dur_lost_sr": 60.0,
            "lost_spk": 5,
            "dur_lost_spk": 15.0,
            "lost_win": 899,
            "dur_lost_win": 2697.0,
            "lost_no_spkr": 3,
            "dur_lost_no_spkr": 9.0,
            "lost_next_seg_bm": 7,
            "dur_lost_next_seg_bm": 21.0,
        },
        "errors_by_reason": {"invalid_json": 2, "not_an_object": 1},
        "filtered_hours": 4800.5 / 3600,
        "params": {"builder": {"target_window_duration": 120.0}, "overlap": {}},
        "inputs": ["/d/a.jsonl", "/d/</script>.jsonl"],
        "outputs": {"windows": ["windows-00000-of-00001.jsonl"], "errors": []},
        "max_error_fraction": None,
        "run": {
            "alm_beam": "0.1.0",
            "apache_beam": "2.77.0",
            "runner": "DirectRunner",
            "started_at": "2026-01-01T00:00:00.000Z",
            "finished_at": "2026-01-01T00:00:10.000Z",
            "duration_s": 10.0,
            "process_duration_s": 14.3,
        },
        "distributions": {
            "kept_window_duration_s": {
                "bin_edges": [108.0 + k for k in range(25)],
                "counts": [1] * 24,
                "below_range": 0,
                "above_range": 0,
            },
            "kept_window_speakers": {"values": [2, 3], "counts": [30, 10]},
        },
        "error_examples": {
            "invalid_json": {
                "manifest_filepath": "/d/</script>.jsonl",
                "line": 3,
                "byte_offset": 99,
                "reason": "invalid_json",
                "detail": "bad",
                "raw": "<script>alert(1)</script>",
                "raw_truncated": False,
                "raw_bytes": 25,
            },
            "not_an_object": {
                "manifest_filepath": "/d/a.jsonl",
                "line": 1,
                "byte_offset": 0,
                "reason": "not_an_object",
                "detail": "a list",
                "raw": "[1]",
                "raw_truncated": False,
                "raw_bytes": 3,
            },
        },
        "manifests": {
            "count": 2,
            "lowest_yield": [
                {
                    "manifest_filepath": "/d/</script>.jsonl",
                    "entries_read": 2,
                    "entries_written": 0,
                    "entries_failed": 2,
                    "total_segments": 0,
                    "windows": 0,
                    "filtered_windows": 0,
                    "total_dur": 0.0,
                    "filtered_dur": 0.0,
                    "yield": 0.0,
                },
                {
                    "manifest_filepath": "/d/a.jsonl",
                    "entries_read": 10,
                    "entries_written": 9,
                    "entries_failed": 1,
                    "total_segments": 1234,
                    "windows": 300,
                    "filtered_windows": 40,
                    "total_dur": 9000.0,
                    "filtered_dur": 4800.5,
                    "yield": 4800.5 / 9000.0,
                },
            ],
        },
    }


class _Keyed(html.parser.HTMLParser):
    """{data-key: its element's whole text} of every element the report marks with a number."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open = []  # (tag, key or None)
        self.found = {}

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        key = dict(attrs).get("data-key")
        self.open.append((tag, key))
        if key is not None:
            assert key not in self.found, f"data-key {key} twice"
            self.found[key] = ""

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, key in self.open:
            if key is not None:
                self.found[key] += data


def _data_keys(page):
    parser = _Keyed()
    parser.feed(page)
    parser.close()
    return parser.found


def _no_external_reference(page):
    """Nothing that could load or run anything: no script, link, source or url()."""
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|\bsrc\s*=|\bhref\s*=", page, re.I)
    assert "default-src 'none'" in page  # and a policy that forbids it anyway


# What a person reads for _summary_doc(), worked out by hand (not by the code under
# test): (name, value, what the value is a share of or the note beside it).
HEADLINE = [
    ("lines read", "13", "1 blank"),
    ("entries read", "12", ""),
    ("entries written", "9", ""),
    ("entries rejected", "3", "25.0% of entries read"),
    ("segments", "1,234", "2.50 h"),
    ("windows built", "300", "24.3% of segments"),  # 300 / 1234
    ("windows kept", "40", "13.3% of windows built"),  # 40 / 300
    ("kept audio", "1.33 h", "53.3% of segment audio"),  # 4800.5 s / 9000 s
    ("truncation events", "17", ""),
    ("run time", "14.3 s", "pipeline 10.0 s"),
]
# (counter, segments, % of segments, duration, % of duration)
LOSSES = [
    ("lost_bw", "10", "0.8%", "30.0 s", "0.3%"),
    ("lost_sr", "20", "1.6%", "60.0 s", "0.7%"),
    ("lost_spk", "5", "0.4%", "15.0 s", "0.2%"),
    ("lost_win", "899", "72.9%", "2,697.0 s", "30.0%"),
    ("lost_no_spkr", "3", "0.2%", "9.0 s", "0.1%"),
    ("lost_next_seg_bm", "7", "0.6%", "21.0 s", "0.2%"),
]


def test_funnel_and_loss_numbers_equal_the_summary_without_a_browser():
    shown = _data_keys(render_html(_summary_doc()))
    funnel = [
        ("segments", "1,234", "", "2.50 h"),
        ("windows_built", "300", "24.3% of segments", "10.00 h"),  # total_dur_window 36000.25 s
        ("windows_kept", "40", "13.3% of windows built", "1.33 h"),
    ]
    for stage, count, share, hours in funnel:
        assert shown[f"funnel.{stage}.count"] == count
        assert shown[f"funnel.{stage}.share"] == share
        assert shown[f"funnel.{stage}.hours"] == hours
        chart = shown[f"chart.funnel.{stage}"]  # the bar's own label in the drawn chart
        assert count in chart and share in chart and hours in chart, chart
    for key, count, share, seconds, dur_share in LOSSES:
        dur_key = f"dur_{key}"
        assert shown[f"stats.{key}"] == count
        assert shown[f"stats.{key}.share"] == share
        assert shown[f"stats.{dur_key}"] == seconds
        assert shown[f"stats.{dur_key}.share"] == dur_share
        assert shown[f"chart.losses.{key}"] == f"{count} ({share})"
    assert shown["chart.losses.windows_built"] == "300 (24.3%)"
    for name, value, note in HEADLINE:
        slug = name.replace(" ", "_")
        assert shown[f"headline.{slug}"] == value, name
        assert shown.get(f"headline.{slug}.note", "") == note, name


def test_report_and_cli_summary_say_the_same_thing():
    """Same names, same values, same denominators: docs/output.md, "Headline figures"."""
    doc = _summary_doc()
    cli = render_report(doc, "out")
    shown = _data_keys(render_html(doc))
    for name, value, note in HEADLINE:
        line = re.search(rf"^  {name} +{re.escape(value)}(  \((.*)\))?$", cli, re.M)
        assert line, (name, cli)
        assert (line.group(2) or "") == note
        assert shown[f"headline.{name.replace(' ', '_')}"] == value
    for key, count, share, seconds, dur_share in LOSSES:
        assert re.search(rf"{key} +{count} +{share} +{seconds} +{dur_share}", cli), (key, cli)
    # A summary.json of an older run has no process time: the pipeline's is shown as such.
    del doc["run"]["process_duration_s"]
    cli = render_report(doc, "out")
    assert "run time" not in cli and re.search(r"^  pipeline time +10\.0 s$", cli, re.M), cli
    assert _data_keys(render_html(doc))["headline.pipeline_time"] == "10.0 s"


def test_page_is_self_contained_deterministic_and_escaped():
    doc = _summary_doc()
    page = render_html(doc)
    assert page == render_html(json.loads(json.dumps(doc)))  # same document, same page
    _no_external_reference(page)
    # Text from the data never becomes markup.
    assert "<b>x" not in page and "<script" not in page
    assert "&lt;/script&gt;" in page
    shown = _data_keys(page)
    assert shown["errors_by_reason.invalid_json"] == "2"
    assert shown["manifests.yield.1"] == "53.34%"
    assert shown["manifests.count"] == "2"
    assert len(page.encode("utf-8")) < 100_000


def test_page_without_errors_or_report_keys_still_renders():
    doc = _summary_doc()
    doc["errors_by_reason"] = {}
    doc["entries_failed"] = 0
    for key in ("distributions", "error_examples", "manifests"):
        doc.pop(key)  # a summary.json of an older run
    page = render_html(doc)
    assert "No line was rejected." in page
    _no_external_reference(page)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One real run over two manifests, one of them with bad lines."""
    base = tmp_path_factory.mktemp("report_run")
    inputs = base / "in"
    inputs.mkdir()
    shutil.copy(FIXTURES / "sample_input.jsonl", inputs / "a_sample.jsonl")
    good = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()[:2]
    (inputs / "b_mixed.jsonl").write_bytes(b"\n".join(good[:1] + BAD_LINES + good[1:]) + b"\n")
    out = base / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--input", str(inputs), "--output", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.e2e
def test_run_writes_report_that_the_cli_rebuilds_byte_for_byte(run_dir, tmp_path):
    written = (run_dir / "report.html").read_bytes()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["entries_failed"] == 4 and summary["manifests"]["count"] == 2
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.report", str(copy)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (copy / "report.html").read_bytes() == written
    _no_external_reference(written.decode("utf-8"))


@pytest.mark.e2e
def test_report_cli_answers_a_wrong_directory_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("alm_beam: error: cannot read ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _expected_from(summary):
    """data-key -> text that report.html must show for a summary.json, formatted here."""
    s = summary["stats"]

    def pct(part, whole):
        return f"{100.0 * part / whole:.1f}%" if whole else "-"

    expected = {
        "headline.lines_read": f"{summary['lines_read']:,}",
        "headline.entries_read": f"{summary['entries_read']:,}",
        "headline.entries_written": f"{summary['entries_written']:,}",
        "headline.entries_rejected": f"{summary['entries_failed']:,}",
        "headline.windows_built": f"{summary['windows']:,}",
        "headline.windows_kept": f"{summary['filtered_windows']:,}",
        "headline.kept_audio": f"{summary['filtered_dur'] / 3600:,.2f} h",
        "headline.kept_audio.note": f"{pct(summary['filtered_dur'], s['total_dur'])} of segment audio",
        "headline.run_time": f"{summary['run']['process_duration_s']:,.1f} s",
        "funnel.segments.count": f"{s['total_segments']:,}",
        "funnel.segments.hours": f"{s['total_dur'] / 3600:,.2f} h",
        "funnel.windows_built.count": f"{summary['windows']:,}",
        "funnel.windows_built.share": f"{pct(summary['windows'], s['total_segments'])} of segments",
        "funnel.windows_built.hours": f"{summary['total_dur_window'] / 3600:,.2f} h",
        "funnel.windows_kept.count": f"{summary['filtered_windows']:,}",
        "funnel.windows_kept.share": (
            f"{pct(summary['filtered_windows'], summary['windows'])} of windows built"
        ),
        "funnel.windows_kept.hours": f"{summary['filtered_dur'] / 3600:,.2f} h",
        "manifests.count": f"{summary['manifests']['count']:,}",
    }
    for key, *_ in LOSSES:
        expected[f"stats.{key}"] = f"{s[key]:,}"
        expected[f"stats.{key}.share"] = pct(s[key], s["total_segments"])
        expected[f"stats.dur_{key}"] = f"{s['dur_' + key]:,.1f} s"
        expected[f"stats.dur_{key}.share"] = pct(s["dur_" + key], s["total_dur"])
        expected[f"chart.losses.{key}"] = f"{s[key]:,} ({pct(s[key], s['total_segments'])})"
    for reason, count in summary["errors_by_reason"].items():
        expected[f"errors_by_reason.{reason}"] = f"{count:,}"
    for i, row in enumerate(summary["manifests"]["lowest_yield"]):
        expected[f"manifests.yield.{i}"] = f"{100 * row['yield']:.2f}%"
    return expected


@pytest.mark.e2e
def test_a_real_runs_report_shows_its_summary_numbers_and_is_small(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "summary.json").read_text())
    shown = _data_keys(page)
    expected = _expected_from(summary)
    assert {k: shown.get(k) for k in expected} == expected
    assert summary["run"]["process_duration_s"] >= summary["run"]["duration_s"] > 0
    assert len(page.encode("utf-8")) < 1_500_000


# ---------------------------------------------------------------- in a browser


def _png_colours(png_bytes):
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    return image.size, len(colours), ImageStat.Stat(image).stddev


@pytest.mark.e2e
def test_the_browser_leaves_no_scratch_directory_behind(monkeypatch):
    """Chromium makes org.chromium.Chromium.* directories under TMPDIR and does
    not remove them: every browser test left one in /tmp. (A short directory:
    Chromium's sockets live there, and pytest's tmp_path is too long for a
    socket's path.)"""
    import tempfile

    temp = tempfile.mkdtemp(prefix="alm_")
    try:
        monkeypatch.setenv("TMPDIR", temp)
        monkeypatch.setattr(tempfile, "tempdir", temp)
        with chromium() as browser:
            assert browser.evaluate("1 + 1") == 2
        assert sorted(os.listdir(temp)) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.e2e
def test_report_in_a_real_browser(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    with chromium() as browser:
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable")
        browser.call("Page.navigate", url=(run_dir / "report.html").as_uri())
        browser.wait_for("Page.loadEventFired")
        # Every chart is an inline SVG with its bars drawn and an axis or labels.
        charts = browser.evaluate(
            "[...document.querySelectorAll('div.chart')].map(d => [d.querySelectorAll('svg').length, "
            "d.querySelectorAll('svg rect.bar').length, d.querySelectorAll('svg text').length, "
            "d.querySelector('svg').getBoundingClientRect().width])"
        )
        assert len(charts) == 6, charts
        for svgs, bars, texts, width in charts:
            assert svgs == 1 and bars >= 1 and texts >= 3 and width > 300, charts
        # Every bar has a tooltip (its <title>).
        assert browser.evaluate(
            "[...document.querySelectorAll('svg rect.bar')].every(r => r.parentNode.querySelector('title'))"
        )

        # No console error, no exception, no request but the page itself.
        problems = [
            e
            for e in browser.events
            if e.get("method") in ("Runtime.exceptionThrown",)
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]
        assert not problems, problems
        assert browser.requested_urls() == [(run_dir / "report.html").as_uri()]

        # The numbers the browser shows equal summary.json.
        page = browser.evaluate("document.documentElement.outerHTML")
        shown = _data_keys(page)
        expected = _expected_from(summary)
        assert {k: shown.get(k) for k in expected} == expected
        chart_text = browser.evaluate("[...document.querySelectorAll('div.chart')].map(d => d.textContent)")
        assert f"{summary['stats']['total_segments']:,}" in chart_text[0]  # the funnel
        speakers = summary["distributions"]["kept_window_speakers"]
        assert all(f"{c:,}" in chart_text[3] for c in speakers["counts"])  # speakers per window
        assert all(reason in chart_text[4] for reason in summary["errors_by_reason"])

        # A full-page screenshot that is not blank.
        height = browser.evaluate("document.body.scrollHeight")
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=int(height),
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    keep = os.environ.get("ALM_BEAM_REPORT_SCREENSHOT")
    if keep:
        with open(keep, "wb") as fh:
            fh.write(shot)
    size, colours, stddev = _png_colours(shot)
    assert size == (1280, int(height)) and height > 2000
    assert colours > 50 and min(stddev) > 10, (colours, stddev)
