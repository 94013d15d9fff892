"""Waking a runner when the store changes: LISTEN/NOTIFY on PostgreSQL, polling on SQLite.

eventsourcing's PostgreSQL recorder sends NOTIFY on its channel with every insert, so a runner
that LISTENs wakes on any new event (a job added, the queue resumed, an item requeued).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import psycopg
from psycopg import sql

from batchlog.adapters.store import EventStore, parse_database_url


class Waiter(Protocol):
    """Blocks until the store may have changed."""

    def wait(self, timeout: float) -> None:
        """Return on a change, or after timeout seconds."""
        ...

    def close(self) -> None:
        """Release the connection, if any."""
        ...


class PollingWaiter:
    """Waits a poll interval (SQLite cannot notify); `poke` wakes it early in this process."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self._event = threading.Event()

    def wait(self, timeout: float) -> None:
        """Sleep the shorter of the poll interval and the timeout."""
        self._event.wait(min(self.interval, timeout))
        self._event.clear()

    def poke(self) -> None:
        """Wake a waiting runner now."""
        self._event.set()

    def close(self) -> None:
        """Nothing to release."""


class PostgresWaiter:
    """LISTENs on the event store's notification channel on its own connection."""

    def __init__(self, database_url: str, channel: str) -> None:
        self._conninfo = parse_database_url(database_url).conninfo()
        self._channel = channel
        self._connection: psycopg.Connection[Any] | None = self._listen()

    def _listen(self) -> psycopg.Connection[Any]:
        connection = psycopg.connect(self._conninfo, autocommit=True)
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return connection

    def wait(self, timeout: float) -> None:
        """Return at the first notification, or after timeout seconds (reconnecting if needed)."""
        try:
            if self._connection is None or self._connection.closed:
                self._connection = self._listen()
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                break
            # Swallow notifications that arrived meanwhile: one wake-up covers them all.
            for _ in self._connection.notifies(timeout=0.0):
                pass
        except psycopg.Error:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            time.sleep(timeout)

    def close(self) -> None:
        """Close the listening connection."""
        if self._connection is not None:
            self._connection.close()


def waiter_for(database_url: str, store: EventStore, poll_seconds: float = 0.2) -> Waiter:
    """The right waiter for the database behind this URL."""
    if parse_database_url(database_url).dialect == "postgres":
        channel = getattr(store.recorder, "channel_name", None)
        if channel:
            return PostgresWaiter(database_url, str(channel))
    return PollingWaiter(poll_seconds)
