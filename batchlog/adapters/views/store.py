"""View stores: read-model tables on SQLite or PostgreSQL, written together with tracking.

`commit` writes a projection's row changes and moves its tracking row from the position it was
loaded at to the new one, in one transaction. The tracking update is a compare-and-set, so an
event that was already applied (by this host or another) is refused, never applied twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from batchlog.adapters.store import parse_database_url
from batchlog.projections.base import Changes, ProjectionError, Row, Table, dumps, values_of

SCRATCH_PREFIX = "scratch_"
BULK_ROWS = 20  # above this many rows of a table, PostgreSQL writes go through COPY

# What each projection keeps in memory, and the query that loads it back after a restart.
_STATE_QUERIES: dict[str, dict[str, tuple[str, str]]] = {
    "queue": {
        "queues": ("queue_view_queues", "SELECT * FROM queue_view_queues"),
        "items": ("queue_view_items", "SELECT * FROM queue_view_items WHERE active = 1"),
        "executions": (
            "queue_view_executions",
            "SELECT * FROM queue_view_executions WHERE state = 'running'",
        ),
        "recent": (
            "queue_view_items",
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY queue_name "
            "ORDER BY ended_position DESC, job_id) AS recent_rank FROM queue_view_items "
            "WHERE ended_position IS NOT NULL) ranked WHERE recent_rank <= 50",
        ),
    },
    "history": {
        "executions": (
            "history_executions",
            "SELECT * FROM history_executions",
        ),
    },
    "stats": {
        "running": ("stats_batches", "SELECT * FROM stats_batches WHERE state = 'running'"),
        "batch_jobs": ("stats_batch_jobs", "SELECT * FROM stats_batch_jobs"),
    },
}


@functools.lru_cache(maxsize=64)
def _layout(table: Table) -> tuple[Callable[[Mapping[str, Any]], tuple[Any, ...]], tuple[int, ...]]:
    """How to turn a table's row into column values: a picker, and which values are JSON."""
    pick = values_of(table.columns)
    json_at = tuple(i for i, column in enumerate(table.columns) if column in table.json_columns)
    return pick, json_at


class TrackingConflictError(ProjectionError):
    """The view is no longer at the position these changes were folded from (already applied)."""


def _duplicate_key(table: Table, detail: str) -> ProjectionError:
    return ProjectionError(f"the rebuild wrote two rows with one key into {table.name}: {detail}")


def _detail(error: Exception) -> str:
    """What a unique violation says about the key (PostgreSQL's detail names it)."""
    if isinstance(error, psycopg.Error) and error.diag.message_detail:
        return error.diag.message_detail
    return str(error)


