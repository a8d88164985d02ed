"""report.html: self-contained, rebuilt from summary.json alone, and right in a real browser."""

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from conftest import FIXTURES, require_or_skip

from alm_beam.results.report import render_html

BAD_LINES = [
    b'{"audio_filepath": 1}',  # wrong_type:audio_filepath
    b"[1, 2]",  # not_an_object
    b"{not json",  # invalid_json
    b'{"audio_filepath": "</script><b>x", "segments": 3}',
]


def _summary_doc():
    """A summary.json document as a run writes it (small, with every report key)."""
    return {
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


def _data_keys(page):
    """{data-key: shown text} of every element the report marks with a number."""
    return {k: v for k, v in re.findall(r'data-key="([^"]+)">([^<]*)<', page)}


def _no_external_reference(page):
    """No http(s) src/href/url() in the page's own markup, styles and scripts.

    The inlined plotly.js itself mentions URLs (e.g. its logo link, turned off
    by ``displaylogo``); the browser test proves it requests none.
    """
    library = re.search(r"<script>(/\*\*\s*\* plotly\.js v.*?)</script>", page, re.S)
    assert library, "plotly.js is not inlined"
    page = page.replace(library.group(1), "")
    assert "plotly.min.js" not in page and "cdn" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<link" not in page.lower()
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.I)


def test_page_is_self_contained_deterministic_and_escaped():
    doc = _summary_doc()
    page = render_html(doc)
    assert page == render_html(json.loads(json.dumps(doc)))  # same document, same page
    _no_external_reference(page)
    assert page.count("<script") == 2  # plotly.js once, then the figures
    # Text from the data never closes a script element or becomes markup.
    assert page.lower().count("</script>") == 2
    assert "<b>x" not in page and "<script>alert" not in page
    shown = _data_keys(page)
    assert shown["entries_read"] == "12" and shown["entries_failed"] == "3"
    assert shown["funnel.segments.count"] == "1,234"
    assert shown["funnel.windows.hours"] == "10.00 h"  # 36000.25 s
    assert shown["stats.dur_lost_win"] == "0.75 h"  # 2697 s
    assert shown["errors_by_reason.invalid_json"] == "2"
    assert shown["manifests.yield.1"] == "53.34 %"
    assert shown["run.duration_s"] == "10.0"


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


# ---------------------------------------------------------------- in a browser


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _DevTools:
    """A headless chromium driven over the DevTools protocol (one page)."""

    def __init__(self, ws_url):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")


@pytest.fixture
def browser():
    require_or_skip(
        shutil.which("chromium") is not None,
        "chromium is not installed (apt-get install -y chromium; .ci/run does)",
    )
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="alm_beam_chromium_")
    proc = subprocess.Popen(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--mute-audio",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            "--window-size=1280,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        pages = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                time.sleep(0.2)
        assert pages, "chromium's DevTools endpoint did not come up"
        tools = _DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _png_colours(png_bytes):
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    return image.size, len(colours), ImageStat.Stat(image).stddev


@pytest.mark.e2e
def test_report_in_a_real_browser(run_dir, browser):
    summary = json.loads((run_dir / "summary.json").read_text())
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=(run_dir / "report.html").as_uri())
    browser.wait_for("Page.loadEventFired")
    # plotly.js draws each chart into an SVG; wait until every one is drawn.
    drawn = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drawn = browser.call(
            "Runtime.evaluate",
            expression=(
                "document.querySelectorAll('div.chart .main-svg').length > 0 && "
                "[...document.querySelectorAll('div.chart')].every("
                "d => d.querySelector('.main-svg'))"
            ),
            returnByValue=True,
        )["result"]["value"]
        if drawn:
            break
        time.sleep(0.2)
    assert drawn, "the charts were not drawn"

    # No console error, no exception, no network request.
    problems = [
        e
        for e in browser.events
        if e.get("method") in ("Runtime.exceptionThrown",)
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert not problems, problems
    requests = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests and all(url.startswith("file://") for url in requests), requests

    # The numbers shown (after the scripts ran) equal summary.json.
    page = browser.call(
        "Runtime.evaluate", expression="document.documentElement.outerHTML", returnByValue=True
    )["result"]["value"]
    shown = _data_keys(page)
    s = summary["stats"]
    assert shown["entries_read"] == f"{summary['entries_read']:,}"
    assert shown["entries_written"] == f"{summary['entries_written']:,}"
    assert shown["windows"] == f"{summary['windows']:,}"
    assert shown["filtered_windows"] == f"{summary['filtered_windows']:,}"
    assert shown["filtered_hours"] == f"{summary['filtered_hours']:,.2f} h"
    assert shown["funnel.segments.count"] == f"{s['total_segments']:,}"
    assert shown["funnel.kept.hours"] == f"{summary['filtered_dur'] / 3600:,.2f} h"
    for key in ("lost_bw", "lost_sr", "lost_spk", "lost_win", "lost_no_spkr", "lost_next_seg_bm"):
        assert shown[f"stats.{key}"] == f"{s[key]:,}"
    for reason, count in summary["errors_by_reason"].items():
        assert shown[f"errors_by_reason.{reason}"] == f"{count:,}"
    assert shown["manifests.count"] == "2"
    lowest = summary["manifests"]["lowest_yield"]
    assert shown["manifests.yield.0"] == f"{100 * lowest[0]['yield']:.2f} %"
    assert shown["run.duration_s"] == str(summary["run"]["duration_s"])
    # ... and so do the charts plotly.js drew (their SVG text).
    chart_text = browser.call(
        "Runtime.evaluate",
        expression=("[...document.querySelectorAll('div.chart')].map(d => d.textContent)"),
        returnByValue=True,
    )["result"]["value"]
    assert f"{s['total_segments']:,}  ·  " in chart_text[0]  # the funnel
    assert f"{summary['filtered_windows']:,}  ·  " in chart_text[0]
    speakers = summary["distributions"]["kept_window_speakers"]
    assert all(f"{c:,}" in chart_text[3] for c in speakers["counts"])  # speakers per window
    assert all(reason in chart_text[4] for reason in summary["errors_by_reason"])

    # A full-page screenshot that is not blank.
    height = browser.call("Runtime.evaluate", expression="document.body.scrollHeight", returnByValue=True)[
        "result"
    ]["value"]
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
