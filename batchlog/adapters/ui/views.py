"""HTML renderings of what QueueService returns: the status line, tables, preview and charts.

Pure functions from plain dicts to escaped HTML strings, so the tabs stay small and every piece
of text the page shows is made in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

ROWS_SHOWN = 200
KEY_PARAMETERS = ("num_steps", "guidance", "sigma_max", "fps", "frames")
BATCH_LINE = re.compile(r"^\s*Batch \d+:")
STALE_NOTE = "Stale: the queue changed after this analysis. Re-analyze before executing."


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="bl-table" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def status_line(status: Mapping[str, Any]) -> str:
    """One line: queue name, paused or running, batch size, counts and sequence."""
    state = "PAUSED" if status["paused"] else "RUNNING"
    return (
        f"Queue **{status['queue']}** is **{state}** · batch size {status['batch_size']} · "
        f"{status['total_queued']} queued · {len(status['running'])} running · "
        f"sequence {status['sequence']}"
    )


def key_parameters(parameters: Mapping[str, Any]) -> str:
    """The execution parameters a user tells jobs apart by: steps, guidance, and so on."""
    shown = [f"{name}={parameters[name]}" for name in KEY_PARAMETERS if name in parameters]
    if parameters.get("width") and parameters.get("height"):
        shown.append(f"{parameters['width']}x{parameters['height']}")
    return " ".join(shown)


QUEUE_HEADERS = (
    "pos",
    "id",
    "type",
    "runs",
    "active controls",
    "key parameters",
    "priority",
    "status",
    "claimed by",
)


def queue_rows(status: Mapping[str, Any]) -> list[list[Any]]:
    """Rows of the queue table: running items first, then queued ones in order."""
    rows = []
    for job in [*status.get("running", []), *status.get("queued_jobs", [])]:
        rows.append(
            [
                job.get("position") or "-",
                job["id"],
                job["type"],
                job["runs"],
                ", ".join(job.get("controls") or []) or "-",
                key_parameters(job.get("parameters") or {}) or "-",
                job["priority"],
                job["status"],
                job.get("claimed_by") or "",
            ]
        )
    return rows


def queue_table(
    status: Mapping[str, Any], table_id: str = "bl-queue-table", limit: int = ROWS_SHOWN
) -> str:
    """The queue as an HTML table (the first `limit` rows), or a note when it is empty."""
    rows = queue_rows(status)
    if not rows:
        return f'<p id="{table_id}" class="bl-empty">The queue is empty.</p>'
    more = len(rows) - limit
    note = (
        f'<p class="bl-empty">… and {more} more (see <code>batchlog status</code>).</p>'
        if more > 0
        else ""
    )
    return _table(QUEUE_HEADERS, rows[:limit], table_id) + note


def preview_html(analysis: Mapping[str, Any] | None) -> str:
    """The analysis preview with each line (and so each batch) on its own line."""
    if not analysis:
        return '<div id="bl-preview-text" class="bl-empty">No analysis yet.</div>'
    lines = str(analysis["preview"]).splitlines()
    body = "".join(
        f'<div class="bl-line{" bl-batch" if BATCH_LINE.match(line) else ""}">'
        f"{escape(line) or '&nbsp;'}</div>"
        for line in lines
    )
    return f'<div id="bl-preview-text" class="bl-preview">{body}</div>'


def analysis_state_note(analysis: Mapping[str, Any] | None, head: int) -> str:
    """Whether the page's analysis is still fresh against the queue's head sequence."""
    if not analysis:
        return (
            "No analysis on this page: choose a mode and press Analyze (while the queue is paused)."
        )
    if int(analysis["sequence"]) != head:
        return (
            f"**{STALE_NOTE}** (analysis {analysis['analysis_id']} was made at sequence "
            f"{analysis['sequence']}; the queue is now at {head})"
        )
    return (
        f"Analysis {analysis['analysis_id']} ({analysis['mode']} mode) is fresh at sequence "
        f"{analysis['sequence']}. Execute reorganizes the queue; nothing runs until you resume."
    )


def _lease_left(expires: str | None, now: datetime) -> str:
    if not expires:
        return ""
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        return expires
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return f"{when.strftime('%H:%M:%S')} ({seconds:+.0f}s)"


def _progress(progress: Mapping[str, Any] | None, runs: int) -> str:
    if not progress:
        return f"0/{runs}"
    done, failed = int(progress.get("done", 0)), int(progress.get("failed", 0))
    total = int(progress.get("total", runs))
    return f"{done}/{total} done" + (f", {failed} failed" if failed else "")


def runners_table(status: Mapping[str, Any], now: datetime | None = None) -> str:
    """Runners holding items: which item, its lease, the progress of the current batch."""
    moment = now or datetime.now(UTC)
    running = status.get("running", [])
    if not running:
        return '<p id="bl-runners-table" class="bl-empty">No runner holds an item right now.</p>'
    rows = [
        [
            job.get("claimed_by", "?"),
            job["id"],
            job["type"],
            job["runs"],
            ", ".join(job.get("controls") or []),
            _lease_left(job.get("lease_expires_at"), moment),
            _progress(job.get("progress"), int(job["runs"])),
        ]
        for job in running
    ]
    headers = ("runner", "item", "type", "runs", "controls", "lease until", "progress")
    return _table(headers, rows, "bl-runners-table")


def recent_table(status: Mapping[str, Any]) -> str:
    """Items that left the queue recently: finished, failed, cancelled or merged into a batch."""
    recent = status.get("recent") or []
    if not recent:
        return '<p id="bl-recent-table" class="bl-empty">Nothing has ended yet.</p>'
    rows = [
        [
            job.get("id", ""),
            job.get("type", ""),
            job.get("runs", ""),
            job.get("outcome") or job.get("status", ""),
            job.get("claimed_by") or "",
            ", ".join(job.get("merged_into") or []),
        ]
        for job in recent
    ]
    headers = ("item", "type", "runs", "outcome", "runner", "merged into")
    return _table(headers, rows, "bl-recent-table")


def sessions_table(overview: Mapping[str, Any]) -> str:
    """Runner sessions (active, lost or stopped) and the queued items no active runner can take."""
    runners = overview.get("runners") or []
    if not runners:
        html = '<p id="bl-sessions-table" class="bl-empty">No runner has started on this queue.</p>'
    else:
        rows = [
            [
                runner.get("runner_id", ""),
                runner.get("status_text") or ("active" if runner.get("active") else "stopped"),
                runner.get("backend", ""),
                runner.get("device", ""),
                ", ".join(runner.get("job_types") or []),
                str(runner.get("started_at", ""))[:19],
            ]
            for runner in runners
        ]
        headers = ("runner", "status", "backend", "device", "job types", "started")
        html = _table(headers, rows, "bl-sessions-table")
    waiting = overview.get("unrunnable") or []
    if waiting:
        items = "".join(
            f"<li>{escape(str(w.get('id')))} ({escape(str(w.get('type')))}): "
            f"{escape(str(w.get('reason')))}</li>"
            for w in waiting
        )
        html += f"<p>Waiting for a capable runner:</p><ul>{items}</ul>"
    return html


def history_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The event timeline: one row per event."""
    if not rows:
        return '<p id="bl-history-table" class="bl-empty">No events match.</p>'
    shown = [
        [
            row.get("position", ""),
            row.get("sequence", ""),
            str(row.get("timestamp", ""))[:19],
            row.get("event_type", ""),
            row.get("actor", ""),
            ", ".join(row.get("job_ids") or []),
            row.get("summary", ""),
        ]
        for row in rows
    ]
    headers = ("position", "sequence", "time", "event", "actor", "jobs", "summary")
    return _table(headers, shown, "bl-history-table")


