"""The event store: an eventsourcing Application configured from one database URL.

SQLite (the embedded default) creates its tables on first use; PostgreSQL tables are created
once by `batchlog migrate`, because concurrent CREATE TABLE at start-up races.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import Environment

# Every aggregate module is imported here, so that any stored event's explicit topic resolves
# in any process that opens the store (topics are registered when their classes are defined).
from batchlog.adapters.postgres_recorder import compress_states_with_lz4
from batchlog.domain import execution, prompt, runner_session  # noqa: F401
from batchlog.domain.errors import BatchlogError, ValidationError
from batchlog.domain.queue import Queue

APPLICATION_NAME = "batchlog"
SNAPSHOT_INTERVAL = 200


class StoreNotReadyError(BatchlogError):
    """The database has no batchlog tables yet. Run `batchlog migrate` first."""


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed database URL."""

    dialect: str
    sqlite_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "postgres"

    def conninfo(self) -> str:
        """A libpq connection string (PostgreSQL only)."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
        )


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse sqlite:///path or postgresql://user:pass@host:port/db into a DatabaseTarget."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative/file, sqlite:////absolute/file.
        path = unquote(url.split("://", 1)[1].removeprefix("/"))
        if not path:
            raise ValidationError(
                "database_url", "sqlite URL needs a file path: sqlite:///path/to/file"
            )
        return DatabaseTarget("sqlite", sqlite_path=Path(path))
    if parsed.scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        query = parse_qs(parsed.query)
        return DatabaseTarget(
            "postgres",
            host=parsed.hostname or query.get("host", ["127.0.0.1"])[0],
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
            dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        )
    raise ValidationError(
        "database_url",
        f"scheme {parsed.scheme!r} is not supported; use sqlite:///path or postgresql://...",
    )


def store_environment(target: DatabaseTarget, *, create_tables: bool) -> dict[str, str]:
    """The eventsourcing environment for a database target."""
    common = {
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        "CREATE_TABLE": "y" if create_tables else "n",
        "MAPPER_TOPIC": "batchlog.adapters.event_encoding:JobEventMapper",
    }
    if target.dialect == "sqlite":
        assert target.sqlite_path is not None
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return {
            **common,
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(target.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    return {
        **common,
        "PERSISTENCE_MODULE": "batchlog.adapters.postgres_recorder:BatchlogPostgresFactory",
        "POSTGRES_DBNAME": target.dbname,
        "POSTGRES_HOST": target.host,
        "POSTGRES_PORT": str(target.port),
        "POSTGRES_USER": target.user,
        "POSTGRES_PASSWORD": target.password,
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
    }


def snapshot_interval(base: int, items: int) -> int:
    """Events between snapshots of an aggregate holding this many items.

    A queue snapshot costs time in proportion to its queued items, so the interval grows with
    them: base x the largest power of two <= items / base (base while the queue is small). The
    snapshot cost per event then stays under about two items' worth, at any queue size, and a
    cold start replays fewer events than twice the queue's length.
    """
    factor = 1
    while base * factor * 2 <= items:
        factor *= 2
    return base * factor


class EventStore(Application[Any]):
    """batchlog's eventsourcing application: the queue and prompt streams, with snapshots."""

    name = APPLICATION_NAME
    snapshotting_intervals = {Queue: SNAPSHOT_INTERVAL}  # noqa: RUF012

    def _take_snapshots(self, processing_event: Any) -> None:
        """Snapshot a saved aggregate from memory when its save crossed an interval boundary.

        eventsourcing's default re-reads the stream up to the boundary and replays it, which
        made every 200th queue command (and any bulk add that crossed a boundary) pay a full
        reconstruction. The saved aggregate already is the state at its new version, and a
        snapshot at any version is valid.
        """
        if not self.snapshots:
            return
        for aggregate_id, aggregate in processing_event.aggregates.items():
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is None:
                continue
            interval = snapshot_interval(interval, len(getattr(aggregate, "items", ())))
            if any(
                event.originator_id == aggregate_id and event.originator_version % interval == 0
                for event in processing_event.events
            ):
                snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                if snapshot_class is not None:
                    self.snapshots.put([snapshot_class.take(aggregate)])

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """Configure only from the given env: settings are the one reader of os.environ."""
        values = dict(type(self).env)
        values["IS_SNAPSHOTTING_ENABLED"] = "y"
        values.update(env or {})
        return Environment(name, values)


def open_store(url: str, *, create_tables: bool | None = None) -> EventStore:
    """Open the event store behind a database URL."""
    target = parse_database_url(url)
    create = target.dialect == "sqlite" if create_tables is None else create_tables
    try:
        return EventStore(env=store_environment(target, create_tables=create))
    except psycopg.OperationalError as error:
        raise BatchlogError(
            f"Cannot connect to PostgreSQL at {target.host}:{target.port}: {error}"
        ) from None


def migrate_event_tables(url: str) -> None:
    """Create the event and snapshot tables (idempotent; run once, not at every start-up);
    on PostgreSQL their states are compressed with lz4 where the server can."""
    store = open_store(url, create_tables=True)
    store.close()
    target = parse_database_url(url)
    if target.dialect == "postgres":
        prefix = APPLICATION_NAME.lower()
        compress_states_with_lz4(target.conninfo(), [f"{prefix}_events", f"{prefix}_snapshots"])


@contextlib.contextmanager
def translate_store_errors() -> Iterator[None]:
    """Turn a missing-table error from the driver into StoreNotReadyError."""
    try:
        yield
    except IntegrityError:
        raise
    except Exception as error:
        text = str(error)
        if "does not exist" in text or "no such table" in text:
            raise StoreNotReadyError() from error
        raise


def load_or_create_queue(store: EventStore, queue_name: str) -> Queue:
    """The named queue at the head of its stream; created (once, race-safe) on first use."""
    queue_id = Queue.create_id(queue_name)
    with translate_store_errors():
        try:
            queue: Queue = store.repository.get(queue_id)
        except AggregateNotFoundError:
            queue = Queue(name=queue_name)
            try:
                store.save(queue)
            except IntegrityError:
                queue = store.repository.get(queue_id)
        return queue
