"""Assemble the Gradio page from its tabs and launch it (local only unless credentials are set).

The page talks to one QueueService only; it never reads the database itself. Fonts are the
system's and analytics are off (the `ui` command also sets GRADIO_ANALYTICS_ENABLED=False before
gradio is imported), so the page makes no request outside the server it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.ui import (
    batching_panel,
    history_tab,
    queue_tab,
    results_tab,
    runners_tab,
)
from batchlog.adapters.ui.hosted_runner import HostedRunner
from batchlog.adapters.ui.live import LiveView

CSS = """
.bl-table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
.bl-table th, .bl-table td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
.bl-table th { background: #f1f3f6; }
.bl-preview { font-family: ui-monospace, monospace; white-space: pre-wrap; }
.bl-batch { padding-left: 1em; }
.bl-empty { color: #777; }
.bl-error { color: #b00020; }
"""
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]


@dataclass
class UiApp:
    """The built page and the live view that refreshes it."""

    blocks: gr.Blocks
    live: LiveView


def theme() -> gr.themes.Base:
    """A theme with system fonts only (the default one fetches web fonts)."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def build_app(
    service: QueueService,
    *,
    refresh_seconds: float = 2.0,
    hosted_runner: HostedRunner | None = None,
) -> UiApp:
    """Build the page for one queue service (one service per process, shared by sessions)."""
    with gr.Blocks(title="batchlog", analytics_enabled=False) as blocks:
        analysis = gr.State(None)
        gr.Markdown(f"## batchlog · queue `{service.queue_name}`")
        status_line = gr.Markdown(elem_id="bl-status-line")
        message = gr.Markdown(elem_id="bl-message")
        with gr.Tabs():
            with gr.Tab("Queue", elem_id="bl-tab-queue"):
                queue, panel = queue_tab.build(between=batching_panel.build)
            with gr.Tab("Runners", elem_id="bl-tab-runners"):
                runners = runners_tab.build(hosted_runner)
            with gr.Tab("History", elem_id="bl-tab-history"):
                history = history_tab.build()
            with gr.Tab("Results", elem_id="bl-tab-results"):
                results = results_tab.build()
        live = LiveView(
            service=service,
            message=message,
            status_line=status_line,
            analysis=analysis,
            selected_job=queue.selected_job,
            queue_table=queue.queue_table,
            paused=queue.paused,
            batch_size=queue.batch_size,
            analyze_button=panel.analyze,
            execute_button=panel.execute,
            analysis_note=panel.note,
            runners_table=runners.runners_table,
            recent_table=runners.recent_table,
            panels=runners_tab.live_panels(runners, service, hosted_runner),
        )
        queue_tab.wire(queue, live)
        batching_panel.wire(panel, live)
        history_tab.wire(history, service)
        results_tab.wire(results, service)
        common = [analysis, queue.selected_job]
        timer = gr.Timer(refresh_seconds)
        timer.tick(live.refresh, analysis, live.outputs, show_progress="hidden", queue=False)
        blocks.load(live.on_load, common, live.action_outputs)
    return UiApp(blocks=blocks, live=live)


def launch(
    ui: UiApp,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    allowed_paths: Sequence[str] = (),
    block: bool = True,
) -> Any:
    """Serve the page; with block=False return at once (tests close it with ui.blocks.close())."""
    return ui.blocks.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=False,
        prevent_thread_lock=not block,
        quiet=True,
        ssr_mode=False,
        show_error=False,
        allowed_paths=list(allowed_paths),
        footer_links=[],
        theme=theme(),
        css=CSS,
        pwa=False,
        mcp_server=False,
    )
