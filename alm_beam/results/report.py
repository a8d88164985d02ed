"""report.html: a self-contained visual report of one run, rendered from summary.json alone.

``render_html(summary)`` is pure: the same summary.json document always gives
the same page. The charts are inline SVG drawn here, in Python: the page has
no JavaScript and loads nothing, so it opens offline and stays small (tens of
kilobytes). Every string that comes from input (file and directory names,
reasons, error text, field names, parameters) reaches the page only through
``_e`` (HTML escaping, valid in text and in quoted attributes, which is all
the page uses), so none of it becomes markup; a Content-Security-Policy that
forbids every script, request and embedded resource is a second wall.

The headline figures (names, values, what each share is of) come from
``summary.headline_figures``, the same function the CLI's summary table uses.

``python -m alm_beam.report DIR`` rebuilds DIR/report.html from
DIR/summary.json (any Beam filesystem).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from typing import NamedTuple, Optional, Sequence

from alm_beam.core.display import terminal_safe
from alm_beam.results.summary import LOSS_BUCKETS, LOSS_KNOBS, headline_figures

REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"

# No script, no request, no plugin, no <base>: only the inline styles below.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_FONT = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
    "'Noto Sans', 'Liberation Sans', sans-serif"
)
_BLUE, _GREEN, _RED, _GREY, _ORANGE, _LIGHT_ORANGE = (
    "#3b6fb6",
    "#2e8b57",
    "#c0392b",
    "#8c8c8c",
    "#d68910",
    "#e8b765",
)

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
.tile .s { font-size: 12px; color: #1d2733; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
.chart { width: 100%%; margin: 4px 0 10px; }
.chart svg { display: block; width: 100%%; height: auto; font-family: %(font)s; font-size: 12px; }
.chart text { fill: #1d2733; }
.chart text.t { font-size: 14px; font-weight: 600; }
.chart text.ax { fill: #56606b; }
.chart .grid { stroke: #e8ebef; }
.chart g.row:hover rect.bar, .chart g.col:hover rect.bar { opacity: .8; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e7ec; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f0f4fa; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', monospace;
       font-size: 12px; background: #f4f6f9; padding: 1px 3px; border-radius: 3px;
       word-break: break-all; }
tr.sub td:first-child { padding-left: 24px; }
#losses td:first-child code { white-space: nowrap; word-break: normal; }
.warn { color: %(red)s; font-weight: 600; }
""" % {"font": _FONT, "red": _RED}


def _e(value) -> str:
    """Any value as HTML text or a double-quoted attribute value: never markup."""
    return html.escape(str(value), quote=True)


def _int(n) -> str:
    return f"{n:,}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600.0:,.2f} h"


def _share(part, whole) -> str:
    """A share as the CLI summary prints it (``summary._pct``, without its padding)."""
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _fit(text: str, chars: int) -> str:
    """``text`` cut in the middle to at most ``chars`` characters (both ends are
    what tells names apart: a directory and a file name)."""
    if len(text) <= chars:
        return text
    head = (chars - 1) // 3
    return text[:head] + "…" + text[len(text) - (chars - 1 - head) :]


def short_names(paths: Sequence[str]) -> list:
    """For each path, its shortest tail of whole ``/`` components that no other
    path of ``paths`` ends with: ``a/part-0000.jsonl`` and ``b/part-0000.jsonl``
    for two ``part-0000.jsonl``, the bare file name when it is unique."""
    split = [p.split("/") for p in paths]
    names = []
    for i, parts in enumerate(split):
        tail = parts
        for k in range(1, len(parts) + 1):
            tail = parts[-k:]
            if all(other[-k:] != tail for j, other in enumerate(split) if j != i):
                break
        names.append("/".join(tail))
    return names


# ---------------------------------------------------------------- SVG charts

_CHAR_PX = 7.0  # width of one character of 12 px text, generously
_ROW, _BAR = 26, 18


