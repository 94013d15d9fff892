"""The web UI in a real headless chromium, served from this process on 127.0.0.1.

Each test starts the Gradio app on a free loopback port against a fresh SQLite store, drives
the page like a user, and checks the outcome in the store through a QueueService. Screenshots
land in docs/screenshots/ for the documentation.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from tests.acceptance.browser import (
    CHROMIUM,
    chromium,
    field,
    local_page,
    screenshot,
    serve_ui,
    text_of,
    wait_until,
    write_scene,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian chromium"),
]
STALE = "Analysis is stale - queue has changed. Please re-analyze."
has_history = hasattr(QueueService, "history") and hasattr(QueueService, "lineage")
has_time_travel = hasattr(QueueService, "queue_at")


def _has_runner() -> bool:
    try:
        return importlib.util.find_spec("batchlog.adapters.bootstrap") is not None and hasattr(
            importlib.import_module("batchlog.adapters.bootstrap"), "build_runner"
        )
    except ImportError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def backend() -> str:
    """The store behind the page: SQLite unless a test asks for both."""
    return "sqlite"


@pytest.fixture
def store(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[QueueService]:
    settings = Settings.from_environment(
        {"BATCHLOG_DATA_DIR": str(tmp_path / "data"), "BATCHLOG_ACTOR": "browser-test"}
    )
    url = str(request.getfixturevalue(f"{backend}_url"))
    service = QueueService(url, settings=settings)
    yield service
    service.close()


@pytest.fixture
def other_client(store: QueueService) -> Iterator[QueueService]:
    """A second client of the same store, as another user or process would be."""
    service = QueueService(
        store.settings.database_url, settings=store.settings, actor="someone-else"
    )
    yield service
    service.close()


@pytest.fixture
def prompts(store: QueueService) -> list[str]:
    controls = {"depth": "/inputs/depth.mp4", "seg": "/inputs/seg.mp4"}
    texts = ["a red ball rolls", "a blue cube spins", "a green ring drifts", "two shapes meet"]
    return [store.create_prompt(text, "/inputs/scene.mp4", controls) for text in texts]


@pytest.fixture
def outside_requests() -> list[str]:
    return []


@pytest.fixture
def page(browser: Any, store: QueueService, outside_requests: list[str]) -> Iterator[Any]:
    with serve_ui(store, refresh_seconds=0.5) as url, local_page(browser, outside_requests) as pg:
        pg.goto(url)
        pg.wait_for_selector("#bl-queue-table, #bl-queue .bl-empty")
        wait_until(lambda: "sequence" in text_of(pg, "bl-status-line"), what="status line")
        yield pg
    assert outside_requests == [], f"the page asked outside hosts: {outside_requests}"


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
    box = page.locator("#bl-paused input")
    box.check() if paused else box.uncheck()
    word = "PAUSED" if paused else "RUNNING"
    wait_until(lambda: word in text_of(page, "bl-status-line"), what=word)


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


def test_jobs_added_in_the_page_are_analyzed_in_both_modes_and_reorganized(
    page: Any, store: QueueService, prompts: list[str]
) -> None:
    added = [
        add_in_page(page, store, prompts[:2], {"vis": 0.5, "edge": 0.3, "depth": 0.2}),
        add_in_page(page, store, prompts[2:3], {"vis": 0.3, "edge": 0.5, "depth": 0.2}),
        add_in_page(page, store, prompts[3:4], {"vis": 0.6, "depth": 0.4}),
        add_in_page(page, store, prompts[:1], {"edge": 0.7, "seg": 0.3}),
    ]
    assert queue_ids(store) == added
    screenshot(page, "queue")
    set_paused_in_page(page, True)
    assert store.is_queue_paused()

    mixed = analyze_in_page(page, store, "Mixed")
    mixed_batches = store.get_analysis()["batches"]
    assert len(page.locator("#bl-preview .bl-batch").all()) == len(mixed_batches)
    screenshot(page, "preview-mixed")

    strict = analyze_in_page(page, store, "Strict")
    analysis = store.get_analysis()
    lines = [line.inner_text() for line in page.locator("#bl-preview .bl-batch").all()]
    assert len(lines) == len(analysis["batches"]) == 3
    assert [line.strip().split(":")[0] for line in lines] == ["Batch 1", "Batch 2", "Batch 3"]
    assert "5 runs from 4 jobs → 3 batches" in strict and mixed != strict
    assert analysis["analysis_id"] in text_of(page, "bl-analysis-note")
    screenshot(page, "preview-strict")

    page.click("#bl-execute")
    wait_until(lambda: "reorganized" in text_of(page, "bl-message"), what="reorganized")
    message = text_of(page, "bl-message")
    assert "Queue reorganized successfully. 4 jobs → 3 batches" in message
    assert "completed" not in page.locator("body").inner_text().lower()
    status = store.get_queue_status()
    assert [job["type"] for job in status["queued_jobs"]] == ["batch_inference"] * 3
    wait_until(
        lambda: all(job["id"] in text_of(page, "bl-queue") for job in status["queued_jobs"]),
        what="batch jobs in the table",
    )
    assert not any(job_id in text_of(page, "bl-queue") for job_id in added)
    screenshot(page, "reorganized")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_job_added_by_another_client_makes_the_open_analysis_stale_and_execute_refuses(
    page: Any, store: QueueService, other_client: QueueService, prompts: list[str]
) -> None:
    for pid in prompts[:3]:
        store.add_job([pid], config={"weights": {"vis": 0.5}})
    set_paused_in_page(page, True)
    analyze_in_page(page, store, "Strict")
    assert "fresh" in text_of(page, "bl-analysis-note")
    before = queue_ids(store)

    other_client.add_job([prompts[3]], config={"weights": {"vis": 0.5}})
    wait_until(lambda: "Stale" in text_of(page, "bl-analysis-note"), what="stale marking")
    page.click("#bl-execute")
    wait_until(lambda: STALE in text_of(page, "bl-message"), what="stale message")
    assert queue_ids(store) == [*before, queue_ids(other_client)[-1]]
    assert all(job["type"] == "inference" for job in store.get_queue_status()["queued_jobs"])
    screenshot(page, "stale")


def test_a_page_never_executes_the_plan_another_page_analyzed(
    browser: Any,
    page: Any,
    store: QueueService,
    prompts: list[str],
    outside_requests: list[str],
) -> None:
    for pid in prompts[:3]:
        store.add_job([pid], config={"weights": {"vis": 0.5}})
    set_paused_in_page(page, True)
    analyze_in_page(page, store, "Strict")
    mine = store.get_analysis()["analysis_id"]
    with local_page(browser, outside_requests) as second:
        second.goto(page.url)
        wait_until(lambda: "PAUSED" in text_of(second, "bl-status-line"), what="second page")
        analyze_in_page(second, store, "Mixed")
        theirs = store.get_analysis()["analysis_id"]
    assert theirs != mine
    wait_until(lambda: "Stale" in text_of(page, "bl-analysis-note"), what="first page stale")
    page.click("#bl-execute")
    wait_until(lambda: STALE in text_of(page, "bl-message"), what="refused")
    assert all(job["type"] == "inference" for job in store.get_queue_status()["queued_jobs"])
    assert store.get_analysis()["analysis_id"] == theirs


@pytest.mark.parametrize("paused", [True, False])
def test_the_pause_toggle_shows_the_stored_state_on_page_load(
    browser: Any, store: QueueService, outside_requests: list[str], paused: bool
) -> None:
    store.set_queue_paused(paused)
    with serve_ui(store) as url, local_page(browser, outside_requests) as page:
        page.goto(url)
        wait_until(lambda: "sequence" in text_of(page, "bl-status-line"), what="status line")
        wait_until(
            lambda: page.locator("#bl-paused input").is_checked() == paused,
            what="checkbox state",
        )
        assert page.locator("#bl-analyze").is_enabled() == paused
    assert outside_requests == []


def test_the_batch_size_control_sets_the_stored_batch_size(
    page: Any, store: QueueService, other_client: QueueService, prompts: list[str]
) -> None:
    store.add_job(prompts, config={"weights": {"vis": 0.5}})
    wait_until(lambda: field(page, "bl-batch-size").input_value() == "4", what="stored size")
    field(page, "bl-batch-size").fill("2")
    page.click("#bl-set-batch-size")
    wait_until(lambda: "Batch size set to 2" in text_of(page, "bl-message"), what="size set")
    assert other_client.get_queue_status()["batch_size"] == 2
    set_paused_in_page(page, True)
    preview = analyze_in_page(page, store, "Strict")
    assert "Batch size: 2 runs/batch" in preview
    assert "4 runs from 1 job → 2 batches" in preview


def test_a_bad_batch_size_is_refused_with_the_allowed_values(
    page: Any, store: QueueService
) -> None:
    field(page, "bl-batch-size").fill("500")
    page.click("#bl-set-batch-size")
    wait_until(lambda: "Error" in text_of(page, "bl-message"), what="error")
    assert "batch_size: is 500; allowed: 1 to 64" in text_of(page, "bl-message")
    assert store.get_queue_status()["batch_size"] == 4


def test_an_invalid_job_in_the_form_is_refused_with_the_field_and_nothing_is_added(
    page: Any, store: QueueService, prompts: list[str]
) -> None:
    before = store.get_queue_status()["sequence"]
    field(page, "bl-prompt-ids").fill(prompts[0])
    field(page, "bl-weight-vis").fill("1.5")
    page.click("#bl-add-job")
    wait_until(lambda: "Error" in text_of(page, "bl-message"), what="error")
    assert "config.weights: weight of 'vis' in weights is 1.5; allowed: 0 to 1" in text_of(
        page, "bl-message"
    )
    assert store.get_queue_status()["sequence"] == before


def test_cancel_removes_the_selected_job_from_the_queue(
    page: Any, store: QueueService, prompts: list[str]
) -> None:
    keep = store.add_job(prompts[:1], config={"weights": {"vis": 0.5}})
    drop = store.add_job(prompts[1:2], config={"weights": {"edge": 0.5}})
    wait_until(lambda: drop in text_of(page, "bl-queue"), what="job in table")
    page.locator("#bl-selected-job input").click()
    page.get_by_role("option", name=drop).click()
    page.click("#bl-cancel")
    wait_until(lambda: f"Cancelled {drop}" in text_of(page, "bl-message"), what="cancelled")
    assert queue_ids(store) == [keep]
    wait_until(lambda: drop not in text_of(page, "bl-queue"), what="job gone from table")


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
