"""report.html built from hostile file names and content: nothing from input is markup.

A real run over a directory whose manifest names and lines carry links,
scripts, event handlers, CSS ``url(...)`` and quotes, all pointing at a beacon
HTTP server on 127.0.0.1 that this test starts and stops. The page is opened in
real headless chromium (tests/headless_chromium.py): no script from input
runs, no link from input exists, and the beacon and the DevTools Network
domain see no request but the page itself. Equal file names in different
directories stay distinguishable, and the page is small.
"""

import gzip
import html.parser
import http.server
import json
import re
import subprocess
import sys
import threading

import pytest
from conftest import REPO
from headless_chromium import chromium

from alm_beam.results.report import render_html

SAMPLE = REPO / "alm_beam" / "data" / "sample_manifest.jsonl.gz"
MAX_REPORT_BYTES = 1_500_000


class _Beacon:
    """An HTTP server on 127.0.0.1 that counts every request it receives."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _hit(self):
                hits.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_OPTIONS = _hit

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def beacon():
    server = _Beacon()
    yield server
    server.stop()


def _hostile_names(b):
    """Manifest paths (relative, ``/`` between directories) that are markup.

    A file name cannot hold ``/``: links use ``http:\\\\host\\path`` (which a
    browser reads as ``http://host/path``) or ``http:host``, and closing tags
    span a directory and its file.
    """
    return [
        f'<a href="http:\\\\{b}\\name-link">link.jsonl',
        f'<a href="http:{b}">bare-link.jsonl',
        f'<span style="fill:url(http:{b}#css-fill);filter:url(http:{b}#css-filter)">css.jsonl',
        f'<i style="background:url(http:{b}/css-path)">dir/x.jsonl',
        "<script>window.__pwned=1</script>.jsonl",
        f'<img src="http:{b}" onerror="window.__pwned=2">.jsonl',
        '<svg onload="window.__pwned=3">.jsonl',
        'q"\' onmouseover="window.__pwned=4" x=\'.jsonl',
        "d1/part-0000.jsonl",
        "d2/part-0000.jsonl",
        "d3/part-0000.jsonl",
    ]


def _hostile_lines(b):
    """Lines whose content, field names and error text are markup."""
    deep = "[" * 300 + "]" * 300  # read fine, too deep to write: a too_deep record naming the field
    return [
        json.dumps(
            {
                "audio_filepath": f'<a href="http://{b}/content-link">c</a>',
                "audio_sample_rate": 16000,
                "segments": [],
                "<script>window.__pwned=5</script>": f'<img src="http://{b}/content-img">',
            }
        ),
        json.dumps(
            {
                "audio_filepath": 7,
                f'<a href="http://{b}/field">f</a>': f'<img src="http://{b}/raw" onerror="window.__pwned=6">',
            }
        ),
        f'<script>window.__pwned=7</script><a href="http://{b}/invalid">x</a>',
        '{"audio_filepath": "a", "audio_sample_rate": 16000, "segments": [], '
        f'"<b style=\\"background:url(http://{b}/deep)\\">": {deep}}}',
        json.dumps({f'<svg onload="window.__pwned=8"><a href="http://{b}/missing">': 1}),
    ]


@pytest.fixture(scope="module")
def hostile_run(beacon, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    inputs = base / "in"
    with gzip.open(SAMPLE, "rb") as fh:
        good = fh.read().splitlines()
    names = _hostile_names(beacon.host)
    for i, name in enumerate(names):
        path = inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = good[2 * i : 2 * i + 1 + i % 2]  # one or two conversations each: different yields
        if name.endswith("part-0000.jsonl"):  # yield 0: among the 10 lowest the report lists
            lines = [b'{"audio_filepath": 3}']
        path.write_bytes(b"\n".join(lines) + b"\n")
    (inputs / "content.jsonl").write_text("\n".join(_hostile_lines(beacon.host)) + "\n", encoding="utf-8")
    out = base / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--input", str(inputs), "--output", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["manifests"]["count"] == len(names) + 1
    assert {"invalid_json", "too_deep", "missing_field:audio_filepath"} <= set(summary["errors_by_reason"])
    return out


class _Text(html.parser.HTMLParser):
    """The text of a page, and the text inside its <svg> elements, by section id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.section = None
        self.svg_depth = 0
        self.text = {}
        self.svg_text = {}
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif tag == "svg":
            self.svg_depth += 1

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg_depth -= 1
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        self.text.setdefault(self.section, []).append(data)
        if self.svg_depth:
            self.svg_text.setdefault(self.section, []).append(data)


def _parsed(page):
    parser = _Text()
    parser.feed(page)
    parser.close()
    return parser


# ---------------------------------------------------------------- no browser


def _three_parts_doc():
    from test_report import _summary_doc

    doc = _summary_doc()
    rows = []
    for i, name in enumerate(
        ["/data/d1/part-0000.jsonl", "/data/d2/part-0000.jsonl", "/data/d3/part-0000.jsonl"]
    ):
        rows.append(
            {
                "manifest_filepath": name,
                "entries_read": 1,
                "entries_written": 1,
                "entries_failed": 0,
                "total_segments": 10,
                "windows": 2,
                "filtered_windows": 1,
                "total_dur": 1000.0,
                "filtered_dur": 100.0 * (i + 1),
                "yield": 0.1 * (i + 1),
            }
        )
    doc["manifests"] = {"count": 3, "lowest_yield": rows}
    doc["inputs"] = [r["manifest_filepath"] for r in rows]
    return doc


def test_equal_file_names_in_different_directories_are_distinguishable():
    parsed = _parsed(render_html(_three_parts_doc()))
    chart = " ".join(parsed.svg_text.get("manifests", []))
    table = " ".join(parsed.text.get("manifests", []))
    for d in ("d1", "d2", "d3"):
        assert f"{d}/part-0000.jsonl" in chart, chart  # each bar names its directory
        assert f"/data/{d}/part-0000.jsonl" in table
    assert "1. d1/part-0000.jsonl" in chart and "3. d3/part-0000.jsonl" in chart  # numbered as the table


def _doc_with_names(names, lines):
    """The three-manifest document with ``names`` as manifest paths and ``lines``
    as the rejected lines' reasons, details and raw text."""
    doc = _three_parts_doc()
    doc["inputs"] = list(names)
    doc["manifests"]["lowest_yield"] = [
        dict(doc["manifests"]["lowest_yield"][i % 3], manifest_filepath=name) for i, name in enumerate(names)
    ]
    doc["errors_by_reason"] = {line[:40]: 1 for line in lines}
    doc["error_examples"] = {
        line[:40]: {
            "manifest_filepath": names[i],
            "line": 1,
            "byte_offset": 0,
            "detail": line[:80],
            "raw": line[:300],
            "raw_truncated": True,
        }
        for i, line in enumerate(lines)
    }
    doc["params"]["builder"][lines[0][:20]] = lines[1]
    return doc


def _structure(page):
    """The page's tags and attribute names, in order."""
    return [(tag, sorted(attrs)) for tag, attrs in _parsed(page).tags]


def test_no_input_string_becomes_markup_in_the_page():
    """Hostile names and content land as text: the page has exactly the tags and
    attributes it has for harmless names, no script context, no link, no style of theirs."""
    host = "127.0.0.1:9"
    names = [f"/in/{n}" for n in _hostile_names(host)]
    lines = _hostile_lines(host)
    page = render_html(_doc_with_names(names, lines))
    harmless = render_html(
        _doc_with_names(
            [f"/in/m{i:02d}.jsonl" for i in range(len(names))],
            [f"line {i:03d}" * 9 for i in range(len(lines))],
        )
    )
    assert _structure(page) == _structure(harmless)
    parsed = _parsed(page)
    for tag, attrs in parsed.tags:
        assert tag != "script", "input strings would reach a script context"
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        assert not {"href", "src", "xlink:href", "srcset", "action"} & set(attrs), (tag, attrs)
        assert "url(" not in attrs.get("style", ""), (tag, attrs)
    # ... and the text a person reads still carries each name (escaped, not dropped).
    text = "".join(sum(parsed.text.values(), []))
    for name in names:
        assert name in text


def test_page_is_small_and_loads_nothing():
    page = render_html(_three_parts_doc())
    assert len(page.encode("utf-8")) < MAX_REPORT_BYTES
    assert not re.search(r"<script|<link|@import|url\(|src=|href=", page, re.I)


# ---------------------------------------------------------------- in chromium


def _open(browser, path):
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=path.as_uri())
    browser.wait_for("Page.loadEventFired")
    browser.call("Page.captureScreenshot", format="png")  # layout and paint: CSS fetches happen here
    browser.settle(2.0)


