"""Reading the log as plain rows: no Notification or UUID object per event.

On PostgreSQL the rebuild and the live host read the recorder's own events table in
notification order, as `select_notifications` does, but ask for the originator id as text and
take psycopg's tuples as they come: that is a third of the Python work of reading a page. The
statement has no upper bound (rows after `stop` are dropped here): with one, and no planner
statistics on the events table (autovacuum off, never analysed), PostgreSQL sorted every row
after `start` for each page instead of walking the notification id index.
Any other recorder (SQLite, or one this module does not recognise) goes through
`select_notifications`. Rows at given positions (`at`, for reading the history) are selected by
their ids on PostgreSQL (in one statement) and SQLite (500 at a time), and from the span they lie
in on any other recorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg import sql
from psycopg.rows import tuple_row

from batchlog.adapters.store import EventStore
from batchlog.adapters.views.decode import LogRow

AT_ONCE = 500  # positions per statement of `at` on SQLite (it allows 999 parameters by default)


class LogRows:
    """Pages of the log of one store as LogRows, by start (exclusive) and stop (inclusive)."""

    def __init__(self, store: EventStore) -> None:
        self._recorder: Any = store.recorder
        self._statement: sql.Composed | None = None
        if isinstance(self._recorder, PostgresApplicationRecorder):
            table = sql.Identifier(
                self._recorder.datastore.schema, self._recorder.events_table_name
            )
            rows = sql.SQL(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {} "
            ).format(table)
            self._statement = rows + sql.SQL(
                "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            )
            self._at: sql.Composed | str | None = rows + sql.SQL("WHERE notification_id = ANY(%s)")
        elif isinstance(self._recorder, SQLiteApplicationRecorder):
            self._at = (
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self._recorder.events_table_name} WHERE rowid IN "
            )
        else:
            self._at = None

    def page(self, start: int, stop: int | None, limit: int) -> list[LogRow]:
        """Up to `limit` rows after position `start`, none after `stop` (if given)."""
        if self._statement is None:
            return [
                (n.id, n.originator_id, n.originator_version, n.topic, n.state)
                for n in self._recorder.select_notifications(
                    start=start, limit=limit, stop=stop, inclusive_of_start=False
                )
            ]
        with (
            self._recorder.datastore.get_connection() as connection,
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(self._statement, (start, limit), prepare=True, binary=True)
            rows: list[LogRow] = cursor.fetchall()
        if stop is not None and rows and rows[-1][0] > stop:
            rows = [row for row in rows if row[0] <= stop]
        return rows

    def at(self, positions: Sequence[int]) -> list[LogRow]:
        """The rows at these positions, in the order given (a position the log lacks is left
        out)."""
        found: dict[int, LogRow] = {}
        step = AT_ONCE if self._at is None or isinstance(self._at, str) else len(positions)
        for start in range(0, len(positions), max(step, 1)):  # PostgreSQL: one array, at once
            chunk = list(positions[start : start + step])
            found.update((row[0], row) for row in self._rows_at(chunk))
        return [found[position] for position in positions if position in found]

    def _rows_at(self, positions: list[int]) -> list[LogRow]:
        if isinstance(self._at, str):  # SQLite
            marks = ", ".join("?" for _ in positions)
            with self._recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"{self._at}({marks})", positions)
                return [
                    (
                        row[0],
                        self._recorder.convert_originator_id(row[1]),
                        row[2],
                        row[3],
                        row[4],
                    )
                    for row in cursor.fetchall()
                ]
        if self._at is not None:  # PostgreSQL
            with (
                self._recorder.datastore.get_connection() as connection,
                connection.cursor(row_factory=tuple_row) as cursor,
            ):
                cursor.execute(self._at, (positions,), binary=True)
                rows: list[LogRow] = cursor.fetchall()
                return rows
        wanted = set(positions)
        first, last = min(positions), max(positions)
        return [row for row in self.page(first - 1, last, last - first + 1) if row[0] in wanted]
