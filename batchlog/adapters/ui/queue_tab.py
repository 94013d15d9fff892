"""The Queue tab: the queue table, pause/resume, batch size, add-job form and cancel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from batchlog.adapters.ui.forms import job_spec
from batchlog.adapters.ui.live import LiveView, Outcome, Updates, user_errors
from batchlog.domain.controls import CONTROLS
from batchlog.domain.jobs import JOB_TYPES

T = TypeVar("T")


@dataclass
class QueueTab:
    """The Queue tab's components."""

    queue_table: gr.HTML
    paused: gr.Checkbox
    batch_size: gr.Number
    set_batch_size: gr.Button
    selected_job: gr.Dropdown
    cancel: gr.Button
    prompt_ids: gr.Textbox
    job_type: gr.Dropdown
    weights: list[gr.Number]
    num_steps: gr.Number
    seed: gr.Number
    priority: gr.Number
    add: gr.Button
    prompt_text: gr.Textbox
    depth_input: gr.Textbox
    seg_input: gr.Textbox
    create_prompt: gr.Button


def build(between: Callable[[], T]) -> tuple[QueueTab, T]:
    """Lay out the Queue tab (inside a gr.Tab), with `between` built under the queue table."""
    with gr.Row():
        paused = gr.Checkbox(label="Queue paused", elem_id="bl-paused", scale=1)
        batch_size = gr.Number(
            label="Batch size (runs per batch)",
            precision=0,
            elem_id="bl-batch-size",
            scale=1,
        )
        set_batch_size = gr.Button("Set batch size", elem_id="bl-set-batch-size", scale=1)
    queue_table = gr.HTML(elem_id="bl-queue")
    with gr.Row():
        selected_job = gr.Dropdown(
            label="Selected job", choices=[], elem_id="bl-selected-job", scale=3
        )
        cancel = gr.Button("Cancel selected job", variant="stop", elem_id="bl-cancel", scale=1)
    middle = between()
    with gr.Accordion("Add a job", open=True):
        with gr.Row():
            prompt_ids = gr.Textbox(
                label="Prompt ids (comma or space separated)", elem_id="bl-prompt-ids", scale=3
            )
            job_type = gr.Dropdown(
                label="Job type", choices=list(JOB_TYPES), value="inference", elem_id="bl-job-type"
            )
        with gr.Row():
            weights = [
                gr.Number(
                    label=f"{control} weight",
                    value=0.0,
                    step=0.05,
                    elem_id=f"bl-weight-{control}",
                )
                for control in CONTROLS
            ]
        with gr.Row():
            num_steps = gr.Number(label="num_steps", value=35, precision=0, elem_id="bl-steps")
            seed = gr.Number(label="seed", value=1, precision=0, elem_id="bl-seed")
            priority = gr.Number(label="priority", value=50, precision=0, elem_id="bl-priority")
            add = gr.Button("Add job", variant="primary", elem_id="bl-add-job")
    with gr.Accordion("Register a prompt", open=False), gr.Row():
        prompt_text = gr.Textbox(label="Prompt text", elem_id="bl-prompt-text", scale=3)
        depth_input = gr.Textbox(label="depth input file", elem_id="bl-depth-input")
        seg_input = gr.Textbox(label="seg input file", elem_id="bl-seg-input")
        create_prompt = gr.Button("Register prompt", elem_id="bl-create-prompt")
    tab = QueueTab(
        queue_table=queue_table,
        paused=paused,
        batch_size=batch_size,
        set_batch_size=set_batch_size,
        selected_job=selected_job,
        cancel=cancel,
        prompt_ids=prompt_ids,
        job_type=job_type,
        weights=weights,
        num_steps=num_steps,
        seed=seed,
        priority=priority,
        add=add,
        prompt_text=prompt_text,
        depth_input=depth_input,
        seg_input=seg_input,
        create_prompt=create_prompt,
    )
    return tab, middle


def wire(tab: QueueTab, live: LiveView) -> None:
    """Attach the tab's actions; each one refreshes the whole live view."""
    service = live.service
    common = [live.analysis, live.selected_job]

    def toggle_pause(paused: bool, analysis: Any, selected: str | None) -> Updates:
        outcome = Outcome("Queue paused." if paused else "Queue resumed.")
        with user_errors(outcome):
            service.set_queue_paused(bool(paused), reason="from the web UI")
        return live.after_action(outcome, analysis, selected)

    def set_size(size: float | None, analysis: Any, selected: str | None) -> Updates:
        outcome = Outcome()
        with user_errors(outcome):
            value = int(size) if size is not None else 0
            service.set_batch_size(value)
            outcome.text = f"Batch size set to {value}."
        return live.after_action(outcome, analysis, selected, with_batch_size=True)

    def cancel(analysis: Any, selected: str | None) -> Updates:
        outcome = Outcome("Select a queued job to cancel first.")
        if selected:
            with user_errors(outcome):
                service.cancel_job(selected, reason="cancelled from the web UI")
                outcome.text = f"Cancelled {selected} (it stays in history)."
        return live.after_action(outcome, analysis, None)

    def add(*values: Any) -> Updates:
        prompt_ids, job_type, *weights, num_steps, seed, priority, analysis, selected = values
        outcome = Outcome()
        with user_errors(outcome):
            spec = job_spec(prompt_ids, job_type, weights, num_steps, seed, priority)
            job_id = service.add_job(**spec)
            outcome.text = f"Added job {job_id}."
        return live.after_action(outcome, analysis, selected)

    def create_prompt(
        text: str, depth: str, seg: str, analysis: Any, selected: str | None
    ) -> Updates:
        outcome = Outcome()
        inputs = {k: v.strip() for k, v in {"depth": depth, "seg": seg}.items() if v and v.strip()}
        with user_errors(outcome):
            prompt_id = service.create_prompt(text, control_inputs=inputs)
            outcome.text = f"Registered prompt {prompt_id}."
        return live.after_action(outcome, analysis, selected)

    outputs = live.action_outputs
    tab.paused.input(toggle_pause, [tab.paused, *common], outputs, queue=False)
    tab.set_batch_size.click(set_size, [tab.batch_size, *common], outputs, queue=False)
    tab.batch_size.submit(set_size, [tab.batch_size, *common], outputs, queue=False)
    tab.cancel.click(cancel, common, outputs, queue=False)
    form = [tab.prompt_ids, tab.job_type, *tab.weights, tab.num_steps, tab.seed, tab.priority]
    tab.add.click(add, [*form, *common], outputs, queue=False)
    tab.create_prompt.click(
        create_prompt,
        [tab.prompt_text, tab.depth_input, tab.seg_input, *common],
        outputs,
        queue=False,
    )
