"""The web UI in a real headless chromium: history, lineage, time travel, results and a runner.

Tests that need an interface another part of the system provides are skipped, with the reason,
until that interface is on the branch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from batchlog.adapters.queue_service import QueueService
from tests.acceptance.browser import (
    field,
    local_page,
    screenshot,
    serve_ui,
    text_of,
    wait_until,
    write_scene,
)
from tests.acceptance.ui_pages import (
    browser_marks,
    set_paused_in_page,
)

pytestmark = browser_marks
has_history = hasattr(QueueService, "history") and hasattr(QueueService, "lineage")
has_time_travel = hasattr(QueueService, "queue_at")


def _has_runner() -> bool:
    try:
        return hasattr(importlib.import_module("batchlog.adapters.bootstrap"), "build_runner")
    except ImportError:
        return False


@pytest.mark.skipif(not has_history, reason="needs QueueService.history/lineage (issue B)")
def test_history_shows_the_lineage_of_a_merged_job(
    page: Any, store: QueueService, prompts: list[str]
) -> None:
    first = store.add_job(prompts[:2], config={"weights": {"vis": 0.5}})
    second = store.add_job(prompts[2:3], config={"weights": {"vis": 0.5}})
    store.set_queue_paused(True)
    store.analyze_queue_for_smart_batching()
    batch = store.execute_smart_batches()["batch_job_ids"][0]
    page.click("#bl-tab-history-button")
    field(page, "bl-lineage-job").fill(first)
    page.click("#bl-lineage-show")
    wait_until(lambda: batch in text_of(page, "bl-lineage"), what="merged into batch")
    field(page, "bl-lineage-job").fill(batch)
    page.click("#bl-lineage-show")
    wait_until(lambda: second in text_of(page, "bl-lineage"), what="batch sources")
    assert first in text_of(page, "bl-lineage")
    field(page, "bl-history-job").fill(first)
    page.click("#bl-history-show")
    wait_until(lambda: "Reorganized" in text_of(page, "bl-history"), what="timeline")
    screenshot(page, "history-lineage")


@pytest.mark.skipif(not has_time_travel, reason="needs QueueService.queue_at (issue B)")
def test_time_travel_shows_the_queue_as_it_was(
    page: Any, store: QueueService, prompts: list[str]
) -> None:
    early = store.add_job(prompts[:1], config={"weights": {"vis": 0.5}})
    then = store.get_queue_status()["sequence"]
    store.cancel_job(early)
    later = store.add_job(prompts[1:2], config={"weights": {"vis": 0.5}})
    page.click("#bl-tab-history-button")
    field(page, "bl-sequence").fill(str(then))
    page.click("#bl-travel")
    wait_until(lambda: early in text_of(page, "bl-travel-queue"), what="earlier queue")
    assert later not in text_of(page, "bl-travel-queue")
    assert f"As of sequence {then}" in text_of(page, "bl-travel-status")
    screenshot(page, "time-travel")


@pytest.mark.skipif(
    not (_has_runner() and has_history and hasattr(QueueService, "get_plan_report")),
    reason="needs the runner (C), lineage (B) and plan reports (E)",
)
def test_results_show_each_runs_video_and_the_measured_speedup(
    page: Any, store: QueueService, tmp_path: Path
) -> None:
    from batchlog.adapters.bootstrap import build_runner

    scene = write_scene(tmp_path / "scene.mp4")
    small = {"num_steps": 2, "width": 16, "height": 16, "frames": 2}
    for text in ("a square drifts", "a square waits"):
        pid = store.create_prompt(text, str(scene))
        store.add_job([pid], config={"weights": {"vis": 0.5}, **small})
    store.set_queue_paused(True)
    analysis = store.analyze_queue_for_smart_batching()
    batch = store.execute_smart_batches()["batch_job_ids"][0]
    store.set_queue_paused(False)
    runner = build_runner(store.settings.database_url, artifacts_dir=tmp_path / "artifacts")
    try:
        runner.run(until_idle=True)
    finally:
        runner.close()

    page.click("#bl-tab-results-button")
    field(page, "bl-results-job").fill(batch)
    page.click("#bl-results-show")
    wait_until(lambda: "succeeded" in text_of(page, "bl-results-note"), what="run outcomes")
    wait_until(
        lambda: page.locator("#bl-results-gallery video, #bl-results-gallery img").count() >= 1,
        what="output videos",
    )
    page.click("#bl-plans-refresh")
    wait_until(
        lambda: analysis["analysis_id"] in page.locator("#bl-plans input").input_value(),
        what="the executed plan",
    )
    page.click("#bl-plan-show")
    wait_until(lambda: "measured speedup" in text_of(page, "bl-plan-report"), what="report")
    assert page.locator("#bl-speedup-chart rect").count() == 2
    screenshot(page, "results")


@pytest.mark.skipif(not _has_runner(), reason="needs bootstrap.build_runner (issue C)")
def test_resume_and_watch_a_hosted_runner_finish_a_batch(
    browser: Any,
    store: QueueService,
    tmp_path: Path,
    outside_requests: list[str],
) -> None:
    from batchlog.adapters.bootstrap import build_runner
    from batchlog.adapters.ui.hosted_runner import HostedRunner

    scene = write_scene(tmp_path / "scene.mp4")
    small = {"num_steps": 2, "width": 16, "height": 16, "frames": 2}
    for text in ("a square drifts", "a square waits"):
        pid = store.create_prompt(text, str(scene))
        store.add_job([pid], config={"weights": {"vis": 0.5}, **small})
    store.set_queue_paused(True)
    store.analyze_queue_for_smart_batching()
    batch = store.execute_smart_batches()["batch_job_ids"][0]
    runner = build_runner(
        store.settings.database_url, artifacts_dir=tmp_path / "artifacts", runner_id="ui-runner"
    )
    hosted = HostedRunner(runner)
    hosted.start()
    try:
        with (
            serve_ui(store, hosted_runner=hosted) as url,
            local_page(browser, outside_requests) as page,
        ):
            page.goto(url)
            wait_until(lambda: "PAUSED" in text_of(page, "bl-status-line"), what="paused")
            set_paused_in_page(page, False)
            page.click("#bl-tab-runners-button")
            wait_until(
                lambda: f"claimed item_id={batch}" in text_of(page, "bl-hosted-runner"),
                timeout=60,
                what="the runner's claim",
            )
            wait_until(
                lambda: (
                    f"finished item_id={batch} runs=2 succeeded=2 failed=0"
                    in text_of(page, "bl-hosted-runner")
                ),
                timeout=180,
                what="the batch finished",
            )
            wait_until(
                lambda: "0 queued · 0 running" in text_of(page, "bl-status-line"),
                what="empty queue",
            )
            if "recent" in store.get_queue_status():
                wait_until(lambda: batch in text_of(page, "bl-recent"), what="recently ended")
            screenshot(page, "runner-finished")
    finally:
        hosted.stop()
    assert outside_requests == []
