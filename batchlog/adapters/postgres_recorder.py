"""The PostgreSQL application recorder, safe for large events.

eventsourcing 9.5 inserts events in psycopg pipeline mode. With an event state of roughly 10 MB
(the Analyzed event of a 100k-run plan carries every batch) the pipeline's sync never returns:
the client waits for a result while the server waits for the rest of the message (measured with
psycopg 3.3.9 over TCP: 4 MB saves in 0.8 s, 12 MB hangs forever, holding the events table lock;
over a Unix socket, whose buffers are smaller, a bulk add of 1,000 jobs (~800 kB) already hung).
Saves over 64 kB therefore go through the same statements without pipeline mode, in one
transaction; small ones keep the pipelined path and its single round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry

PIPELINE_LIMIT_BYTES = 64_000


class LargeEventSafeRecorder(PostgresApplicationRecorder):
    """PostgresApplicationRecorder that does not pipeline saves of more than 64 kB."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events; without pipeline mode when their states are large."""
        if sum(len(event.state) for event in stored_events) < PIPELINE_LIMIT_BYTES:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
