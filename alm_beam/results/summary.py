"""summary.json content and the human-readable run report (pure Python)."""

from __future__ import annotations

import datetime
import posixpath
import time
from typing import Optional, Sequence

from alm_beam.core.display import terminal_safe
from alm_beam.core.stats import RunStats

LOSS_BUCKETS = (
    ("lost_bw", "dur_lost_bw", "segment below min_bandwidth"),
    ("lost_sr", "dur_lost_sr", "entry below min_sample_rate"),
    ("lost_spk", "dur_lost_spk", "window speaker count outside [min_speakers, max_speakers]"),
    ("lost_win", "dur_lost_win", "no window within target +/- tolerance (or < 2 segments)"),
    ("lost_no_spkr", "dur_lost_no_spkr", "  of lost_win: stopped at a segment without speaker"),
    ("lost_next_seg_bm", "dur_lost_next_seg_bm", "  of lost_win: stopped at a low-bandwidth segment"),
)

# The knob to turn for each loss (the README's "Loss statistics" table).
LOSS_KNOBS = {
    "lost_bw": "builder.min_bandwidth, or fix the bandwidth estimation upstream",
    "lost_sr": "builder.min_sample_rate (e.g. 8000 for telephone audio; configs/permissive.yaml)",
    "lost_spk": "builder.min_speakers (1 admits monologues), builder.max_speakers",
    "lost_win": "builder.tolerance, builder.target_window_duration, builder.truncation, builder.max_speakers",
    "lost_no_spkr": "improve diarization coverage; these segments always end windows",
    "lost_next_seg_bm": "builder.min_bandwidth",
}


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-01-31T12:00:00.123Z."""
    moment = datetime.datetime.fromtimestamp(epoch_s, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def process_started_epoch_s() -> float:
    """When this process started (Linux ``/proc``; elsewhere: now).

    A run's time as its user waits for it includes the interpreter, Beam's import
    and discovery before the pipeline starts (about 3 s of a 4 s sample run).
    """
    import os

    try:
        with open("/proc/self/stat", "rb") as fh:
            start_ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", "rb") as fh:
            uptime_s = float(fh.read().split()[0])
        return time.time() - max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def finished_run_info(run_info: dict, finished_epoch_s: float) -> dict:
    """``run_info`` plus ``finished_at`` and ``duration_s`` (from its ``started_epoch_s``,
    which is replaced by ``started_at``), and ``process_duration_s`` (from its
    ``process_started_epoch_s``: the whole run, as the user waited for it)."""
    info = dict(run_info)
    started = info.pop("started_epoch_s", None)
    if started is not None:
        info["started_at"] = iso_utc(started)
        info["finished_at"] = iso_utc(finished_epoch_s)
        info["duration_s"] = round(finished_epoch_s - started, 3)
    process_started = info.pop("process_started_epoch_s", None)
    if process_started is not None:
        info["process_duration_s"] = round(finished_epoch_s - process_started, 3)
    return info


class ErrorBudgetExceeded(RuntimeError):
    """More bad lines than --max_error_fraction allows; fails the job before summary.json."""


class LinesUnaccounted(RuntimeError):
    """The reader's line count disagrees with what curation wrote, rejected and
    skipped: lines were lost (or counted twice) inside the pipeline. Fails the
    job before summary.json, so a run that lost lines never looks complete."""


LINE_BALANCE_MARKER = "ALM_BEAM_LINE_BALANCE: "


def check_line_balance(totals: dict) -> None:
    """lines_read == entries_written + entries_failed + blank_lines, or raise."""
    read, written = totals["lines_read"], totals["entries_written"]
    failed, blank = totals["entries_failed"], totals["blank_lines"]
    accounted = written + failed + blank
    if read != accounted:
        raise LinesUnaccounted(
            f"{LINE_BALANCE_MARKER}the reader read {read} lines but {accounted} are accounted "
            f"for ({written} written + {failed} rejected + {blank} blank); "
            f"{abs(read - accounted)} lines were {'lost' if read > accounted else 'duplicated'} "
            "inside the pipeline, so no summary.json was written (please report this as a bug)"
        )


def check_error_budget(totals: dict, max_error_fraction: Optional[float]) -> None:
    if max_error_fraction is None:
        return
    read = totals["entries_read"]
    failed = totals["entries_failed"]
    if read and failed / read > max_error_fraction:
        raise ErrorBudgetExceeded(
            f"ALM_BEAM_ERROR_BUDGET: {failed} of {read} lines were rejected "
            f"({failed / read:.2%}), more than --max_error_fraction={max_error_fraction:g}; "
            "see the errors-*.jsonl output for each line and its reason"
        )


def build_summary(
    stats: RunStats,
    *,
    params: dict,
    inputs: Sequence[str],
    window_files: Sequence[str],
    error_files: Sequence[str],
    max_error_fraction: Optional[float],
    run_info: dict,
    skipped_inputs: Sequence[dict] = (),
    train_files: Sequence[str] = (),
    config: Optional[dict] = None,
    check: bool = True,
) -> dict:
    """The whole summary.json document; with ``check``, raises LinesUnaccounted when
    the counts do not balance, ErrorBudgetExceeded when over budget (the CLI checks
    the staged document itself instead: ``check=False`` in its pipeline).

    ``skipped_inputs``: paths discovery found but did not read ({path, reason}).
    ``config``: the input and output settings that shaped the output (the
    CLI's ``config`` key; ``params`` holds builder and overlap).
    """
    totals = stats.to_dict()
    if check:
        check_line_balance(totals)
        check_error_budget(totals, max_error_fraction)
    doc = dict(totals)
    doc["filtered_hours"] = totals["filtered_dur"] / 3600.0
    doc["params"] = params
    if config is not None:
        doc["config"] = config
    doc["inputs"] = list(inputs)
    doc["skipped_inputs"] = [dict(item) for item in skipped_inputs]
    doc["outputs"] = {
        "windows": sorted(posixpath.basename(f) for f in window_files),
        "errors": sorted(posixpath.basename(f) for f in error_files),
        "train": sorted(posixpath.basename(f) for f in train_files),
    }
    doc["max_error_fraction"] = max_error_fraction
    doc["run"] = run_info
    doc.update(stats.report_dict())  # distributions, error_examples, manifests
    return doc


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def headline_figures(doc: dict) -> list:
    """``(name, value, note)`` of the figures the CLI summary and report.html both lead
    with: one definition, so their names, values and denominators agree (docs/output.md,
    "Headline figures"). ``note`` names what a share is of ("" when there is none)."""
    s, run = doc["stats"], doc.get("run") or {}
    read, failed = doc["entries_read"], doc["entries_failed"]
    figures = [
        ("lines read", f"{doc['lines_read']:,}", f"{doc['blank_lines']:,} blank"),
        ("entries read", f"{read:,}", ""),
        ("entries written", f"{doc['entries_written']:,}", ""),
        ("entries rejected", f"{failed:,}", f"{_pct(failed, read).strip()} of entries read"),
        ("segments", f"{s['total_segments']:,}", f"{s['total_dur'] / 3600.0:,.2f} h"),
        (
            "windows built",
            f"{doc['windows']:,}",
            f"{_pct(doc['windows'], s['total_segments']).strip()} of segments",
        ),
        (
            "windows kept",
            f"{doc['filtered_windows']:,}",
            f"{_pct(doc['filtered_windows'], doc['windows']).strip()} of windows built",
        ),
        (
            "kept audio",
            f"{doc['filtered_dur'] / 3600.0:,.2f} h",
            f"{_pct(doc['filtered_dur'], s['total_dur']).strip()} of segment audio",
        ),
        ("truncation events", f"{doc['truncation_events']:,}", ""),
    ]
    whole, pipeline = run.get("process_duration_s"), run.get("duration_s")
    if isinstance(whole, (int, float)):
        note = f"pipeline {pipeline:,.1f} s" if isinstance(pipeline, (int, float)) else ""
        figures.append(("run time", f"{whole:,.1f} s", note))
    elif isinstance(pipeline, (int, float)):  # a summary.json from before process_duration_s
        figures.append(("pipeline time", f"{pipeline:,.1f} s", ""))
    return figures


def render_report(doc: dict, output_dir: str) -> str:
    """A summary a person can read at a glance (printed at the end of a run)."""
    s = doc["stats"]
    failed = doc["entries_failed"]
    lines = ["alm_beam run summary"]
    for name, value, note in headline_figures(doc):
        lines.append(f"  {name:<19}{value:>12}" + (f"  ({note})" if note else ""))
    lines += ["", "  loss breakdown (per start segment; % of segments / % of duration):"]
    for count_key, dur_key, meaning in LOSS_BUCKETS:
        lines.append(
            f"    {count_key:<17}{s[count_key]:>10,}  {_pct(s[count_key], s['total_segments'])}"
            f"  {s[dur_key]:>12,.1f} s  {_pct(s[dur_key], s['total_dur'])}   {meaning}"
        )
    if doc["errors_by_reason"]:
        lines.append("")
        lines.append("  rejected lines by reason:")
        for reason, count in doc["errors_by_reason"].items():
            lines.append(f"    {count:>10,}  {terminal_safe(reason)}")
        if doc.get("max_error_fraction") is None:
            lines.append(
                f"  WARNING: {failed:,} input lines were rejected; "
                "see errors-*.jsonl (set --max_error_fraction to fail such runs)"
            )
    if doc.get("entries_reduced"):
        lines.append("")
        lines.append(
            f"  NOTE: {doc['entries_reduced']:,} entries were written reduced (without `windows`, "
            '"alm_beam_reduced" in the entry): their full line would pass input.max_line_mb'
        )
    lines.append("")
    outputs = doc.get("outputs", {})
    first = str((outputs.get("windows") or [""])[0])  # named as --output_compression wrote it
    suffix = next((s for s in (".jsonl.gz", ".jsonl.zst") if first.endswith(s)), ".jsonl")
    train = f"train-*{suffix}, " if outputs.get("train") else ""
    shown = terminal_safe(output_dir)
    lines.append(
        f"  output: {shown}  (windows-*{suffix}, errors-*{suffix}, {train}summary.json, report.html)"
    )
    return "\n".join(lines)
