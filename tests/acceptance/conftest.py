"""Fixtures of the acceptance tests: one chromium per module, a fresh store, a served page,
and runner processes that are killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from tests.acceptance.browser import chromium, local_page, serve_ui, text_of, wait_until
from tests.acceptance.runner_processes import RunnerProcesses


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[RunnerProcesses]:
    """Starts `batchlog runner` processes; whatever still runs is killed at teardown."""
    started = RunnerProcesses(tmp_path)
    yield started
    started.stop_all()


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
