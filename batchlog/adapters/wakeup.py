"""Waking a runner when the store changes: LISTEN/NOTIFY on PostgreSQL, polling on SQLite.

eventsourcing's PostgreSQL recorder sends NOTIFY on its channel with every insert, so a runner
that LISTENs wakes on any new event (a job added, the queue resumed, an item requeued).
"""

from __future__ import annotations

import threading
from typing import Protocol

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
        target = parse_database_url(database_url)
        self._connection = psycopg.connect(target.conninfo(), autocommit=True)
        self._connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout: float) -> None:
        """Return at the first notification, or after timeout seconds."""
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            break
        # Swallow notifications that arrived meanwhile: one wake-up covers them all.
        for _ in self._connection.notifies(timeout=0.0):
            pass

    def close(self) -> None:
        """Close the listening connection."""
        self._connection.close()


def waiter_for(database_url: str, store: EventStore, poll_seconds: float = 0.2) -> Waiter:
    """The right waiter for the database behind this URL."""
    if parse_database_url(database_url).dialect == "postgres":
        channel = getattr(store.recorder, "channel_name", None)
        if channel:
            return PostgresWaiter(database_url, str(channel))
    return PollingWaiter(poll_seconds)
