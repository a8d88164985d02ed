"""report.html: a self-contained visual report of one run, rendered from summary.json alone.

``render_html(summary)`` is pure: the same summary.json document always gives
the same page. Charts are drawn by plotly.js, taken from the ``plotly``
Python package (which ships it) and inlined once, so the page opens offline
with no external script, style or font. The figures are plotly figure
dictionaries handed to ``Plotly.newPlot``; building them needs no plotly
Python objects (importing ``plotly.io`` and its validators would add about
half a second to every run for no gain).

``python -m alm_beam.report DIR`` rebuilds DIR/report.html from
DIR/summary.json (any Beam filesystem).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from typing import Optional, Sequence

from alm_beam.results.summary import LOSS_BUCKETS, LOSS_KNOBS

REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"

_FONT = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
    "'Noto Sans', 'Liberation Sans', sans-serif"
)
_BLUE, _GREEN, _RED, _GREY, _ORANGE = "#3b6fb6", "#2e8b57", "#c0392b", "#8c8c8c", "#d68910"
_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}

_CSS = """
:root { color-scheme: light; }
body { font-family: %(font)s; margin: 0; background: #f4f6f9; color: #1d2733; }
header { background: #1f3b5c; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; font-weight: 600; }
header p { margin: 0; opacity: .85; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 40px; }
section { background: #fff; border-radius: 8px; padding: 14px 20px 18px; margin: 16px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 17px; margin: 2px 0 8px; }
p.note { color: #56606b; font-size: 13px; margin: 4px 0 10px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.tile { background: #f0f4fa; border-radius: 6px; padding: 10px 12px; }
.tile .v { font-size: 22px; font-weight: 600; }
.tile .l { font-size: 12px; color: #56606b; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
.chart { width: 100%%; height: 340px; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e7ec; vertical-align: top; }
th { background: #f0f4fa; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', monospace;
       font-size: 12px; background: #f4f6f9; padding: 1px 3px; border-radius: 3px;
       word-break: break-all; }
tr.sub td:first-child { padding-left: 24px; }
td:first-child code { white-space: nowrap; word-break: normal; }
.warn { color: %(red)s; font-weight: 600; }
""" % {"font": _FONT, "red": _RED}


def _plotly_js() -> str:
    """plotly.js as shipped inside the ``plotly`` Python package."""
    from importlib import resources

    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def _script_json(value) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _int(n) -> str:
    return f"{n:,}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600.0:,.2f} h"


def _pct(part, whole) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def _layout(title: str, xtitle: str, ytitle: str, **extra) -> dict:
    layout = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        "font": {"family": _FONT, "size": 12, "color": "#1d2733"},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "margin": {"l": 70, "r": 20, "t": 46, "b": 56},
        "xaxis": {"title": {"text": xtitle}, "gridcolor": "#e8ebef", "zeroline": False, "automargin": True},
        "yaxis": {"title": {"text": ytitle}, "gridcolor": "#e8ebef", "zeroline": False, "automargin": True},
        "showlegend": False,
        "bargap": 0.08,
    }
    layout.update(extra)
    return layout


class _Page:
    """Collects sections and the figures they place."""

    def __init__(self):
        self.parts: list[str] = []
        self.figures: list[tuple[str, list, dict]] = []

    def chart(self, data: list, layout: dict, height: int = 340) -> str:
        div_id = f"chart-{len(self.figures) + 1}"
        self.figures.append((div_id, data, layout))
        return f'<div class="chart" id="{div_id}" style="height:{height}px"></div>'


def _tile(label: str, value: str, key: str) -> str:
    return (
        f'<div class="tile"><div class="v" data-key="{key}">{_e(value)}</div>'
        f'<div class="l">{_e(label)}</div></div>'
    )


def _funnel(page: _Page, doc: dict) -> str:
    s = doc["stats"]
    stages = ["Segments", "Candidate windows", "Kept windows"]
    counts = [s["total_segments"], doc["windows"], doc["filtered_windows"]]
    seconds = [s["total_dur"], doc["total_dur_window"], doc["filtered_dur"]]
    texts = [f"{_int(c)}  ·  {_hours(d)}" for c, d in zip(counts, seconds)]
    data = [
        {
            "type": "funnel",
            "y": stages,
            "x": counts,
            "text": texts,
            "textinfo": "text+percent initial",
            "textposition": "auto",
            "marker": {"color": [_GREY, _BLUE, _GREEN]},
            "connector": {"line": {"color": "#c8d0da"}},
            "hovertemplate": "%{y}: %{x:,}<extra></extra>",
        }
    ]
    layout = _layout(
        "Yield funnel (count · hours; % of segments)", "", "", margin={"l": 130, "r": 20, "t": 46, "b": 30}
    )
    layout["xaxis"].update(showticklabels=False, showgrid=False)
    rows = "".join(
        f'<tr><td>{stage}</td><td class="n" data-key="funnel.{key}.count">{_int(c)}</td>'
        f'<td class="n" data-key="funnel.{key}.hours">{_hours(d)}</td></tr>'
        for stage, key, c, d in zip(stages, ("segments", "windows", "kept"), counts, seconds)
    )
    return (
        '<section id="funnel"><h2>Yield</h2>'
        '<p class="note">Every segment is tried as a window start; a candidate window is a start '
        "that gave a window of the target length; kept windows survive the overlap filter. "
        "Candidate windows overlap each other, so their hours can exceed the audio hours.</p>"
        f"{page.chart(data, layout, 280)}"
        '<table><tr><th>stage</th><th class="n">count</th><th class="n">hours</th></tr>'
        f"{rows}</table></section>"
    )


def _losses(page: _Page, doc: dict) -> str:
    s = doc["stats"]
    total, total_dur = s["total_segments"], s["total_dur"]
    accepted = total - s["lost_sr"] - s["lost_bw"] - s["lost_spk"] - s["lost_win"]
    bars = [("built a window", accepted, _GREEN)] + [
        (key, s[key], _ORANGE) for key, _dur, meaning in LOSS_BUCKETS if not meaning.startswith("  ")
    ]
    bars += [
        (f"{key} (of lost_win)", s[key], "#e8b765")
        for key, _dur, meaning in LOSS_BUCKETS
        if meaning.startswith("  ")
    ]
    labels = [b[0] for b in bars]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "y": labels,
            "x": [b[1] for b in bars],
            "marker": {"color": [b[2] for b in bars]},
            "text": [f"{_int(b[1])} ({_pct(b[1], total)})" for b in bars],
            "textposition": "auto",
            "cliponaxis": False,
            "hovertemplate": "%{y}: %{x:,} segments<extra></extra>",
        }
    ]
    layout = _layout(
        "Where the window starts went",
        "segments (window starts)",
        "",
        yaxis={"autorange": "reversed", "automargin": True},
        margin={"l": 170, "r": 30, "t": 46, "b": 50},
    )
    rows = []
    for count_key, dur_key, meaning in LOSS_BUCKETS:
        sub = meaning.startswith("  ")
        rows.append(
            f'<tr class="{"sub" if sub else ""}"><td><code>{count_key}</code></td>'
            f'<td class="n" data-key="stats.{count_key}">{_int(s[count_key])}</td>'
            f'<td class="n">{_pct(s[count_key], total)}</td>'
            f'<td class="n" data-key="stats.{dur_key}">{_hours(s[dur_key])}</td>'
            f'<td class="n">{_pct(s[dur_key], total_dur)}</td>'
            f"<td>{_e(meaning.strip())}</td><td>{_e(LOSS_KNOBS[count_key])}</td></tr>"
        )
    return (
        '<section id="losses"><h2>Loss breakdown</h2>'
        '<p class="note">Each segment that starts a window ends in exactly one place: a window, '
        "<code>lost_bw</code>, <code>lost_win</code> or <code>lost_spk</code> (all segments of an "
        "entry below the sample rate count in <code>lost_sr</code>). Durations are the start "
        "segments' durations. Turn the knob in the last column to recover a loss.</p>"
        f"{page.chart(data, layout, 320)}"
        '<table><tr><th>counter</th><th class="n">segments</th><th class="n">% of segments</th>'
        '<th class="n">duration</th><th class="n">% of duration</th><th>what happened</th>'
        f"<th>knob to turn</th></tr>{''.join(rows)}</table>"
        f'<p class="note">Truncation events (last segment cut at a word boundary): '
        f'<span data-key="truncation_events">{_int(doc["truncation_events"])}</span> '
        "(<code>builder.truncation</code>).</p></section>"
    )


def _distributions(page: _Page, doc: dict) -> str:
    dist = doc.get("distributions") or {}
    dur = dist.get("kept_window_duration_s") or {"bin_edges": [], "counts": []}
    spk = dist.get("kept_window_speakers") or {"values": [], "counts": []}
    edges, counts = dur["bin_edges"], dur["counts"]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1.0
    centers = [e + width / 2 for e in edges[:-1]]
    ranges = [f"{a:g}-{b:g} s" for a, b in zip(edges[:-1], edges[1:])]
    dur_data = [
        {
            "type": "bar",
            "x": centers,
            "y": counts,
            "width": [width] * len(counts),
            "customdata": ranges,
            "marker": {"color": _BLUE, "line": {"color": "#fff", "width": 1}},
            "hovertemplate": "%{customdata}: %{y:,} windows<extra></extra>",
        }
    ]
    dur_layout = _layout(f"Kept-window duration ({width:g} s bins)", "window duration (s)", "kept windows")
    spk_data = [
        {
            "type": "bar",
            "x": [str(v) for v in spk["values"]],
            "y": spk["counts"],
            "text": [_int(c) for c in spk["counts"]],
            "textposition": "auto",
            "marker": {"color": _GREEN},
            "hovertemplate": "%{x} speakers: %{y:,} windows<extra></extra>",
        }
    ]
    spk_layout = _layout(
        "Speakers per kept window",
        "distinct speakers in the window",
        "kept windows",
        xaxis={"type": "category", "title": {"text": "distinct speakers in the window"}},
    )
    outside = dur.get("below_range", 0) + dur.get("above_range", 0)
    note = f" {_int(outside)} windows fell outside the bins." if outside else ""
    return (
        '<section id="distributions"><h2>Kept windows</h2>'
        '<p class="note">Counted by the pipeline\'s own combiner over every kept window '
        "(each element of <code>filtered_windows</code>), in fixed bins over the accepted "
        f"window length [min, max].{note}</p>"
        f'<div class="grid2"><div>{page.chart(dur_data, dur_layout)}</div>'
        f"<div>{page.chart(spk_data, spk_layout)}</div></div></section>"
    )


def _errors(page: _Page, doc: dict) -> str:
    by_reason = doc["errors_by_reason"]
    examples = doc.get("error_examples") or {}
    read, failed = doc["entries_read"], doc["entries_failed"]
    head = (
        f'<section id="errors"><h2>Rejected lines</h2><p class="note">'
        f'<span data-key="entries_failed">{_int(failed)}</span> of {_int(read)} lines '
        f"({_pct(failed, read)}) were rejected and written to <code>errors-*.jsonl</code> "
        "with their reason. One example per reason: the one earliest in the first "
        "manifest (by path, then byte offset).</p>"
    )
    if not by_reason:
        return head + "<p>No line was rejected.</p></section>"
    reasons = sorted(by_reason, key=lambda r: (-by_reason[r], r))
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "y": reasons,
            "x": [by_reason[r] for r in reasons],
            "marker": {"color": _RED},
            "text": [_int(by_reason[r]) for r in reasons],
            "textposition": "auto",
            "hovertemplate": "%{y}: %{x:,} lines<extra></extra>",
        }
    ]
    layout = _layout(
        "Rejected lines by reason",
        "lines",
        "",
        yaxis={"autorange": "reversed", "automargin": True},
        margin={"l": 190, "r": 30, "t": 46, "b": 50},
    )
    rows = []
    for reason in reasons:
        ex = examples.get(reason)
        if ex:
            where = (
                f"<code>{_e(ex.get('manifest_filepath'))}</code> line "
                f"{_e(ex.get('line'))}, byte {_e(ex.get('byte_offset'))}"
            )
            raw = ex.get("raw") or ""
            cut = " …" if ex.get("raw_truncated") else ""
            example = f"{where}<br>{_e(ex.get('detail'))}<br><code>{_e(raw)}{cut}</code>"
        else:
            example = "-"
        rows.append(
            f"<tr><td><code>{_e(reason)}</code></td>"
            f'<td class="n" data-key="errors_by_reason.{_e(reason)}">'
            f"{_int(by_reason[reason])}</td><td>{example}</td></tr>"
        )
    height = max(220, 60 + 28 * len(reasons))
    return (
        head
        + page.chart(data, layout, height)
        + '<table><tr><th>reason</th><th class="n">lines</th><th>example</th></tr>'
        + "".join(rows)
        + "</table></section>"
    )


def _manifests(page: _Page, doc: dict) -> str:
    info = doc.get("manifests") or {"count": 0, "lowest_yield": []}
    rows = info["lowest_yield"]
    head = (
        '<section id="manifests"><h2>Manifests with the lowest yield</h2>'
        '<p class="note">Yield = kept window hours / segment hours of a manifest file '
        "(above 100 % where the windows span pauses between segments). "
        f'The {len(rows)} lowest of <span data-key="manifests.count">'
        f"{_int(info['count'])}</span> manifests with at least one line.</p>"
    )
    if not rows:
        return head + "<p>No manifest line was read.</p></section>"
    names = [r["manifest_filepath"] for r in rows]
    short = [n.rsplit("/", 1)[-1] for n in names]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "y": short,
            "x": [100.0 * r["yield"] for r in rows],
            "customdata": names,
            "marker": {"color": _ORANGE},
            "text": [f"{100.0 * r['yield']:.1f} %" for r in rows],
            "textposition": "auto",
            "hovertemplate": "%{customdata}: %{x:.2f} % kept<extra></extra>",
        }
    ]
    layout = _layout(
        "Yield of the lowest-yield manifests",
        "kept hours / segment hours (%)",
        "",
        yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
        margin={"l": 190, "r": 30, "t": 46, "b": 50},
    )
    body = "".join(
        f"<tr><td><code>{_e(r['manifest_filepath'])}</code></td>"
        f'<td class="n">{_int(r["entries_read"])}</td><td class="n">{_int(r["entries_failed"])}</td>'
        f'<td class="n">{_int(r["total_segments"])}</td><td class="n">{_hours(r["total_dur"])}</td>'
        f'<td class="n">{_int(r["filtered_windows"])}</td><td class="n">{_hours(r["filtered_dur"])}</td>'
        f'<td class="n" data-key="manifests.yield.{i}">{100.0 * r["yield"]:.2f} %</td></tr>'
        for i, r in enumerate(rows)
    )
    height = max(220, 60 + 28 * len(rows))
    return (
        head
        + page.chart(data, layout, height)
        + '<table><tr><th>manifest</th><th class="n">lines</th><th class="n">rejected</th>'
        '<th class="n">segments</th><th class="n">segment hours</th>'
        '<th class="n">kept windows</th><th class="n">kept hours</th><th class="n">yield</th>'
        f"</tr>{body}</table></section>"
    )


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out.append((prefix, value))


def _parameters(doc: dict) -> str:
    params: list = []
    _flatten("", doc.get("params") or {}, params)
    run = doc.get("run") or {}
    param_rows = "".join(
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(json.dumps(v))}</td></tr>" for k, v in params
    )
    run_rows = "".join(
        f'<tr><td>{_e(k)}</td><td data-key="run.{_e(k)}">{_e(v)}</td></tr>' for k, v in run.items()
    )
    outputs = doc.get("outputs") or {}
    out_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(', '.join(v))}</td></tr>" for k, v in outputs.items())
    inputs = doc.get("inputs") or []
    shown = inputs[:20]
    more = f"<li>… and {_int(len(inputs) - len(shown))} more</li>" if len(inputs) > 20 else ""
    budget = doc.get("max_error_fraction")
    return (
        '<section id="parameters"><h2>Parameters and versions</h2><div class="grid2">'
        f"<div><table><tr><th>parameter</th><th>value</th></tr>{param_rows}"
        f"<tr><td><code>max_error_fraction</code></td><td>{_e(json.dumps(budget))}</td></tr>"
        "</table></div>"
        f"<div><table><tr><th>run</th><th>value</th></tr>{run_rows}{out_rows}</table>"
        f'<p class="note">{_int(len(inputs))} input manifest(s):</p>'
        f"<ul>{''.join(f'<li><code>{_e(p)}</code></li>' for p in shown)}{more}</ul>"
        "</div></div></section>"
    )


def render_html(doc: dict) -> str:
    """The whole report page for one summary.json document."""
    page = _Page()
    run = doc.get("run") or {}
    when = run.get("finished_at") or ""
    took = run.get("duration_s")
    subtitle = " · ".join(
        x
        for x in (
            f"finished {when}" if when else "",
            f"took {took:,.1f} s" if isinstance(took, (int, float)) else "",
            f"alm_beam {run.get('alm_beam', '?')}, Apache Beam {run.get('apache_beam', '?')}",
            str(run.get("runner", "")),
        )
        if x
    )
    read, failed = doc["entries_read"], doc["entries_failed"]
    tiles = "".join(
        (
            _tile("lines read (entries)", _int(read), "entries_read"),
            _tile("entries written", _int(doc["entries_written"]), "entries_written"),
            _tile(f"lines rejected ({_pct(failed, read)})", _int(failed), "entries_failed.tile"),
            _tile("candidate windows", _int(doc["windows"]), "windows"),
            _tile("kept windows", _int(doc["filtered_windows"]), "filtered_windows"),
            _tile("kept audio", f"{doc['filtered_hours']:,.2f} h", "filtered_hours"),
        )
    )
    warn = ""
    if failed and doc.get("max_error_fraction") is None:
        warn = (
            f'<p class="warn">{_int(failed)} input lines were rejected; see errors-*.jsonl '
            "(set --max_error_fraction to fail such runs).</p>"
        )
    body = "".join(
        (
            f'<section id="overview"><div class="tiles">{tiles}</div>{warn}</section>',
            _funnel(page, doc),
            _losses(page, doc),
            _distributions(page, doc),
            _errors(page, doc),
            _manifests(page, doc),
            _parameters(doc),
        )
    )
    plots = "\n".join(
        f"Plotly.newPlot({_script_json(div_id)},{_script_json(data)},{_script_json(layout)},"
        f"{_script_json(_CONFIG)});"
        for div_id, data, layout in page.figures
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>alm_beam run report</title>"
        f"<style>{_CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<header><h1>alm_beam run report</h1><p>{_e(subtitle)}</p></header>"
        f"<main>{body}</main>"
        f"<script>{plots}</script></body></html>\n"
    )


def read_summary(directory: str) -> dict:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(FileSystems.join(directory, SUMMARY_NAME)) as fh:
        return json.loads(fh.read())


def write_report(directory: str, page: str, name: str = REPORT_NAME) -> str:
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(directory, name)
    with FileSystems.create(path) as fh:
        fh.write(page.encode("utf-8"))
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alm_beam.report",
        description="Rebuild report.html from the summary.json of an alm_beam output directory.",
    )
    parser.add_argument("directory", metavar="DIR", help="an alm_beam output directory (any Beam filesystem)")
    args = parser.parse_args(argv)
    from alm_beam.io.beam_noise import filter_start_up_noise

    filter_start_up_noise()  # Beam's import-time warning about optional GCP clients
    try:
        doc = read_summary(args.directory)
    except Exception as exc:  # noqa: BLE001 - a missing/unreadable summary is the user's answer
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"alm_beam: error: cannot read {args.directory}/{SUMMARY_NAME} ({reason}); "
            "pass the output directory of a finished run",
            file=sys.stderr,
        )
        return 2
    try:
        page = render_html(doc)
    except (KeyError, TypeError, ValueError) as exc:
        print(
            f"alm_beam: error: {args.directory}/{SUMMARY_NAME} is not an alm_beam summary "
            f"({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return 2
    path = write_report(args.directory, page)
    print(f"alm_beam: wrote {path}")
    return 0
