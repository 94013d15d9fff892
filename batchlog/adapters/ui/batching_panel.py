"""The Smart Batching panel: mode, Analyze, the preview, Execute, and stale marking.

The page keeps the analysis it showed (id and sequence) in its own session state and executes
exactly that analysis, so one user never executes another user's plan. A timer compares the
queue's head sequence with the analysis's and marks it stale; Execute still asks the service,
whose atomic check refuses a stale plan with the guide's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from batchlog.adapters.ui import views
from batchlog.adapters.ui.live import LiveView, Outcome, Updates, user_errors

MODES = {"Strict": False, "Mixed": True}
NOT_RUN_YET = "Nothing has run yet: resume the queue to let runners take the new batches."


@dataclass
class BatchingPanel:
    """The Smart Batching panel's components."""

    mode: gr.Radio
    analyze: gr.Button
    preview: gr.HTML
    execute: gr.Button
    note: gr.Markdown


def build() -> BatchingPanel:
    """Lay out the panel (enabled while the queue is paused)."""
    with gr.Group(elem_id="bl-smart-batching"):
        gr.Markdown("### ⚡ Smart Batching (pause the queue to analyze)")
        with gr.Row():
            mode = gr.Radio(
                choices=list(MODES), value="Strict", label="Mode", elem_id="bl-mode", scale=2
            )
            analyze = gr.Button("Analyze", elem_id="bl-analyze", interactive=False, scale=1)
            execute = gr.Button(
                "Execute", variant="primary", elem_id="bl-execute", interactive=False, scale=1
            )
        note = gr.Markdown(elem_id="bl-analysis-note")
        preview = gr.HTML(views.preview_html(None), elem_id="bl-preview")
    return BatchingPanel(mode=mode, analyze=analyze, preview=preview, execute=execute, note=note)


def _shown(analysis: dict[str, Any]) -> dict[str, Any]:
    keep = ("analysis_id", "sequence", "mode", "preview", "batch_size")
    return {key: analysis[key] for key in keep}


def wire(panel: BatchingPanel, live: LiveView) -> None:
    """Attach Analyze and Execute; both refresh the whole live view."""
    service = live.service
    outputs = [*live.action_outputs, panel.preview]

    def analyze(mode: str, analysis: Any, selected: str | None) -> Updates:
        outcome = Outcome()
        shown = analysis
        with user_errors(outcome):
            result = service.analyze_queue_for_smart_batching(mix_controls=MODES.get(mode, False))
            if result is None:
                outcome.text = "No batchable jobs found."
                shown = None
            else:
                shown = _shown(result)
                outcome.text = (
                    f"Analysis {shown['analysis_id']} ready at sequence {shown['sequence']}."
                )
        updates = live.after_action(outcome, shown, selected)
        updates[panel.preview] = views.preview_html(shown)
        return updates

    def execute(analysis: Any, selected: str | None) -> Updates:
        outcome = Outcome("Analyze first: there is no analysis on this page.")
        shown = analysis
        if analysis:
            with user_errors(outcome):
                result = service.execute_smart_batches(analysis["analysis_id"])
                outcome.text = f"{result['message']}. {NOT_RUN_YET}"
                shown = None
        updates = live.after_action(outcome, shown, selected)
        updates[panel.preview] = views.preview_html(shown)
        return updates

    common = [live.analysis, live.selected_job]
    panel.analyze.click(analyze, [panel.mode, *common], outputs, queue=False)
    panel.execute.click(execute, common, outputs, queue=False)
