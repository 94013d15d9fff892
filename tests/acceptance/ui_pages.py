"""Page actions shared by the browser tests: add, pause, analyze, read the queue."""

from __future__ import annotations

from typing import Any

import pytest

from batchlog.adapters.queue_service import QueueService
from tests.acceptance.browser import (
    field,
    text_of,
    wait_until,
)

# Never skipped: without /usr/bin/chromium (Debian's package) the browser tests fail loudly.
browser_marks = [pytest.mark.browser]
STALE = "Analysis is stale - queue has changed. Please re-analyze."


def add_in_page(
    page: Any, store: QueueService, prompt_ids: list[str], weights: dict[str, float]
) -> str:
    known = set(queue_ids(store))
    field(page, "bl-prompt-ids").fill(" ".join(prompt_ids))
    for control in ("vis", "edge", "depth", "seg"):
        field(page, f"bl-weight-{control}").fill(str(weights.get(control, 0)))
    page.click("#bl-add-job")
    wait_until(lambda: len(set(queue_ids(store)) - known) == 1, what="one job added")
    (job_id,) = set(queue_ids(store)) - known
    wait_until(lambda: f"Added job {job_id}" in text_of(page, "bl-message"), what="message")
    wait_until(lambda: job_id in text_of(page, "bl-queue"), what=f"{job_id} in the table")
    return job_id


def set_paused_in_page(page: Any, paused: bool) -> None:
    """Click the pause checkbox towards `paused` until the page shows the stored state.

    The live refresh can redraw the checkbox from the stored state while a click is in flight
    (the click's command still goes through); clicking again only ever asks for `paused`.
    """
    box = page.locator("#bl-paused input")
    word = "PAUSED" if paused else "RUNNING"

    def settled() -> bool:
        if word in text_of(page, "bl-status-line"):
            return True
        if box.is_checked() != paused:
            box.click()
        return False

    wait_until(settled, what=word)


def analyze_in_page(page: Any, store: QueueService, mode: str) -> str:
    page.locator("#bl-mode label", has_text=mode).click()
    page.click("#bl-analyze")

    def shown() -> bool:
        analysis = store.get_analysis()
        return (
            analysis is not None
            and analysis["mode"] == mode.lower()
            and f"Analysis {analysis['analysis_id']} ({analysis['mode']} mode) is fresh"
            in text_of(page, "bl-analysis-note")
            and f"{mode} Mode" in text_of(page, "bl-preview")
        )

    wait_until(shown, what=f"{mode} analysis in the page")
    return text_of(page, "bl-preview")


def queue_ids(service: QueueService) -> list[str]:
    return [job["id"] for job in service.get_queue_status()["queued_jobs"]]
