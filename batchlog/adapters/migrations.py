"""The migrations runner: event tables, then numbered read-model SQL files per dialect, once each."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from batchlog.adapters.store import DatabaseTarget, migrate_event_tables, parse_database_url
from batchlog.domain.errors import BatchlogError

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    number: int
    name: str
    sql: str


def migrations_for(dialect: str) -> list[Migration]:
    """The migration files of a dialect, in number order; refuses misnamed or duplicate numbers."""
    folder = resources.files("batchlog.migrations").joinpath(dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} does not follow NNNN_name.sql")
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(
            f"{dialect} migrations must be numbered 0001.. without gaps, found {numbers}"
        )
    return found


class UnmigratedDatabaseError(BatchlogError):
    """The database lacks view migrations this version needs (run `batchlog migrate`)."""


def pending_migrations(dialect: str, applied: Iterable[str] | None) -> list[str]:
    """This version's migrations of a dialect that are not among those applied (None: the
    database has no migration ledger, so all of them)."""
    done = set(applied or ())
    return [m.name for m in migrations_for(dialect) if m.name not in done]


_LEDGER = "CREATE TABLE IF NOT EXISTS batchlog_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


def migrate(url: str) -> list[str]:
    """Create the event tables and apply pending read-model migrations; return what was applied."""
    migrate_event_tables(url)
    target = parse_database_url(url)
    if target.dialect == "sqlite":
        return _migrate_sqlite(target)
    return _migrate_postgres(target)


def _migrate_sqlite(target: DatabaseTarget) -> list[str]:
    assert target.sqlite_path is not None
    applied = []
    with sqlite3.connect(Path(target.sqlite_path), timeout=30) as connection:
        connection.execute(_LEDGER)
        done = {row[0] for row in connection.execute("SELECT name FROM batchlog_migrations")}
        for migration in migrations_for("sqlite"):
            if migration.name in done:
                continue
            connection.executescript(migration.sql)
            connection.execute(  # OR IGNORE: another process may have just applied it too
                "INSERT OR IGNORE INTO batchlog_migrations VALUES (?, datetime('now'))",
                (migration.name,),
            )
            applied.append(migration.name)
    return applied


def _migrate_postgres(target: DatabaseTarget) -> list[str]:
    applied = []
    with psycopg.connect(target.conninfo(), autocommit=False) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(727274)")
        connection.execute(_LEDGER)
        done = {row[0] for row in connection.execute("SELECT name FROM batchlog_migrations")}
        for migration in migrations_for("postgres"):
            if migration.name in done:
                continue
            connection.execute(migration.sql)
            connection.execute(
                "INSERT INTO batchlog_migrations VALUES (%s, now()::text)", (migration.name,)
            )
            applied.append(migration.name)
        connection.commit()
    return applied
