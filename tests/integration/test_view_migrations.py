"""Migrations: applied in order on an empty database they give the view tables; names follow
the numbering rule, and both dialects have the same migrations."""

from __future__ import annotations

import uuid
from importlib import resources

import psycopg
import pytest

from batchlog import QueueService
from batchlog.adapters.migrations import (
    MIGRATION_NAME,
    UnmigratedDatabaseError,
    migrate,
    migrations_for,
)
from batchlog.adapters.store import open_store, parse_database_url
from batchlog.adapters.views import ProjectionHost, ViewStore
from batchlog.adapters.views.replay import verify
from batchlog.projections import PROJECTIONS
from batchlog.projections.base import dumps
from batchlog.projections.history_view import EVENTS as HISTORY_EVENTS
from tests.conftest import with_dbname

VIEW_TABLES = {
    "projection_tracking",
    "projection_skips",
    *(table.name for factory in PROJECTIONS.values() for table in factory().tables),
}


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migration_files_are_numbered_without_gaps(dialect):
    folder = resources.files("batchlog.migrations").joinpath(dialect)
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    assert names and all(MIGRATION_NAME.match(name) for name in names)
    assert [int(name[:4]) for name in names] == list(range(1, len(names) + 1))
    assert [m.name for m in migrations_for(dialect)] == names


def test_both_dialects_have_the_same_migrations():
    assert [m.name for m in migrations_for("sqlite")] == [
        m.name for m in migrations_for("postgres")
    ]


def _tables(store: ViewStore) -> set[str]:
    if store.dialect == "sqlite":
        rows = store.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row["name"] for row in rows}
    rows = store.query(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {row["name"] for row in rows}


def _names(store: ViewStore, table: str) -> list[str]:
    if store.dialect == "sqlite":
        return [row["name"] for row in store.query(f"PRAGMA table_info({table})")]
    rows = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [row["column_name"] for row in rows]


def test_migrating_an_empty_database_gives_every_view_table_with_its_columns(database_url):
    with ViewStore(database_url) as store:  # the fixture already migrated this database
        assert _tables(store) >= VIEW_TABLES
        for factory in PROJECTIONS.values():
            for table in factory().tables:
                assert _names(store, table.name) == list(table.columns), table.name
        tracked = {
            row["name"]: row["position"] for row in store.query("SELECT * FROM projection_tracking")
        }
        assert tracked == {"queue": 0, "history": 0, "stats": 0}
    assert migrate(database_url) == []  # applied once only


def _as_before_0005(store: ViewStore, entries: list[dict]) -> None:
    """The history table as 0003 made it and the projection filled it, payloads and all."""
    (old,) = [m for m in migrations_for(store.dialect) if m.number == 3]
    ddl = old.sql.split("CREATE TABLE history_event_jobs")[0]  # history_events and its index
    with store.transaction() as cursor:
        cursor.execute("DROP TABLE history_events")
    for statement in filter(str.strip, ddl.split(";")):
        store.execute(statement)
    columns = ("position", "stream", "originator_id", "sequence", "recorded_at", "topic")
    columns += ("event_type", "actor", "job_ids", "summary", "payload")
    for entry in entries:
        row = {**entry, "recorded_at": entry["timestamp"]}
        row["job_ids"], row["payload"] = dumps(entry["job_ids"]), dumps(entry["payload"])
        store.execute(
            f"INSERT INTO history_events ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            tuple(row[column] for column in columns),
        )
    store.execute(
        "DELETE FROM batchlog_migrations WHERE name = ?", ("0005_history_reads_the_log.sql",)
    )


def test_0005_keeps_every_history_row_and_reads_the_rest_from_the_log(database_url, settings):
    service = QueueService(database_url, settings=settings)
    try:
        prompt = service.create_prompt("a cat")
        for _ in range(3):
            service.add_job([prompt], config={"weights": {"edge": 0.5}})
        service.set_queue_paused(True, reason="batching")
        service.analyze_queue_for_smart_batching()
        service.execute_smart_batches()
        before = service.history()
        assert {entry["event_type"] for entry in before} >= {"JobAdded", "Reorganized"}
        with ViewStore(database_url) as views:
            _as_before_0005(views, before)
            assert "payload" in _names(views, "history_events")
        if views.dialect == "sqlite":  # the embedded default migrates itself on first use
            ProjectionHost(database_url).close()
            assert migrate(database_url) == []
        else:  # PostgreSQL's schema is made by `batchlog migrate`, once: until then, refused
            with pytest.raises(UnmigratedDatabaseError, match=r"0005_.*run `batchlog migrate`"):
                ProjectionHost(database_url)
            assert migrate(database_url) == ["0005_history_reads_the_log.sql"]
        with ViewStore(database_url) as views:
            assert _names(views, "history_events") == list(HISTORY_EVENTS.columns)
        assert service.history() == before  # the same entries, each event's payload from the log
        store = open_store(database_url)
        try:
            with ViewStore(database_url) as views:
                assert verify(store, views, ["history"]).ok  # a rebuild equals the migrated view
        finally:
            store.close()
    finally:
        service.close()


def test_an_unmigrated_postgres_database_is_refused_with_the_command_to_run(postgres_server_url):
    name = f"batchlog_bare_{uuid.uuid4().hex[:8]}"
    admin = parse_database_url(postgres_server_url)
    with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(postgres_server_url, name)  # keeps a socket folder given as ?host=
    try:
        every = len(migrations_for("postgres"))
        with pytest.raises(
            UnmigratedDatabaseError, match=rf"{every} migration\(s\).*batchlog migrate"
        ):
            ProjectionHost(url)
        migrate(url)
        ProjectionHost(url).close()
    finally:
        with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_sqlite_file_that_cannot_be_migrated_is_refused_naming_why(sqlite_url):
    with ViewStore(sqlite_url) as views:  # a history table 0005 cannot copy
        views.execute("DROP TABLE history_events")
        views.execute("CREATE TABLE history_events (unexpected INTEGER)")
        views.execute("DELETE FROM batchlog_migrations WHERE name LIKE ?", ("0005%",))
    with pytest.raises(UnmigratedDatabaseError, match="0005_history_reads_the_log") as raised:
        ProjectionHost(sqlite_url)
    assert "no such column" in str(raised.value.__cause__)
