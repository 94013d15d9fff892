"""Reading the log as plain rows: no Notification or UUID object per event.

On PostgreSQL the rebuild and the live host read the recorder's own events table in
notification order, as `select_notifications` does, but ask for the originator id as text and
take psycopg's tuples as they come: that is a third of the Python work of reading a page. The
statement has no upper bound (rows after `stop` are dropped here): with one, and no planner
statistics on the events table (autovacuum off, never analysed), PostgreSQL sorted every row
after `start` for each page instead of walking the notification id index.
Any other recorder (SQLite, or one this module does not recognise) goes through
`select_notifications`.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql
from psycopg.rows import tuple_row

from batchlog.adapters.store import EventStore
from batchlog.adapters.views.decode import LogRow


class LogRows:
    """Pages of the log of one store as LogRows, by start (exclusive) and stop (inclusive)."""

    def __init__(self, store: EventStore) -> None:
        self._recorder: Any = store.recorder
        self._statement: sql.Composed | None = None
        if isinstance(self._recorder, PostgresApplicationRecorder):
            self._statement = sql.SQL(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {schema}.{table} WHERE notification_id > %s "
                "ORDER BY notification_id LIMIT %s"
            ).format(
                schema=sql.Identifier(self._recorder.datastore.schema),
                table=sql.Identifier(self._recorder.events_table_name),
            )

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
