"""The History tab: the event timeline with filters, a job's lineage, and time travel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gradio as gr

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.ui import views
from batchlog.domain.errors import BatchlogError

EVENT_TYPES = (
    "JobAdded",
    "JobsAdded",
    "JobCancelled",
    "Paused",
    "Resumed",
    "BatchSizeSet",
    "Analyzed",
    "Reorganized",
    "ItemClaimed",
    "ItemRequeued",
    "ItemDeadLettered",
)
ALL = "all"
MISSING = "The history view is not available in this build (QueueService.{name} is missing)."


@dataclass
class HistoryTab:
    """The History tab's components."""

    job_filter: gr.Textbox
    type_filter: gr.Dropdown
    since_filter: gr.Textbox
    show: gr.Button
    timeline: gr.HTML
    lineage_job: gr.Textbox
    show_lineage: gr.Button
    lineage: gr.HTML
    sequence: gr.Number
    travel: gr.Button
    travelled: gr.Markdown
    travelled_table: gr.HTML


def build() -> HistoryTab:
    """Lay out the History tab."""
    gr.Markdown("#### Event timeline")
    with gr.Row():
        job_filter = gr.Textbox(label="Job id", elem_id="bl-history-job")
        type_filter = gr.Dropdown(
            label="Event type", choices=[ALL, *EVENT_TYPES], value=ALL, elem_id="bl-history-type"
        )
        since_filter = gr.Textbox(
            label="Since (ISO time, e.g. 2026-12-01T10:00)", elem_id="bl-history-since"
        )
        show = gr.Button("Show events", elem_id="bl-history-show")
    timeline = gr.HTML(elem_id="bl-history")
    gr.Markdown("#### Lineage of a job")
    with gr.Row():
        lineage_job = gr.Textbox(label="Job or batch job id", elem_id="bl-lineage-job", scale=3)
        show_lineage = gr.Button("Show lineage", elem_id="bl-lineage-show", scale=1)
    lineage = gr.HTML(elem_id="bl-lineage")
    gr.Markdown("#### Time travel: the queue as it was after a sequence number")
    with gr.Row():
        sequence = gr.Number(
            label="Sequence number (the status line shows the head)",
            value=1,
            precision=0,
            elem_id="bl-sequence",
            scale=3,
        )
        travel = gr.Button("Show queue at sequence", elem_id="bl-travel", scale=1)
    travelled = gr.Markdown(elem_id="bl-travel-status")
    travelled_table = gr.HTML(elem_id="bl-travel-queue")
    return HistoryTab(
        job_filter=job_filter,
        type_filter=type_filter,
        since_filter=since_filter,
        show=show,
        timeline=timeline,
        lineage_job=lineage_job,
        show_lineage=show_lineage,
        lineage=lineage,
        sequence=sequence,
        travel=travel,
        travelled=travelled,
        travelled_table=travelled_table,
    )


def _error(text: str) -> str:
    return f'<p class="bl-error">{text}</p>'


def _since(text: str) -> datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BatchlogError(
            f"Since: {text!r} is not an ISO time such as 2026-12-01T10:00."
        ) from None


def _after(row: dict[str, Any], since: datetime) -> bool:
    stamp = row.get("timestamp")
    when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    if (when.tzinfo is None) != (since.tzinfo is None):
        when, since = when.replace(tzinfo=None), since.replace(tzinfo=None)
    return when >= since


def timeline_html(service: QueueService, job_id: str, event_type: str, since_text: str) -> str:
    """The filtered event timeline."""
    if not hasattr(service, "history"):
        return _error(MISSING.format(name="history"))
    try:
        since = _since(since_text)
        rows = service.history(job_id=(job_id or "").strip() or None)
    except BatchlogError as error:
        return _error(f"Error: {error}")
    if event_type and event_type != ALL:
        rows = [row for row in rows if row.get("event_type") == event_type]
    if since is not None:
        rows = [row for row in rows if _after(row, since)]
    return views.history_table(rows)


def lineage_html(service: QueueService, job_id: str) -> str:
    """The lineage of one job or batch job."""
    if not hasattr(service, "lineage"):
        return _error(MISSING.format(name="lineage"))
    job_id = (job_id or "").strip()
    if not job_id:
        return _error("Give a job id.")
    try:
        return views.lineage_html(service.lineage(job_id))
    except BatchlogError as error:
        return _error(f"Error: {error}")


def queue_at_html(service: QueueService, sequence: float | None) -> tuple[str, str]:
    """The status line and queue table as they were after a sequence number."""
    if not hasattr(service, "queue_at"):
        return "", _error(MISSING.format(name="queue_at"))
    try:
        status = service.queue_at(int(sequence or 0))
    except BatchlogError as error:
        return "", _error(f"Error: {error}")
    line = f"As of sequence {int(sequence or 0)}: " + views.status_line(status)
    return line, views.queue_table(status, "bl-travel-table")


def wire(tab: HistoryTab, service: QueueService) -> None:
    """Attach the History tab's buttons."""
    filters = [tab.job_filter, tab.type_filter, tab.since_filter]
    tab.show.click(lambda *f: timeline_html(service, *f), filters, tab.timeline)
    tab.job_filter.submit(lambda *f: timeline_html(service, *f), filters, tab.timeline)
    tab.show_lineage.click(lambda j: lineage_html(service, j), tab.lineage_job, tab.lineage)
    tab.lineage_job.submit(lambda j: lineage_html(service, j), tab.lineage_job, tab.lineage)
    tab.travel.click(
        lambda s: queue_at_html(service, s), tab.sequence, [tab.travelled, tab.travelled_table]
    )
