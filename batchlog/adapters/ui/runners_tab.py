"""The Runners tab: who holds which item, until when, and how far its current batch has got."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from batchlog.adapters.ui import views
from batchlog.adapters.ui.hosted_runner import HostedRunner


@dataclass
class RunnersTab:
    """The Runners tab's components."""

    runners_table: gr.HTML
    recent_table: gr.HTML
    hosted: gr.Markdown


def build(hosted_runner: HostedRunner | None) -> RunnersTab:
    """Lay out the Runners tab (its tables are refreshed by the live view)."""
    gr.Markdown("Active runners and the item each one holds (refreshed every few seconds).")
    runners_table = gr.HTML(views.runners_table({"running": []}), elem_id="bl-runners")
    hosted = gr.Markdown(
        hosted_runner.describe() if hosted_runner else "No runner is hosted in this process.",
        elem_id="bl-hosted-runner",
    )
    gr.Markdown("#### Recently finished")
    recent_table = gr.HTML(views.recent_table({}), elem_id="bl-recent")
    return RunnersTab(runners_table=runners_table, recent_table=recent_table, hosted=hosted)
