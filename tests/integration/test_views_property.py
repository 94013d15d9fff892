"""Property: for generated command sequences on a real store, the queue view equals a fold of
the stored events, queue_at(s) equals the live view as it was when s was written, and every run
is in exactly one place (queued, in a batch, running, done, failed) — none lost or duplicated.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from batchlog import QueueService
from batchlog.adapters.migrations import migrate
from batchlog.adapters.settings import Settings
from batchlog.adapters.views.decode import NotificationDecoder
from batchlog.projections.added_jobs import added_jobs
from batchlog.projections.base import EventRecord
from batchlog.projections.queue_status import status_from_projection
from batchlog.projections.queue_view import QueueProjection
from tests.conftest import create_database, drop_database
from tests.workload import World, commands


def _check(url: str, script: list[tuple[str, int]]) -> None:
    settings_ = Settings.from_environment({"BATCHLOG_ACTOR": "tester", "BATCHLOG_DATA_DIR": "/tmp"})
    with QueueService(url, settings=settings_) as service:
        world = World(save=service.store.save)
        seen = {}
        for step in script:
            before = world.queue.version
            world.run([step])
            if world.queue.version != before:
                seen[world.queue.version] = service.get_queue_status()
        live = service.get_queue_status()

        decoder = NotificationDecoder(service.store.mapper)
        notifications = service.store.recorder.select_notifications(start=1, limit=100_000)
        fold = QueueProjection()
        for notification in notifications:
            record = decoder.decode(notification)
            assert isinstance(record, EventRecord)
            fold.apply(record)
        assert live == status_from_projection(fold, "default")

        for sequence, status in seen.items():
            assert service.queue_at(sequence) == status, f"queue_at({sequence})"

        rows = service.views().views.query(
            "SELECT status, runs FROM queue_view_items WHERE status NOT IN ('retired', 'split')"
        )
        places = Counter(run["run_id"] for row in rows for run in json.loads(row["runs"]))
        added = {
            run["run_id"]
            for row in service.history(limit=100_000)
            for _, job in added_jobs(row["event_type"], row["payload"])
            for run in job["runs"]
        }
        assert set(places) == added
        assert all(count == 1 for count in places.values()), places.most_common(3)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=commands)
def test_sqlite_queue_view_is_the_fold_of_its_log(script):
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'batchlog.sqlite3'}"
        migrate(url)
        _check(url, script)


@pytest.mark.postgres
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=commands)
def test_postgres_queue_view_is_the_fold_of_its_log(postgres_server_url, script):
    url = create_database(postgres_server_url)
    try:
        _check(url, script)
    finally:
        drop_database(postgres_server_url, url)
