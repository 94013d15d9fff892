"""Migrations: applied in order on an empty database they give the view tables; names follow
the numbering rule, and both dialects have the same migrations."""

from __future__ import annotations

from importlib import resources

import pytest

from batchlog.adapters.migrations import MIGRATION_NAME, migrate, migrations_for
from batchlog.adapters.views import ViewStore
from batchlog.projections import PROJECTIONS

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
