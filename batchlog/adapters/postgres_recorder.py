"""The PostgreSQL recorders: binary-format inserts; the events recorder is safe for large events.

eventsourcing 9.5 sends the events of a save as one array of a composite type in TEXT format:
psycopg quotes and escapes every field and hex-escapes every state (twice its size), which
took half of a 400-job bulk add. Here the four columns go as four arrays in BINARY format
(`unnest(uuid[], bigint[], text[], bytea[])`), inside the same transaction as eventsourcing's
(lock timeout, EXCLUSIVE table lock, NOTIFY on the table's channel), returning the notification
ids in insert order; a duplicate (originator_id, originator_version) still raises
eventsourcing's IntegrityError through the datastore's connection. Snapshots (a queue snapshot
holds every queued item) are inserted the same way.

eventsourcing 9.5 also inserts in psycopg pipeline mode. With an event state of roughly 10 MB
(the Analyzed event of a 100k-run plan carries every batch) the pipeline's sync never returns:
the client waits for a result while the server waits for the rest of the message (measured with
psycopg 3.3.9 over TCP: 4 MB saves in 0.8 s, 12 MB hangs forever, holding the events table lock;
over a Unix socket, whose buffers are smaller, a bulk add of 1,000 jobs (~800 kB) already hung).
A save therefore goes through the insert function that `batchlog migrate` creates (one
statement, no pipeline; see LargeEventSafeRecorder). Where the function is missing, saves over
64 kB go through the same statements without pipeline mode, in one transaction (lock timeout,
lock and NOTIFY sent as one simple query); small ones keep the pipelined path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

PIPELINE_LIMIT_BYTES = 64_000
LZ4_STATEMENT = "ALTER TABLE {table} ALTER COLUMN state SET COMPRESSION lz4"


def binary_insert_statement(
    recorder: PostgresAggregateRecorder, *, returning_ids: bool = False
) -> Composed:
    """INSERT of the recorder's events table from four binary column arrays."""
    statement = SQL(
        "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
        "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
        + (" RETURNING notification_id" if returning_ids else "")
    )
    return statement.format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
        id_type=Identifier(recorder.datastore.originator_id_type),
    )


def column_arrays(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    """The events as the statement's four parameters: one list per column."""
    return (
        [event.originator_id for event in stored_events],
        [event.originator_version for event in stored_events],
        [event.topic for event in stored_events],
        [event.state for event in stored_events],
    )


class BinarySnapshotRecorder(PostgresAggregateRecorder):
    """PostgresAggregateRecorder (the snapshots table) that inserts in binary format."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.binary_insert_statement = binary_insert_statement(self)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        """Insert the events as binary column arrays."""
        curs.execute(self.binary_insert_statement, column_arrays(stored_events), prepare=True)


INSERT_FUNCTION_BODY = """
CREATE OR REPLACE FUNCTION {schema}.{function}(
    ids {id_type}[], versions bigint[], topics text[], states bytea[], lock_timeout text
) RETURNS SETOF bigint LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;
    NOTIFY {channel};
    RETURN QUERY
        INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id;
END;
$body$
"""


class LargeEventSafeRecorder(PostgresApplicationRecorder):
    """PostgresApplicationRecorder that saves in one round trip, in binary format.

    `batchlog migrate` creates the function `<events table>_insert`, which takes the events as
    four arrays and does what eventsourcing's pipelined transaction does (lock timeout,
    EXCLUSIVE table lock, NOTIFY, INSERT ... RETURNING notification_id) as one statement: one
    round trip whatever the size, and no pipeline to hang on a large event. In a database
    migrated before the function existed, saves fall back to eventsourcing's statements (with
    binary inserts), pipelined only when small.
    """

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.binary_insert_statement = binary_insert_statement(self, returning_ids=True)
        # Lock timeout, table lock and NOTIFY as one simple query: one round trip, not three.
        self.lock_and_notify_statement = SQL("; ").join(
            [*self.lock_table_statements, SQL("NOTIFY {0}").format(Identifier(self.channel_name))]
        )
        function = Identifier(f"{self.events_table_name}_insert")
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(INSERT_FUNCTION_BODY).format(
                schema=schema,
                function=function,
                id_type=Identifier(self.datastore.originator_id_type),
                table=Identifier(self.events_table_name),
                channel=Identifier(self.channel_name),
            )
        )
        self.insert_function_call = SQL(
            "SELECT * FROM {schema}.{function}(%b, %b, %b, %b, %s) AS inserted(notification_id)"
        ).format(schema=schema, function=function)
        self.insert_function_signature = (
            f"{self.datastore.schema}.{self.events_table_name}_insert"
            f"({self.datastore.originator_id_type}[], bigint[], text[], bytea[], text)"
        )
        self._has_insert_function: bool | None = None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events in one statement (or, without the function, eventsourcing's way)."""
        if not stored_events:
            return []
        if self.has_insert_function():
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    self.insert_function_call,
                    (*column_arrays(stored_events), f"{self.datastore.lock_timeout}s"),
                    prepare=True,
                )
                return [row["notification_id"] for row in curs.fetchall()]
        if sum(len(event.state) for event in stored_events) < PIPELINE_LIMIT_BYTES:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            curs.execute(self.lock_and_notify_statement)
            curs.execute(self.binary_insert_statement, column_arrays(stored_events), prepare=True)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def has_insert_function(self) -> bool:
        """Whether the database has the insert function (looked up once, then remembered)."""
        if self._has_insert_function is None:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    "SELECT to_regprocedure(%s) IS NOT NULL AS found",
                    (self.insert_function_signature,),
                )
                row = curs.fetchone()
                self._has_insert_function = bool(row and row["found"])
        return self._has_insert_function

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        """Lock the table, notify its channel and insert the events as binary column arrays."""
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.binary_insert_statement, column_arrays(stored_events), prepare=True)


class BatchlogPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with the binary-format recorders."""

    aggregate_recorder_class = BinarySnapshotRecorder
    application_recorder_class = LargeEventSafeRecorder


def compress_states_with_lz4(conninfo: str, tables: Sequence[str]) -> bool:
    """Have PostgreSQL (14+, built with lz4) compress new event states with lz4 instead of pglz.

    A bulk add's state of ~250 kB saved in ~1.7 ms instead of ~2.6 ms, and stored in 17 kB.
    Values already stored stay readable (each records its own method). Returns False, changing
    nothing, where the server cannot.
    """
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            for table in tables:
                connection.execute(SQL(LZ4_STATEMENT).format(table=Identifier(table)))
    except (
        psycopg.errors.FeatureNotSupported,  # built without lz4
        psycopg.errors.InvalidParameterValue,
        psycopg.errors.SyntaxError,  # before PostgreSQL 14
    ):
        return False
    return True
