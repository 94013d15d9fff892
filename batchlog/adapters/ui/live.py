"""The live part of the page: one read of the queue status refreshes every panel that shows it.

Each action handler does its one QueueService call, then returns `LiveView.refresh(...)` merged
with its own message, so the page is refreshed on every action as well as on the timer.
Queue actions bypass Gradio's event queue (`queue=False`): each is one short QueueService call,
the service serializes its own commands and the store refuses conflicting appends, and the
queue's round trip doubled the click-to-result time (see benchmarks/bench_ui.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.ui import views
from batchlog.domain.errors import BatchlogError

Updates = dict[Any, Any]


@dataclass
class Outcome:
    """What a handler says back: one message line (the error, when the action was refused)."""

    text: str = ""

    def fail(self, error: BatchlogError) -> None:
        """Record a user error as the message (the page never shows a traceback)."""
        self.text = f"Error: {error}"


@contextlib.contextmanager
def user_errors(outcome: Outcome) -> Iterator[None]:
    """Turn a BatchlogError inside the block into the outcome's message."""
    try:
        yield
    except BatchlogError as error:
        outcome.fail(error)


@dataclass
class LiveView:
    """The components that show the queue's current state, and how to refresh them all."""

    service: QueueService
    message: gr.Markdown
    status_line: gr.Markdown
    analysis: gr.State
    selected_job: gr.Dropdown
    queue_table: gr.HTML
    paused: gr.Checkbox
    batch_size: gr.Number
    analyze_button: gr.Button
    execute_button: gr.Button
    analysis_note: gr.Markdown
    runners_table: gr.HTML
    recent_table: gr.HTML
    panels: list[tuple[Any, Callable[[dict[str, Any]], str]]] = field(default_factory=list)

    @property
    def outputs(self) -> list[Any]:
        """Every component a refresh may update."""
        shown = [
            self.status_line,
            self.selected_job,
            self.queue_table,
            self.paused,
            self.analyze_button,
            self.execute_button,
            self.analysis_note,
            self.runners_table,
            self.recent_table,
        ]
        return shown + [component for component, _ in self.panels]

    @property
    def action_outputs(self) -> list[Any]:
        """What an action updates: the refresh, the message, the analysis and the batch size."""
        return [*self.outputs, self.message, self.analysis, self.batch_size]

    def refresh(self, analysis: dict[str, Any] | None) -> Updates:
        """Read the queue once and update every live component from it (the timer's handler)."""
        try:
            return self._render(self.service.get_queue_status(), analysis)
        except BatchlogError as error:
            return self._unreadable(error)

    def _unreadable(self, error: BatchlogError) -> Updates:
        """Keep what the page shows and say on the status line why it cannot be refreshed."""
        updates: Updates = {component: gr.update() for component in self.outputs}
        updates[self.status_line] = f"**The queue cannot be read right now.** Error: {error}"
        return updates

    def _render(self, status: dict[str, Any], analysis: dict[str, Any] | None) -> Updates:
        shown = status["queued_jobs"][: views.ROWS_SHOWN]
        choices = [(self._job_label(job), job["id"]) for job in shown]
        paused = bool(status["paused"])
        # Only the choices: a tick computed before the user picked a job must not undo the pick.
        updates: Updates = {
            self.status_line: views.status_line(status),
            self.selected_job: gr.update(choices=choices),
            self.queue_table: views.queue_table(status),
            self.paused: gr.update(value=paused),
            self.analyze_button: gr.update(interactive=paused),
            self.execute_button: gr.update(interactive=paused and analysis is not None),
            self.analysis_note: views.analysis_state_note(analysis, int(status["sequence"])),
            self.runners_table: views.runners_table(status),
            self.recent_table: views.recent_table(status),
        }
        for component, render in self.panels:
            updates[component] = render(status)
        return updates

    def after_action(
        self,
        outcome: Outcome,
        analysis: dict[str, Any] | None,
        selected: str | None,
        *,
        with_batch_size: bool = False,
    ) -> Updates:
        """The refresh plus the action's message and the (possibly new) analysis."""
        try:
            status = self.service.get_queue_status()
        except BatchlogError as error:
            updates = self._unreadable(error)
            updates.update({self.message: outcome.text, self.analysis: analysis})
            updates[self.batch_size] = gr.update()
            return updates
        updates = self._render(status, analysis)
        queued = [job["id"] for job in status["queued_jobs"]]
        updates[self.selected_job] = gr.update(
            choices=updates[self.selected_job]["choices"],
            value=selected if selected in queued else None,
        )
        updates[self.message] = outcome.text
        updates[self.analysis] = analysis
        if with_batch_size:
            updates[self.batch_size] = status["batch_size"]
        return updates

    def on_load(self, analysis: dict[str, Any] | None, selected: str | None) -> Updates:
        """The first paint: stored pause state and batch size, not the widgets' defaults."""
        return self.after_action(Outcome(), analysis, selected, with_batch_size=True)

    @staticmethod
    def _job_label(job: dict[str, Any]) -> str:
        controls = ", ".join(job.get("controls") or []) or job["type"]
        return f"{job['position']}. {job['id']} ({job['runs']} runs, {controls})"
