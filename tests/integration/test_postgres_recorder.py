"""The binary-format PostgreSQL recorder keeps eventsourcing's contract: notification ids in
insert order, IntegrityError on a version conflict with nothing of the save kept, NOTIFY on the
table's channel, small and large saves alike, through the insert function or (in a database
migrated before it existed) eventsourcing's statements; SQLite keeps its own recorder."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from batchlog import QueueService
from batchlog.adapters.postgres_recorder import (
    PIPELINE_LIMIT_BYTES,
    BinarySnapshotRecorder,
    LargeEventSafeRecorder,
)
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import EventStore, open_store, parse_database_url

SIZES = {"small": 10, "large": PIPELINE_LIMIT_BYTES}


@pytest.fixture(params=["function", "statements"])
def store(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[EventStore]:
    if request.param == "statements":
        with psycopg.connect(parse_database_url(postgres_url).conninfo()) as connection:
            connection.execute("DROP FUNCTION batchlog_events_insert")
    opened = open_store(postgres_url)
    assert recorder_of(opened).has_insert_function() == (request.param == "function")
    yield opened
    opened.close()


def recorder_of(store: EventStore) -> LargeEventSafeRecorder:
    recorder = store.recorder
    assert isinstance(recorder, LargeEventSafeRecorder)
    return recorder


def events(originator_id: uuid.UUID, versions: list[int], size: int) -> list[StoredEvent]:
    return [
        StoredEvent(originator_id, version, f"topic-{version}", bytes([version % 256]) * size)
        for version in versions
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_notification_ids_come_back_in_insert_order(store: EventStore, size: int) -> None:
    recorder = recorder_of(store)
    first, second = uuid.uuid4(), uuid.uuid4()
    saved = [*events(first, [3, 1, 2], size), *events(second, [1, 70_000, 2**40], size)]
    ids = recorder.insert_events(saved)
    assert ids is not None and len(ids) == len(saved)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = {n.id: n for n in recorder.select_notifications(start=None, limit=100)}
    for notification_id, event in zip(ids, saved, strict=True):
        read = stored[notification_id]
        assert (read.originator_id, read.originator_version, read.topic, read.state) == (
            event.originator_id,
            event.originator_version,
            event.topic,
            event.state,
        )


@pytest.mark.postgres
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_version_conflict_raises_integrity_error_and_keeps_nothing(
    store: EventStore, size: int
) -> None:
    recorder = recorder_of(store)
    originator = uuid.uuid4()
    recorder.insert_events(events(originator, [1], 10))
    with pytest.raises(IntegrityError):
        recorder.insert_events(events(originator, [2, 3, 1], size))
    assert [e.originator_version for e in recorder.select_events(originator)] == [1]
    assert recorder.insert_events(events(originator, [2], size)) is not None


@pytest.mark.postgres
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_save_notifies_the_tables_channel(
    store: EventStore, postgres_url: str, size: int
) -> None:
    recorder = recorder_of(store)
    with psycopg.connect(parse_database_url(postgres_url).conninfo(), autocommit=True) as listener:
        listener.execute(f'LISTEN "{recorder.channel_name}"')
        recorder.insert_events(events(uuid.uuid4(), [1, 2], size))
        received = list(listener.notifies(timeout=30, stop_after=1))
    assert [n.channel for n in received] == [recorder.channel_name]


@pytest.mark.postgres
def test_a_subscriber_receives_a_large_bulk_add(postgres_url: str, settings: Settings) -> None:
    with QueueService(postgres_url, settings=settings) as service:
        prompt = service.create_prompt("a prompt")
        recorder = recorder_of(service.store)
        received: list[Notification] = []
        with recorder.subscribe(gt=recorder.max_notification_id()) as subscription:
            reader = threading.Thread(target=lambda: received.extend(subscription), daemon=True)
            reader.start()
            added = service.add_jobs(
                [{"prompt_ids": [prompt], "config": {"weights": {"vis": 0.5}}}] * 300
            )
            head = recorder.max_notification_id()
            deadline = time.monotonic() + 60
            while not (received and received[-1].id == head) and time.monotonic() < deadline:
                time.sleep(0.05)
            subscription.stop()
        reader.join(timeout=10)
    states = b"".join(n.state for n in received)
    assert len(states) > PIPELINE_LIMIT_BYTES
    assert all(job_id.encode() in states for job_id in added)


@pytest.mark.postgres
def test_snapshots_are_inserted_in_binary_and_read_back(store: EventStore) -> None:
    assert store.snapshots is not None
    recorder = store.snapshots.recorder
    assert isinstance(recorder, BinarySnapshotRecorder)
    originator = uuid.uuid4()
    saved = events(originator, [200, 400], PIPELINE_LIMIT_BYTES * 2)
    recorder.insert_events(saved)
    assert recorder.select_events(originator) == saved
    with pytest.raises(IntegrityError):
        recorder.insert_events(events(originator, [400], 10))


def test_sqlite_keeps_eventsourcings_recorder(sqlite_url: str, settings: Settings) -> None:
    with QueueService(sqlite_url, settings=settings) as service:
        assert not isinstance(service.store.recorder, LargeEventSafeRecorder)
        assert service.store.snapshots is not None
        assert not isinstance(service.store.snapshots.recorder, BinarySnapshotRecorder)
        prompt = service.create_prompt("a prompt")
        added = service.add_jobs([{"prompt_ids": [prompt], "config": {"weights": {"vis": 1}}}] * 3)
        assert [item.job_id for item in service.load_queue().queued_in_order()] == added


def server_has_lz4(conninfo: str) -> bool:
    """Whether this PostgreSQL server can compress with lz4 (14+, built with it)."""
    with psycopg.connect(conninfo) as connection:
        try:
            connection.execute("CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)")
        except psycopg.Error:
            return False
    return True


@pytest.mark.postgres
def test_migrated_event_states_use_lz4_where_the_server_has_it(
    store: EventStore, postgres_url: str
) -> None:
    conninfo = parse_database_url(postgres_url).conninfo()
    recorder = recorder_of(store)
    recorder.insert_events(events(uuid.uuid4(), [1], 100_000))
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT pg_column_compression(state) FROM batchlog_events"
        ).fetchone()
    assert row is not None
    assert row[0] == ("lz4" if server_has_lz4(conninfo) else "pglz")