def lineage_html(lineage: Mapping[str, Any]) -> str:
    """A job's lineage: where it came from, where it went, what ran and what it produced."""
    parts = [f"<h4>Lineage of {escape(str(lineage.get('job_id', '')))}</h4>"]
    if lineage.get("status"):
        parts.append(f"<p>Status: <b>{escape(str(lineage['status']))}</b></p>")
    added = lineage.get("added")
    if isinstance(added, Mapping) and added.get("position") is not None:
        parts.append(
            f"<p>Added at position {escape(str(added.get('position')))} by "
            f"{escape(str(added.get('by')))}</p>"
        )
    if lineage.get("source_job_ids"):
        sources = ", ".join(lineage["source_job_ids"])
        parts.append(f"<p>Batch job merged from: <b>{escape(sources)}</b></p>")
    if lineage.get("merged_into"):
        merged = lineage["merged_into"]
        target = ", ".join(merged) if isinstance(merged, list | tuple) else str(merged)
        parts.append(f"<p>Merged into batch job: <b>{escape(target)}</b></p>")
    events = lineage.get("events") or []
    if events:
        parts.append(history_table(events).replace("bl-history-table", "bl-lineage-events"))
    runs = lineage.get("runs") or []
    if runs:
        rows = [
            [
                run.get("run_id", ""),
                run.get("prompt_id", ""),
                run.get("source_job_id", ""),
                run.get("status", ""),
                run.get("output_path") or "",
                (run.get("sha256") or "")[:12],
            ]
            for run in runs
        ]
        headers = ("run", "prompt", "from job", "status", "output", "sha256")
        parts.append(_table(headers, rows, "bl-lineage-runs"))
    claims = lineage.get("claims") or []
    if claims:
        rows = [
            [
                claim.get("job_id", ""),
                claim.get("runner_id", ""),
                claim.get("attempt", ""),
                claim.get("outcome", ""),
            ]
            for claim in claims
        ]
        parts.append(_table(("item", "runner", "attempt", "outcome"), rows, "bl-lineage-claims"))
    return f'<div id="bl-lineage-view">{"".join(parts)}</div>'


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def speedup_chart(report: Mapping[str, Any]) -> str:
    """Estimated vs measured seconds per batch as an inline SVG bar chart, with the speedups."""
    batches = report.get("batches") or []
    pairs = [
        (_number(b.get("estimated_seconds")) or 0.0, _number(b.get("measured_seconds")))
        for b in batches
    ]
    top = max([e for e, _ in pairs] + [m or 0.0 for _, m in pairs] + [1e-9])
    width, bar, height = 60, 18, 160
    svg = [
        f'<svg id="bl-speedup-chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{max(1, len(pairs)) * width + 40}" height="{height + 40}" role="img">'
    ]
    for index, (estimated, measured) in enumerate(pairs):
        x = 30 + index * width
        for offset, value, colour in ((0, estimated, "#8aa4c8"), (bar, measured, "#e07b39")):
            if value is None:
                continue
            h = height * value / top
            svg.append(
                f'<rect x="{x + offset}" y="{height - h + 10:.1f}" width="{bar}" '
                f'height="{h:.1f}" fill="{colour}"><title>{value:.2f}s</title></rect>'
            )
        svg.append(f'<text x="{x}" y="{height + 28}" font-size="11">batch {index + 1}</text>')
    svg.append("</svg>")
    legend = (
        '<p><span style="color:#8aa4c8">■</span> estimated seconds '
        '<span style="color:#e07b39">■</span> measured seconds</p>'
    )
    rows = [
        [
            index + 1,
            f"{estimated:.2f}",
            "-" if measured is None else f"{measured:.2f}",
        ]
        for index, (estimated, measured) in enumerate(pairs)
    ]
    table = _table(("batch", "estimated s", "measured s"), rows, "bl-speedup-table")
    overall = []
    for key, label in (
        ("estimated_speedup", "estimated speedup"),
        ("measured_speedup", "measured speedup"),
    ):
        value = _number(report.get(key))
        overall.append(f"{label}: {'-' if value is None else f'{value:.2f}x'}")
    summary = f'<p id="bl-speedup-summary">{escape(" · ".join(overall))}</p>'
    return f'<div id="bl-speedup-view">{"".join(svg)}{legend}{summary}{table}</div>'