def _f(x: float) -> str:
    return f"{x:.1f}"


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 x 10^n at least ``raw``."""
    if raw <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * base * (1 + 1e-9):
            return m * base
    return 10 * base


def _ticks(vmax: float, count: int = 5, integer: bool = True) -> list:
    step = _nice_step(vmax / count)
    if integer:
        step = max(step, 1.0)
    n = max(1, math.ceil(vmax / step - 1e-9))
    return [round(i * step, 10) for i in range(n + 1)]


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<div class="chart"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">'
        f'<text class="t" x="4" y="18">{_e(title)}</text>{body}</svg></div>'
    )


class Bar(NamedTuple):
    label: str  # the category, shown left of the bar (cut to fit)
    value: float
    colour: str
    text: str  # shown right of the bar
    tooltip: str  # the bar's <title>: full label and numbers
    key: str = ""  # data-key of the shown text ("" for none)


def hbar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    axis: str = "",
    width: int = 1100,
    label_chars: int = 44,
    centred=False,
) -> str:
    """Horizontal bars, one row each, with an x axis (``axis`` its title; none
    when empty). ``centred`` draws a funnel: each bar centred on the axis."""
    labels = [_fit(b.label, label_chars) for b in bars]
    label_w = max([len(x) for x in labels] + [4]) * _CHAR_PX + 16
    text_w = max([len(b.text) for b in bars] + [4]) * _CHAR_PX + 14
    x0, x1 = label_w, max(label_w + 120, width - text_w)
    top = 32
    vmax = max([b.value for b in bars] + [0]) or 1
    ticks = _ticks(vmax) if axis else [vmax]
    scale = (x1 - x0) / ticks[-1]
    bottom = top + _ROW * len(bars)
    parts = []
    if axis:
        for t in ticks:
            x = x0 + t * scale
            parts.append(
                f'<line class="grid" x1="{_f(x)}" y1="{top - 4}" x2="{_f(x)}" y2="{bottom}"/>'
                f'<text class="ax" x="{_f(x)}" y="{bottom + 15}" text-anchor="middle">{_tick_label(t)}</text>'
            )
        parts.append(
            f'<text class="ax" x="{_f((x0 + x1) / 2)}" y="{bottom + 34}" text-anchor="middle">'
            f"{_e(axis)}</text>"
        )
    for i, (bar, label) in enumerate(zip(bars, labels)):
        y = top + i * _ROW
        w = max(bar.value * scale, 1.0 if bar.value else 0.0)
        left = x0 + ((x1 - x0) - w) / 2 if centred else x0
        key = f' data-key="{_e(bar.key)}"' if bar.key else ""
        parts.append(
            f'<g class="row"><title>{_e(bar.tooltip)}</title>'
            f'<text x="{_f(x0 - 8)}" y="{y + 13}" text-anchor="end" dominant-baseline="middle">'
            f"{_e(label)}</text>"
            f'<rect class="bar" x="{_f(left)}" y="{_f(y + (_ROW - _BAR) / 2)}" width="{_f(w)}" '
            f'height="{_BAR}" fill="{bar.colour}"/>'
            f'<text x="{_f(left + w + 6)}" y="{y + 13}" dominant-baseline="middle"{key}>'
            f"{_e(bar.text)}</text></g>"
        )
    height = bottom + (44 if axis else 8)
    return _svg(width, height, title, "".join(parts))


class Column(NamedTuple):
    value: float
    tooltip: str
    text: str = ""  # shown above the column ("" for none)


def vbar_chart(
    title: str,
    columns: Sequence[Column],
    *,
    x_axis: str,
    y_axis: str,
    x_labels: Sequence[str],
    at_edges: bool = False,
    width: int = 540,
    colour: str = _BLUE,
) -> str:
    """Vertical columns with both axes. ``x_labels`` name the columns, or with
    ``at_edges`` the boundaries between them (one more than the columns), as
    many as fit."""
    x0, x1, top, bottom = 56, width - 12, 40, 250
    vmax = max([c.value for c in columns] + [0]) or 1
    ticks = _ticks(vmax, 4)
    scale = (bottom - top) / ticks[-1]
    n = max(len(columns), 1)
    step = (x1 - x0) / n
    parts = []
    for t in ticks:
        y = bottom - t * scale
        parts.append(
            f'<line class="grid" x1="{x0}" y1="{_f(y)}" x2="{x1}" y2="{_f(y)}"/>'
            f'<text class="ax" x="{x0 - 6}" y="{_f(y)}" text-anchor="end" dominant-baseline="middle">'
            f"{_tick_label(t)}</text>"
        )
    for i, column in enumerate(columns):
        h = column.value * scale
        x = x0 + i * step
        above = (
            f'<text x="{_f(x + step / 2)}" y="{_f(bottom - h - 5)}" text-anchor="middle">'
            f"{_e(column.text)}</text>"
            if column.text
            else ""
        )
        parts.append(
            f'<g class="col"><title>{_e(column.tooltip)}</title>'
            f'<rect class="bar" x="{_f(x + 1)}" y="{_f(bottom - h)}" width="{_f(max(step - 2, 1))}" '
            f'height="{_f(h)}" fill="{colour}"/>{above}</g>'
        )
    positions = [x0 + i * step for i in range(len(x_labels))] if at_edges else None
    if positions is None:
        positions = [x0 + (i + 0.5) * step for i in range(len(x_labels))]
    widest = max([len(x) for x in x_labels] + [1]) * _CHAR_PX + 8
    every = max(1, math.ceil(widest / step))
    for i, (x, label) in enumerate(zip(positions, x_labels)):
        if i % every == 0:
            parts.append(
                f'<text class="ax" x="{_f(x)}" y="{bottom + 16}" text-anchor="middle">{_e(label)}</text>'
            )
    parts.append(
        f'<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#8c96a0"/>'
        f'<text class="ax" x="{_f((x0 + x1) / 2)}" y="{bottom + 36}" text-anchor="middle">{_e(x_axis)}</text>'
        f'<text class="ax" transform="translate(14 {_f((top + bottom) / 2)}) rotate(-90)" '
        f'text-anchor="middle">{_e(y_axis)}</text>'
    )
    return _svg(width, bottom + 46, title, "".join(parts))


# ---------------------------------------------------------------- sections


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def _tile(name: str, value: str, note: str) -> str:
    slug = _slug(name)
    shown_note = f'<div class="s" data-key="headline.{slug}.note">{_e(note)}</div>' if note else ""
    return (
        f'<div class="tile"><div class="v" data-key="headline.{slug}">{_e(value)}</div>'
        f'<div class="l">{_e(name)}</div>{shown_note}</div>'
    )


def _funnel(doc: dict) -> str:
    s = doc["stats"]
    segments, built, kept = s["total_segments"], doc["windows"], doc["filtered_windows"]
    stages = [
        ("segments", segments, s["total_dur"], "", _GREY),
        ("windows built", built, doc["total_dur_window"], f"{_share(built, segments)} of segments", _BLUE),
        ("windows kept", kept, doc["filtered_dur"], f"{_share(kept, built)} of windows built", _GREEN),
    ]
    bars = [
        Bar(
            name,
            count,
            colour,
            " · ".join(x for x in (_int(count), _hours(seconds), share) if x),
            f"{name}: {_int(count)}, {_hours(seconds)}" + (f", {share}" if share else ""),
            f"chart.funnel.{_slug(name)}",
        )
        for name, count, seconds, share, colour in stages
    ]
    rows = "".join(
        f'<tr><td>{name}</td><td class="n" data-key="funnel.{_slug(name)}.count">{_int(count)}</td>'
        f'<td class="n" data-key="funnel.{_slug(name)}.share">{share}</td>'
        f'<td class="n" data-key="funnel.{_slug(name)}.hours">{_hours(seconds)}</td></tr>'
        for name, count, seconds, share, _colour in stages
    )
    return (
        '<section id="funnel"><h2>Yield</h2>'
        '<p class="note">Every segment is tried as a window start; a window is built from a start '
        "that reaches the target length; the windows kept survive the overlap filter. Each share is "
        "of the stage before. Windows built overlap each other, so their hours can exceed the audio "
        "hours.</p>"
        f"{hbar_chart('Yield funnel (count · hours · share of the stage before)', bars, centred=True)}"
        '<table><tr><th>stage</th><th class="n">count</th><th class="n">share</th>'
        f'<th class="n">hours</th></tr>{rows}</table></section>'
    )


def _losses(doc: dict) -> str:
    s = doc["stats"]
    total, total_dur = s["total_segments"], s["total_dur"]
    built = total - s["lost_sr"] - s["lost_bw"] - s["lost_spk"] - s["lost_win"]
    bars = [
        Bar(
            "windows built",
            built,
            _GREEN,
            f"{_int(built)} ({_share(built, total)})",
            f"windows built: {_int(built)} window starts ({_share(built, total)} of segments)",
            "chart.losses.windows_built",
        )
    ]
    for key, _dur_key, meaning in LOSS_BUCKETS:
        sub = meaning.startswith("  ")
        bars.append(
            Bar(
                f"{key} (of lost_win)" if sub else key,
                s[key],
                _LIGHT_ORANGE if sub else _ORANGE,
                f"{_int(s[key])} ({_share(s[key], total)})",
                f"{key}: {_int(s[key])} segments ({_share(s[key], total)}), {meaning.strip()}",
                f"chart.losses.{key}",
            )
        )
    rows = []
    for count_key, dur_key, meaning in LOSS_BUCKETS:
        sub = meaning.startswith("  ")
        rows.append(
            f'<tr class="{"sub" if sub else ""}"><td><code>{count_key}</code></td>'
            f'<td class="n" data-key="stats.{count_key}">{_int(s[count_key])}</td>'
            f'<td class="n" data-key="stats.{count_key}.share">{_share(s[count_key], total)}</td>'
            f'<td class="n" data-key="stats.{dur_key}">{s[dur_key]:,.1f} s</td>'
            f'<td class="n" data-key="stats.{dur_key}.share">{_share(s[dur_key], total_dur)}</td>'
            f"<td>{_e(meaning.strip())}</td><td>{_e(LOSS_KNOBS[count_key])}</td></tr>"
        )
    return (
        '<section id="losses"><h2>Loss breakdown</h2>'
        '<p class="note">Each segment that starts a window ends in exactly one place: a window, '
        "<code>lost_bw</code>, <code>lost_win</code> or <code>lost_spk</code> (all segments of an "
        "entry below the sample rate count in <code>lost_sr</code>). Durations are the start "
        "segments' durations. Turn the knob in the last column to recover a loss.</p>"
        f"{hbar_chart('Where the window starts went', bars, axis='segments (window starts)')}"
        '<table><tr><th>counter</th><th class="n">segments</th><th class="n">% of segments</th>'
        '<th class="n">duration</th><th class="n">% of duration</th><th>what happened</th>'
        f"<th>knob to turn</th></tr>{''.join(rows)}</table>"
        f'<p class="note">Truncation events (last segment cut at a word boundary): '
        f'<span data-key="truncation_events">{_int(doc["truncation_events"])}</span> '
        "(<code>builder.truncation</code>).</p></section>"
    )


def _distributions(doc: dict) -> str:
    dist = doc.get("distributions") or {}
    dur = dist.get("kept_window_duration_s") or {"bin_edges": [], "counts": []}
    spk = dist.get("kept_window_speakers") or {"values": [], "counts": []}
    edges, counts = dur["bin_edges"], dur["counts"]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1.0
    if counts:
        duration_chart = vbar_chart(
            f"Kept-window duration ({width:g} s bins)",
            [Column(c, f"{a:g}-{b:g} s: {_int(c)} windows") for a, b, c in zip(edges, edges[1:], counts)],
            x_axis="window duration (s)",
            y_axis="windows kept",
            x_labels=[f"{e:g}" for e in edges],
            at_edges=True,
        )
    else:
        duration_chart = "<p>No window was kept.</p>"
    if spk["counts"]:
        speakers_chart = vbar_chart(
            "Speakers per kept window",
            [
                Column(c, f"{v} speakers: {_int(c)} windows", _int(c))
                for v, c in zip(spk["values"], spk["counts"])
            ],
            x_axis="distinct speakers in the window",
            y_axis="windows kept",
            x_labels=[str(v) for v in spk["values"]],
            colour=_GREEN,
        )
    else:
        speakers_chart = "<p>No window was kept.</p>"
    outside = dur.get("below_range", 0) + dur.get("above_range", 0)
    note = f" {_int(outside)} windows fell outside the bins." if outside else ""
    return (
        '<section id="distributions"><h2>Windows kept</h2>'
        '<p class="note">Counted by the pipeline\'s own combiner over every kept window '
        "(each element of <code>filtered_windows</code>), in fixed bins over the accepted "
        f"window length [min, max].{note}</p>"
        f'<div class="grid2"><div>{duration_chart}</div><div>{speakers_chart}</div></div></section>'
    )


def _errors(doc: dict) -> str:
    by_reason = doc["errors_by_reason"]
    examples = doc.get("error_examples") or {}
    read, failed = doc["entries_read"], doc["entries_failed"]
    head = (
        f'<section id="errors"><h2>Rejected lines</h2><p class="note">'
        f'<span data-key="entries_failed">{_int(failed)}</span> of {_int(read)} entries read '
        f"({_share(failed, read)}) were rejected and written to <code>errors-*.jsonl</code> "
        "with their reason. One example per reason: the one earliest in the first "
        "manifest (by path, then byte offset).</p>"
    )
    if not by_reason:
        return head + "<p>No line was rejected.</p></section>"
    reasons = sorted(by_reason, key=lambda r: (-by_reason[r], r))
    bars = [
        Bar(
            r,
            by_reason[r],
            _RED,
            _int(by_reason[r]),
            f"{r}: {_int(by_reason[r])} lines ({_share(by_reason[r], read)})",
        )
        for r in reasons
    ]
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
    return (
        head
        + hbar_chart("Rejected lines by reason", bars, axis="lines")
        + '<table><tr><th>reason</th><th class="n">lines</th><th>example</th></tr>'
        + "".join(rows)
        + "</table></section>"
    )


def _manifests(doc: dict) -> str:
    info = doc.get("manifests") or {"count": 0, "lowest_yield": []}
    rows = info["lowest_yield"]
    head = (
        '<section id="manifests"><h2>Manifests with the lowest yield</h2>'
        '<p class="note">Yield = kept window hours / segment hours of a manifest file '
        "(above 100 % where the windows span pauses between segments). "
        f'The {len(rows)} lowest of <span data-key="manifests.count">'
        f"{_int(info['count'])}</span> manifests with at least one line; a bar names the "
        "shortest end of the path that tells the files apart, and its row number in the table.</p>"
    )
    if not rows:
        return head + "<p>No manifest line was read.</p></section>"
    names = [r["manifest_filepath"] for r in rows]
    bars = [
        Bar(
            f"{i + 1}. {short}",
            100.0 * r["yield"],
            _ORANGE,
            f"{100.0 * r['yield']:.2f}%",
            f"{i + 1}. {name}: {100.0 * r['yield']:.2f}% kept ({_hours(r['filtered_dur'])} of "
            f"{_hours(r['total_dur'])})",
        )
        for i, (r, name, short) in enumerate(zip(rows, names, short_names(names)))
    ]
    body = "".join(
        f'<tr><td class="n">{i + 1}</td><td><code>{_e(r["manifest_filepath"])}</code></td>'
        f'<td class="n">{_int(r["entries_read"])}</td><td class="n">{_int(r["entries_failed"])}</td>'
        f'<td class="n">{_int(r["total_segments"])}</td><td class="n">{_hours(r["total_dur"])}</td>'
        f'<td class="n">{_int(r["filtered_windows"])}</td><td class="n">{_hours(r["filtered_dur"])}</td>'
        f'<td class="n" data-key="manifests.yield.{i}">{100.0 * r["yield"]:.2f}%</td></tr>'
        for i, r in enumerate(rows)
    )
    return (
        head
        + hbar_chart("Yield of the lowest-yield manifests", bars, axis="kept hours / segment hours (%)")
        + '<table><tr><th class="n">#</th><th>manifest</th><th class="n">lines</th>'
        '<th class="n">rejected</th>'
        '<th class="n">segments</th><th class="n">segment hours</th>'
        '<th class="n">windows kept</th><th class="n">kept hours</th><th class="n">yield</th>'
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
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(json.dumps(v, ensure_ascii=False))}</td></tr>"
        for k, v in params
    )
    run_rows = "".join(
        f'<tr><td>{_e(k)}</td><td data-key="run.{_e(k)}">{_e(v)}</td></tr>' for k, v in run.items()
    )
    outputs = doc.get("outputs") or {}
    out_rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(', '.join(map(str, v)))}</td></tr>" for k, v in outputs.items()
    )
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
    run = doc.get("run") or {}
    when = run.get("finished_at") or ""
    subtitle = " · ".join(
        x
        for x in (
            f"finished {when}" if when else "",
            f"alm_beam {run.get('alm_beam', '?')}, Apache Beam {run.get('apache_beam', '?')}",
            str(run.get("runner", "")),
        )
        if x
    )
    failed = doc["entries_failed"]
    tiles = "".join(_tile(*figure) for figure in headline_figures(doc))
    warn = ""
    if failed and doc.get("max_error_fraction") is None:
        warn = (
            f'<p class="warn">{_int(failed)} input lines were rejected; see errors-*.jsonl '
            "(set --max_error_fraction to fail such runs).</p>"
        )
    body = "".join(
        (
            f'<section id="overview"><div class="tiles">{tiles}</div>{warn}</section>',
            _funnel(doc),
            _losses(doc),
            _distributions(doc),
            _errors(doc),
            _manifests(doc),
            _parameters(doc),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>alm_beam run report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>alm_beam run report</h1><p>{_e(subtitle)}</p></header>"
        f"<main>{body}</main></body></html>\n"
    )


def read_summary(directory: str) -> dict:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(FileSystems.join(directory, SUMMARY_NAME)) as fh:
        return json.loads(fh.read())


def write_report(directory: str, page: str, name: str = REPORT_NAME) -> str:
    """Write ``page`` as ``directory/name``. Locally as a new file renamed over
    the old one, never through a link (``OutputDirError`` names a link there);
    on an object store through Beam's FileSystems (no links there)."""
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(directory, name)
    if "://" not in directory:
        from alm_beam.io.output_dir import replace_local_file

        replace_local_file(path, page.encode("utf-8"), "choose another directory")
        return path
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
        _say(
            f"alm_beam: error: cannot read {args.directory}/{SUMMARY_NAME} ({reason}); "
            "pass the output directory of a finished run"
        )
        return 2
    try:
        page = render_html(doc)
    except (KeyError, TypeError, ValueError) as exc:
        _say(
            f"alm_beam: error: {args.directory}/{SUMMARY_NAME} is not an alm_beam summary "
            f"({type(exc).__name__}: {exc})"
        )
        return 2
    from alm_beam.io.output_dir import OutputDirError

    try:
        path = write_report(args.directory, page)
    except OutputDirError as exc:
        _say(f"alm_beam: error: {exc}")
        return 2
    except OSError as exc:
        _say(f"alm_beam: error: cannot write {args.directory}/{REPORT_NAME} ({exc.strerror or exc})")
        return 2
    print(terminal_safe(f"alm_beam: wrote {path}"))
    return 0


def _say(line: str) -> None:
    """An error line on stderr; the directory it names cannot control the terminal."""
    print(terminal_safe(line), file=sys.stderr)
