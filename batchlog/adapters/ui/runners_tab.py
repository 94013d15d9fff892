"""The Runners tab: active runners, who holds which item, its lease, and its batch's progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.ui import views
from batchlog.adapters.ui.hosted_runner import HostedRunner


@dataclass
class RunnersTab:
    """The Runners tab's components."""

    sessions: gr.HTML
    runners_table: gr.HTML
    recent_table: gr.HTML
    hosted: gr.Markdown


def build(hosted_runner: HostedRunner | None) -> RunnersTab:
    """Lay out the Runners tab (its tables are refreshed by the live view)."""
    hosted = gr.Markdown(
        hosted_runner.describe() if hosted_runner else "No runner is hosted in this process.",
        elem_id="bl-hosted-runner",
    )
    gr.Markdown("#### Runners")
    sessions = gr.HTML(elem_id="bl-runner-sessions")
    gr.Markdown("#### Items held by runners")
    runners_table = gr.HTML(views.runners_table({"running": []}), elem_id="bl-runners")
    gr.Markdown("#### Recently ended items")
    recent_table = gr.HTML(views.recent_table({}), elem_id="bl-recent")
    return RunnersTab(
        sessions=sessions, runners_table=runners_table, recent_table=recent_table, hosted=hosted
    )


def sessions_html(service: QueueService) -> str:
    """Runner sessions of this queue (from the runner's session events), when the build has them."""
    try:
        from batchlog.adapters.runner_status import (  # type: ignore[import-not-found,unused-ignore]
            runner_overview,
        )
    except ImportError:
        return '<p class="bl-empty">Runner sessions are not recorded by this build.</p>'
    overview: dict[str, Any] = runner_overview(service.store, service.queue_name)
    return views.sessions_table(overview)


def live_panels(
    tab: RunnersTab, service: QueueService, hosted_runner: HostedRunner | None
) -> list[tuple[Any, Callable[[dict[str, Any]], str]]]:
    """The tab's parts that the live view refreshes besides the shared tables."""
    panels: list[tuple[Any, Callable[[dict[str, Any]], str]]] = [
        (tab.sessions, lambda _status: sessions_html(service))
    ]
    if hosted_runner is not None:
        panels.append((tab.hosted, lambda _status: hosted_runner.describe()))
    return panels