def _expanded_sources(tables: Sequence[Table]) -> set[str]:
    """The tables that other tables among these are expanded from (`Table.expands`)."""
    return {table.expands[0] for table in tables if table.expands is not None}


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ViewStore:
    """One connection to the read-model tables of a database (thread-safe, one call at a time)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.target = parse_database_url(url)
        self.dialect = self.target.dialect
        self._lock = threading.RLock()
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[Any] | None = None
        self._staged: set[str] = set()  # staging tables made on the current connection
        self._types: dict[str, list[str]] = {}  # column types by table, for binary COPY
        if self.dialect == "sqlite":
            assert self.target.sqlite_path is not None
            self._sqlite = sqlite3.connect(
                self.target.sqlite_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._sqlite.execute("PRAGMA busy_timeout = 30000")
        else:
            self._pg = psycopg.connect(self.target.conninfo(), autocommit=True)

    def __enter__(self) -> ViewStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
            if self._pg is not None:
                self._pg.close()

    # ---- plumbing ----------------------------------------------------------------------------

    def _pg_connection(self) -> psycopg.Connection[Any]:
        """The PostgreSQL connection, reopened if the server dropped it."""
        if self._pg is None or self._pg.closed or self._pg.broken:
            self._pg = psycopg.connect(self.target.conninfo(), autocommit=True)
            self._staged.clear()
        return self._pg

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    @contextlib.contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Any]:
        """A write transaction (or, with snapshot, a consistent read); yields a cursor."""
        with self._lock:
            if self._sqlite is not None:
                cursor = self._sqlite.cursor()
                cursor.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            else:
                connection = self._pg_connection()
                try:
                    with connection.transaction(), connection.cursor() as pg_cursor:
                        if snapshot:
                            pg_cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        yield pg_cursor
                except BaseException:
                    self._staged.clear()  # staging tables made in it were rolled back too
                    raise

    def query(
        self, statement: str, params: Sequence[Any] = (), cursor: Any | None = None
    ) -> list[Row]:
        """Rows of a SELECT as dicts."""
        with self._lock:
            if cursor is None:
                if self._sqlite is not None:
                    cursor = self._sqlite.cursor()
                else:
                    cursor = self._pg_connection().cursor()
            cursor.execute(self._sql(statement), tuple(params))
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, statement: str, params: Sequence[Any] = (), cursor: Any | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            if cursor is None:
                with self.transaction() as own:
                    own.execute(self._sql(statement), tuple(params))
                    return int(own.rowcount)
            cursor.execute(self._sql(statement), tuple(params))
            return int(cursor.rowcount)

    # ---- tracking ----------------------------------------------------------------------------

    def tracking(self) -> dict[str, Row]:
        """Every projection's tracking row by name."""
        rows = self.query("SELECT * FROM projection_tracking")
        return {row["name"]: row for row in rows}

    def commit(
        self, name: str, tables: Sequence[Table], changes: Changes, expected: int, position: int
    ) -> None:
        """Write changes and move tracking expected → position in one transaction."""
        with self.transaction() as cursor:
            moved = self.execute(
                "UPDATE projection_tracking SET position = ?, updated_at = ? "
                "WHERE name = ? AND position = ?",
                (position, _now(), name, expected),
                cursor,
            )
            if moved != 1:
                raise TrackingConflictError(
                    f"projection {name!r} is no longer at position {expected}; "
                    f"events up to {position} were already applied"
                )
            self.write(cursor, tables, changes)

    def write(
        self,
        cursor: Any,
        tables: Sequence[Table],
        changes: Changes,
        prefix: str = "",
        *,
        empty: bool = False,
    ) -> int:
        """Write upserts and inserts (into prefixed copies when asked) and the index rows the
        database derives from them; returns how many rows in all. `empty`: a bulk insert into
        empty scratch copies (made by `create_scratch`; `seal_scratch` finishes them)."""
        written = changes.row_count()
        for table in tables:
            upserts = changes.upserts.get(table.name)
            if upserts and empty:
                self._insert(cursor, table, prefix + table.name, list(upserts.values()))
            elif upserts:
                self._upsert(cursor, table, prefix + table.name, list(upserts.values()))
            inserts = changes.inserts.get(table.name)
            if inserts:
                try:
                    self._insert(cursor, table, prefix + table.name, inserts)
                except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation) as error:
                    if not empty:
                        raise
                    raise _duplicate_key(table, _detail(error)) from None  # keyed copies
        by_name = {table.name: table for table in tables}
        for table in tables:
            if table.expands is not None:
                appended = changes.inserts.get(table.expands[0])
                if appended:
                    (key,) = by_name[table.expands[0]].key
                    positions = [row[key] for row in appended]
                    span = (min(positions), max(positions))
                    written += self._expand(cursor, table, by_name[table.expands[0]], prefix, span)
        return written

    def _expand(
        self, cursor: Any, table: Table, source: Table, prefix: str, span: tuple[int, int]
    ) -> int:
        """Write an index table's rows from its source table's rows whose key is within `span`
        (through the source's key index)."""
        (key,) = source.key
        element, *copied = table.columns
        column = table.expands[1] if table.expands else ""
        elements = (
            f"CROSS JOIN LATERAL json_array_elements_text(s.{column}::json) AS j(value)"
            if self.dialect == "postgres"
            else f"CROSS JOIN json_each(s.{column}) AS j"
        )
        cursor.execute(
            self._sql(
                f"INSERT INTO {prefix}{table.name} ({element}, {', '.join(copied)}) "
                f"SELECT j.value, {', '.join('s.' + c for c in copied)} "
                f"FROM {prefix}{source.name} s {elements} WHERE s.{key} BETWEEN ? AND ?"
            ),
            span,
        )
        return int(cursor.rowcount)

    @staticmethod
    def _values(table: Table, rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Any]]:
        """Each row's column values in order, JSON columns as text (the layout found once)."""
        pick, json_at = _layout(table)
        if not json_at:
            yield from map(pick, rows)
            return
        for row in rows:
            listed = list(pick(row))
            for index in json_at:
                listed[index] = dumps(listed[index])
            yield listed

    def _upsert(self, cursor: Any, table: Table, name: str, rows: list[Row]) -> None:
        columns = ", ".join(table.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in table.columns if c not in table.key)
        conflict = f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}"
        if self.dialect == "postgres" and len(rows) > BULK_ROWS:
            # Many rows: COPY them into a staging table, then one INSERT … ON CONFLICT (a
            # statement per row costs more than the row). Rows are unique by key (coalesced).
            staging = self._staging(cursor, table, name)
            self._copy(cursor, table, staging, rows)
            cursor.execute(
                f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {staging} {conflict}"
            )
            cursor.execute(f"TRUNCATE {staging}")
            return
        marks = ", ".join("?" for _ in table.columns)
        statement = f"INSERT INTO {name} ({columns}) VALUES ({marks}) {conflict}"
        cursor.executemany(self._sql(statement), list(self._values(table, rows)))

    def _copy(self, cursor: Any, table: Table, name: str, rows: list[Row]) -> None:
        """COPY rows into a table (or a copy of it) in PostgreSQL's binary format: half the
        work of the text format here and on the server, which parses no text. A value whose
        type is not its column's (a number in a text column) cannot go in binary; those rows
        go in the text format, as they always did, which writes what it wrote before."""
        statement = f"COPY {name} ({', '.join(table.columns)}) FROM STDIN"
        types = self._column_types(cursor, table)
        try:
            with cursor.connection.transaction():  # a savepoint, to retry in text
                self._copy_rows(cursor, f"{statement} (FORMAT BINARY)", table, rows, types)
        except (TypeError, psycopg.DataError):
            self._copy_rows(cursor, statement, table, rows, None)

    def _copy_rows(
        self, cursor: Any, statement: str, table: Table, rows: list[Row], types: list[str] | None
    ) -> None:
        with cursor.copy(statement) as copy:
            if types is not None:
                copy.set_types(types)
            for values in self._values(table, rows):
                copy.write_row(values)

    def _column_types(self, cursor: Any, table: Table) -> list[str]:
        """The live table's column types in `table.columns` order (its copies share them)."""
        types = self._types.get(table.name)
        if types is None:
            cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table.name,),
            )
            declared = dict(cursor.fetchall())
            types = self._types[table.name] = [declared[column] for column in table.columns]
        return types

    def _staging(self, cursor: Any, table: Table, name: str) -> str:
        """An empty temporary copy of a table's columns on this connection, made once."""
        staging = f"staging_{name}"
        if staging not in self._staged:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                f"(LIKE {name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staged.add(staging)
        return staging

    def _insert(self, cursor: Any, table: Table, name: str, rows: list[Row]) -> None:
        columns = ", ".join(table.columns)
        if self.dialect == "postgres" and len(rows) > BULK_ROWS:
            self._copy(cursor, table, name, rows)
            return
        marks = ", ".join("?" for _ in table.columns)
        cursor.executemany(
            self._sql(f"INSERT INTO {name} ({columns}) VALUES ({marks})"),
            list(self._values(table, rows)),
        )

    def load_state(self, name: str, tables: Sequence[Table]) -> tuple[int, dict[str, list[Row]]]:
        """A projection's position and the rows it keeps in memory, read consistently."""
        specs = {table.name: table for table in tables}
        with self.transaction(snapshot=True) as cursor:
            rows = self.query(
                "SELECT position FROM projection_tracking WHERE name = ?", (name,), cursor
            )
            if not rows:
                self.execute(
                    "INSERT INTO projection_tracking (name, position) VALUES (?, 0)",
                    (name,),
                    cursor,
                )
            position = int(rows[0]["position"]) if rows else 0
            state = {
                key: [self._parse(specs[table], row) for row in self.query(sql, (), cursor)]
                for key, (table, sql) in _STATE_QUERIES.get(name, {}).items()
            }
        return position, state

    @staticmethod
    def _parse(table: Table, row: Row) -> Row:
        parsed = {column: row[column] for column in table.columns}
        for column in table.json_columns:
            parsed[column] = json.loads(parsed[column]) if parsed[column] is not None else None
        return parsed

    # ---- errors and skips --------------------------------------------------------------------

    def record_error(self, name: str, position: int, topic: str, message: str) -> None:
        """Mark a projection stopped at the event it failed on (unless a host that could apply
        it, e.g. a newer version, already moved past it)."""
        self.execute(
            "UPDATE projection_tracking SET error_position = ?, error_topic = ?, "
            "error_message = ?, error_at = ? WHERE name = ? AND position < ?",
            (position, topic, message, _now(), name, position),
        )

    def clear_error(self, name: str) -> bool:
        """Let a stopped projection try its failed event again; False if it was not stopped."""
        return (
            self.execute(
                "UPDATE projection_tracking SET error_position = NULL, error_topic = NULL, "
                "error_message = NULL, error_at = NULL WHERE name = ? AND error_position IS NOT NULL",
                (name,),
            )
            == 1
        )

    def skip(self, name: str, position: int, reason: str, actor: str) -> Row:
        """Record that an operator skipped the event a projection stopped on, and move past it."""
        with self.transaction() as cursor:
            rows = self.query("SELECT * FROM projection_tracking WHERE name = ?", (name,), cursor)
            if not rows or rows[0]["error_position"] != position:
                stopped = rows[0]["error_position"] if rows else None
                raise ProjectionError(
                    f"projection {name!r} is not stopped at position {position} "
                    f"(stopped at: {stopped}); only the event it stopped on can be skipped"
                )
            topic = rows[0]["error_topic"]
            self.execute(
                "INSERT INTO projection_skips (name, position, topic, reason, actor, skipped_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, position, topic, reason, actor, _now()),
                cursor,
            )
            self.execute(
                "UPDATE projection_tracking SET position = ?, error_position = NULL, "
                "error_topic = NULL, error_message = NULL, error_at = NULL, updated_at = ? "
                "WHERE name = ?",
                (position, _now(), name),
                cursor,
            )
        return {"name": name, "position": position, "topic": topic, "reason": reason}

    def skips(self, name: str | None = None) -> list[Row]:
        """Recorded skips, oldest first."""
        if name is None:
            return self.query("SELECT * FROM projection_skips ORDER BY name, position")
        return self.query(
            "SELECT * FROM projection_skips WHERE name = ? ORDER BY position", (name,)
        )

    # ---- scratch copies for verification -----------------------------------------------------

    def create_scratch(self, tables: Sequence[Table]) -> None:
        """Empty temporary copies of the given tables (visible to this connection only), for a
        load by `write(..., empty=True)` and then `seal_scratch`.

        On PostgreSQL the copies are loaded with no index but one on each key that an index
        table is expanded from (`Table.expands`: rows come in key order, so that index only
        grows at its end, and each write expands its own rows through it). Keeping the live
        tables' other indexes up to date row by row cost the rebuild a third of the server's
        work (they serve readers, which a scratch table has none of); `seal_scratch` builds the
        remaining keys once, from the loaded rows.
        """
        with self.transaction() as cursor:
            for table in tables:
                scratch = SCRATCH_PREFIX + table.name
                cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
                if self.dialect == "postgres":
                    cursor.execute(
                        f"CREATE TEMP TABLE {scratch} (LIKE {table.name} INCLUDING DEFAULTS "
                        "INCLUDING CONSTRAINTS)"
                    )
                    if table.name in _expanded_sources(tables):
                        self._index_scratch_key(cursor, table)
                else:
                    cursor.execute(
                        f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{table.name}'"
                    )
                    ddl = str(cursor.fetchone()[0])
                    cursor.execute(
                        ddl.replace(f"CREATE TABLE {table.name}", f"CREATE TEMP TABLE {scratch}", 1)
                    )

    def seal_scratch(self, cursor: Any, tables: Sequence[Table]) -> None:
        """Finish a scratch load: on PostgreSQL, index each table's key as unique (a duplicate
        key, which only a faulty fold could write, fails here, naming the table)."""
        if self.dialect != "postgres":
            return  # SQLite's copies kept their keys while they were loaded
        sources = _expanded_sources(tables)
        for table in tables:
            if table.name not in sources:
                self._index_scratch_key(cursor, table)

    def _index_scratch_key(self, cursor: Any, table: Table) -> None:
        """A unique index on a scratch table's key: the same uniqueness as the live primary key
        (any column order, and text compared byte by byte, as equality always is), built in
        half the time: numbers first (rows arrive in position order) and text in the "C"
        collation (the database's own sorts by locale, with no abbreviated keys)."""
        types = dict(zip(table.columns, self._column_types(cursor, table), strict=True))
        text = [c for c in table.key if types[c] == "text"]
        key = [c for c in table.key if c not in text] + [f'{c} COLLATE "C"' for c in text]
        try:
            cursor.execute(
                f"CREATE UNIQUE INDEX ON {SCRATCH_PREFIX}{table.name} ({', '.join(key)})"
            )
        except psycopg.errors.UniqueViolation as error:
            raise _duplicate_key(table, _detail(error)) from None

    def differences(self, table: Table, cursor: Any, limit: int = 50) -> list[Row]:
        """Rows that differ between a live table and its scratch rebuild, keyed by the table key."""
        columns = ", ".join(table.columns)
        live = f"SELECT {columns} FROM {table.name}"
        rebuilt = f"SELECT {columns} FROM {SCRATCH_PREFIX}{table.name}"
        only_live = self.query(f"{live} EXCEPT {rebuilt}", (), cursor)
        only_rebuilt = self.query(f"{rebuilt} EXCEPT {live}", (), cursor)
        by_key: dict[tuple[Any, ...], Row] = {}
        for side, rows in (("live", only_live), ("rebuilt", only_rebuilt)):
            for row in rows:
                key = tuple(row[column] for column in table.key)
                entry = by_key.setdefault(
                    key, {"table": table.name, "key": dict(zip(table.key, key, strict=True))}
                )
                entry[side] = row
        found = sorted(by_key.values(), key=lambda e: [str(v) for v in e["key"].values()])
        for entry in found:
            entry.setdefault("live", None)
            entry.setdefault("rebuilt", None)
            if entry["live"] and entry["rebuilt"]:
                entry["columns"] = [
                    c for c in table.columns if entry["live"][c] != entry["rebuilt"][c]
                ]
        return found[:limit]