@pytest.mark.e2e
def test_hostile_report_in_chromium_runs_no_script_shows_no_link_fetches_nothing(
    hostile_run, beacon, tmp_path
):
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    # The page as written, and the same page without its Content-Security-Policy:
    # escaping alone must hold, the policy is a second wall.
    bare = tmp_path / "report-without-csp.html"
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page), encoding="utf-8")
    findings = {}
    for path in (hostile_run / "report.html", bare):
        with chromium() as browser:
            _open(browser, path)
            # The three part-0000.jsonl bars name their directories.
            chart = browser.evaluate(
                "[...document.querySelectorAll('#manifests svg')].map(s => s.textContent).join(' ')"
            )
            findings[path.name] = {
                "script ran": browser.evaluate("typeof window.__pwned") != "undefined",
                "links": browser.evaluate(
                    "[...document.querySelectorAll('a[href], [*|href]')].map(a => a.outerHTML)"
                ),
                "embedded": browser.evaluate(
                    "document.querySelectorAll('img, iframe, object, embed').length"
                ),
                "requests": [u for u in browser.requested_urls() if u != path.as_uri()],
                "page requested once": browser.requested_urls().count(path.as_uri()) == 1,
                "parts missing": [d for d in ("d1", "d2", "d3") if f"{d}/part-0000.jsonl" not in chart],
                "beacon hits": list(beacon.hits),
            }
    clean = {"script ran": False, "links": [], "embedded": 0, "requests": [], "page requested once": True}
    clean.update({"parts missing": [], "beacon hits": []})
    assert findings == {name: clean for name in findings}, json.dumps(findings, indent=1)
    assert len(page.encode("utf-8")) < MAX_REPORT_BYTES
