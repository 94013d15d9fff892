"""The Results tab: each run's output video, and estimated vs measured speedup per executed plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.ui import views
from batchlog.domain.errors import BatchlogError

MISSING = "Not available in this build (QueueService.{name} is missing)."


@dataclass
class ResultsTab:
    """The Results tab's components."""

    job: gr.Textbox
    show_outputs: gr.Button
    outputs_note: gr.Markdown
    gallery: gr.Gallery
    plans: gr.Dropdown
    refresh_plans: gr.Button
    show_report: gr.Button
    report: gr.HTML


def build() -> ResultsTab:
    """Lay out the Results tab."""
    gr.Markdown("#### Outputs per run")
    with gr.Row():
        job = gr.Textbox(label="Job or batch job id", elem_id="bl-results-job", scale=3)
        show_outputs = gr.Button("Show outputs", elem_id="bl-results-show", scale=1)
    outputs_note = gr.Markdown(elem_id="bl-results-note")
    gallery = gr.Gallery(
        label="Output videos",
        columns=4,
        height=360,
        object_fit="contain",
        elem_id="bl-results-gallery",
    )
    gr.Markdown("#### Estimated vs measured speedup per executed plan")
    with gr.Row():
        plans = gr.Dropdown(label="Executed plan", choices=[], elem_id="bl-plans", scale=3)
        refresh_plans = gr.Button("Refresh plans", elem_id="bl-plans-refresh", scale=1)
        show_report = gr.Button("Show speedups", elem_id="bl-plan-show", scale=1)
    report = gr.HTML(elem_id="bl-plan-report")
    return ResultsTab(
        job=job,
        show_outputs=show_outputs,
        outputs_note=outputs_note,
        gallery=gallery,
        plans=plans,
        refresh_plans=refresh_plans,
        show_report=show_report,
        report=report,
    )


def job_outputs(service: QueueService, job_id: str) -> tuple[str, list[tuple[str, str]]]:
    """A note and the (video path, caption) pairs of a job's runs that produced output."""
    if not hasattr(service, "lineage"):
        return MISSING.format(name="lineage"), []
    job_id = (job_id or "").strip()
    if not job_id:
        return "Give a job id.", []
    try:
        runs = service.lineage(job_id).get("runs") or []
    except BatchlogError as error:
        return f"Error: {error}", []
    videos = []
    lines = []
    for run in runs:
        path = run.get("output_path")
        checksum = (run.get("sha256") or "")[:12]
        lines.append(f"- {run.get('run_id')}: {run.get('status')} {path or ''} {checksum}")
        if path and Path(path).exists():
            videos.append((str(path), f"{run.get('run_id')} ({run.get('prompt_id')})"))
    note = "\n".join(lines) if lines else f"No runs of {job_id} have finished yet."
    return note, videos


def executed_plans(service: QueueService) -> list[str]:
    """Ids of analyses that were executed (from Reorganized events), newest first."""
    if hasattr(service, "plan_reports"):
        reports = service.plan_reports()
        return [str(r["analysis_id"]) for r in reversed(reports) if r.get("executed", True)]
    if not hasattr(service, "history"):
        return []
    rows = service.history()
    ids: list[str] = []
    for row in rows:
        if row.get("event_type") == "Reorganized":
            analysis_id = (row.get("payload") or {}).get("analysis_id")
            if analysis_id and analysis_id not in ids:
                ids.append(str(analysis_id))
    return list(reversed(ids))


def plan_report_html(service: QueueService, analysis_id: str | None) -> str:
    """The speedup chart of one executed plan."""
    if not hasattr(service, "get_plan_report"):
        return f"<p>{MISSING.format(name='get_plan_report')}</p>"
    if not analysis_id:
        return "<p>Choose an executed plan.</p>"
    try:
        report: dict[str, Any] = service.get_plan_report(analysis_id)
    except BatchlogError as error:
        return f"<p>Error: {error}</p>"
    return views.speedup_chart(report)


def wire(tab: ResultsTab, service: QueueService) -> None:
    """Attach the Results tab's buttons."""
    tab.show_outputs.click(
        lambda j: job_outputs(service, j), tab.job, [tab.outputs_note, tab.gallery]
    )

    def plans_update() -> Any:
        choices = executed_plans(service)
        return gr.update(choices=choices, value=choices[0] if choices else None)

    tab.refresh_plans.click(plans_update, None, tab.plans)
    tab.show_report.click(lambda a: plan_report_html(service, a), tab.plans, tab.report)
