"""The web UI in a real headless chromium: the queue tab and the Smart Batching panel.

Each test serves the Gradio app from this process on a free loopback port against a fresh
store, drives the page like a user, and checks the outcome in the store through a
QueueService. Screenshots land in docs/screenshots/ for the documentation.
"""

from __future__ import annotations

from typing import Any

import pytest

from batchlog.adapters.queue_service import QueueService
from tests.acceptance.browser import field, local_page, screenshot, serve_ui, text_of, wait_until
from tests.acceptance.ui_pages import (
    STALE,
    add_in_page,
    analyze_in_page,
    browser_marks,
    queue_ids,
    set_paused_in_page,
)

pytestmark = browser_marks


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
