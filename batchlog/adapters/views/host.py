"""ProjectionHost: runs projections inside a process, catching up on demand or following the log.

Following: on PostgreSQL, LISTEN on the event table's channel (eventsourcing NOTIFYs on every
append) with a poll as a safety net; on SQLite, a polling loop. Several hosts may run the same
projection: the tracking compare-and-set refuses a second application of an event, and the
loser reloads its state from the view and carries on from there.

A projection that fails on an event stops at that event (its position, topic and error are
recorded and shown in `batchlog projections status`); it never loops on it or skips it by itself.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from batchlog.adapters.migrations import UnmigratedDatabaseError, migrate, pending_migrations
from batchlog.adapters.store import EventStore, open_store
from batchlog.adapters.views.decode import Decoded, DecodeFailure, NotificationDecoder
from batchlog.adapters.views.log_rows import LogRows
from batchlog.adapters.views.store import TrackingConflictError, ViewStore
from batchlog.projections import PROJECTION_NAMES, PROJECTIONS
from batchlog.projections.base import Projection

log = logging.getLogger(__name__)
PAGE_SIZE = 5000  # events per page, and at most per tracked commit
CONFLICT_RETRIES = 20
SQLITE_MIGRATE_ATTEMPTS = 5  # an embedded file another process may be migrating at the same time
OnCommit = Callable[[str, int, float], None]


@dataclass
class _Runtime:
    """One projection as this host runs it: its in-memory fold and where it stands."""

    name: str
    factory: Callable[[], Projection]
    projection: Projection | None = None
    position: int = -1
    error: dict[str, Any] | None = None
    skipped: set[int] = field(default_factory=set)


class ProjectionHost:
    """Hosts named projections over one database: catch_up() now, or start() a follower thread."""

    def __init__(
        self,
        database_url: str,
        names: Iterable[str] = PROJECTION_NAMES,
        *,
        factories: dict[str, Callable[[], Projection]] | None = None,
        poll_interval: float = 0.2,
        page_size: int = PAGE_SIZE,
        on_commit: OnCommit | None = None,
        store: EventStore | None = None,
    ) -> None:
        chosen = {**PROJECTIONS, **(factories or {})}
        unknown = [name for name in names if name not in chosen]
        if unknown:
            raise ValueError(f"unknown projection {unknown[0]!r}; known: {', '.join(chosen)}")
        self.database_url = database_url
        self._own_store = store is None
        self.store = store or open_store(database_url)
        self.views = ViewStore(database_url)
        try:
            if self.views.dialect == "sqlite":
                _ensure_sqlite_views(database_url, self.views)
            else:
                _require_migrated(self.views)
        except BaseException:
            self.views.close()
            if self._own_store:
                self.store.close()
            raise
        self.decoder = NotificationDecoder(self.store.mapper)
        self._log = LogRows(self.store)
        self._runtimes = {name: _Runtime(name, chosen[name]) for name in names}
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.on_commit = on_commit
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the log in a daemon thread until stop()."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._follow, name="batchlog-projections", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following (waits for the current batch to commit)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop and close connections."""
        self.stop()
        self.views.close()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> ProjectionHost:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def following(self) -> bool:
        """Whether the follower thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stopped_at(self, name: str) -> dict[str, Any] | None:
        """Where this host saw a projection stop (position, topic, message), or None."""
        return self._runtimes[name].error

    # ---- catching up -----------------------------------------------------------------------

    def catch_up(
        self,
        names: Sequence[str] | None = None,
        max_pages: int | None = None,
        interrupt: threading.Event | None = None,
    ) -> int:
        """Apply every event up to the log head to the named projections; returns how many."""
        with self._lock:
            runtimes = [self._runtimes[n] for n in (names or self._runtimes)]
            self._refresh(runtimes)
            applied, pages = 0, 0
            while (max_pages is None or pages < max_pages) and not (
                interrupt and interrupt.is_set()
            ):
                active = [rt for rt in runtimes if rt.error is None]
                if not active:
                    break
                start = min(rt.position for rt in active)
                rows = self._log.page(start, None, self.page_size)
                if not rows:
                    break
                records = self.decoder.decode_all(rows)
                for rt in active:
                    applied += self._apply(rt, records)
                pages += 1
                if len(rows) < self.page_size or isinstance(records[-1], DecodeFailure):
                    break
            return applied

    def _refresh(self, runtimes: Sequence[_Runtime]) -> None:
        tracking = self.views.tracking()
        for rt in runtimes:
            row = tracking.get(rt.name)
            position = int(row["position"]) if row else 0
            if rt.projection is None or position != rt.position:
                self._load(rt)
            rt.error = None
            if row and row["error_position"] is not None:
                rt.error = {
                    "position": int(row["error_position"]),
                    "topic": row["error_topic"],
                    "message": row["error_message"],
                }

    def _load(self, rt: _Runtime) -> None:
        projection = rt.factory()
        position, state = self.views.load_state(rt.name, projection.tables)
        projection.restore(state)
        rt.projection, rt.position = projection, position
        rt.skipped = {int(row["position"]) for row in self.views.skips(rt.name)}

    def _apply(self, rt: _Runtime, records: Sequence[Decoded]) -> int:
        for _ in range(CONFLICT_RETRIES):
            todo = [r for r in records if r.position > rt.position]
            if not todo or rt.error is not None:
                return 0
            assert rt.projection is not None
            failure = _fold(rt.projection, todo, rt.skipped)
            good = todo if failure is None else todo[: failure[0]]
            if failure is not None:
                self._load(rt)  # the failed event may have half-mutated the state
                assert rt.projection is not None
                _fold(rt.projection, good, rt.skipped)
            try:
                if good:
                    self._commit(rt, good[-1].position)
            except TrackingConflictError:
                self._load(rt)
                continue
            if failure is not None:
                self._stop_at(rt, todo[failure[0]], failure[1])
            return len(good)
        raise TrackingConflictError(f"projection {rt.name!r} kept losing to another host")

    def _commit(self, rt: _Runtime, position: int) -> None:
        assert rt.projection is not None
        changes = rt.projection.take_changes()
        started = time.perf_counter()
        try:
            self.views.commit(rt.name, rt.projection.tables, changes, rt.position, position)
        except BaseException:
            rt.projection = None  # its state is ahead of the view; reload before use
            raise
        rt.position = position
        if self.on_commit is not None:
            self.on_commit(rt.name, position, started)

    def _stop_at(self, rt: _Runtime, failed: Decoded, error: Exception) -> None:
        topic = failed.topic
        message = f"{type(error).__name__}: {error}"
        self.views.record_error(rt.name, failed.position, topic, message)
        rt.error = {"position": failed.position, "topic": topic, "message": message}
        log.error(
            "projection %s stopped at event %s (%s): %s", rt.name, failed.position, topic, message
        )

    # ---- following -------------------------------------------------------------------------

    def _follow(self) -> None:
        channel = getattr(self.store.recorder, "channel_name", None)
        listener: psycopg.Connection[Any] | None = None
        backoff = self.poll_interval
        while not self._stopping.is_set():
            try:
                if listener is None and channel and self.views.dialect == "postgres":
                    listener = psycopg.connect(self.views.target.conninfo(), autocommit=True)
                    listener.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(channel)))
                self.catch_up(interrupt=self._stopping)
                self.last_error = None
                backoff = self.poll_interval
                if listener is not None:
                    for _ in listener.notifies(timeout=self.poll_interval * 5, stop_after=1):
                        pass
                else:
                    self._stopping.wait(self.poll_interval)
            except Exception as error:  # a database hiccup: say so, back off, carry on
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("projection host: %s (retrying in %.1fs)", self.last_error, backoff)
                if listener is not None:
                    listener.close()
                    listener = None
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        if listener is not None:
            listener.close()

    # ---- reporting -------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each projection's position, lag behind the log head, last error and skips."""
        head = self.store.recorder.max_notification_id() or 0
        tracking = self.views.tracking()
        skips = self.views.skips()
        report = []
        for name in self._runtimes:
            row = tracking.get(name, {"position": 0, "error_position": None})
            position = int(row["position"])
            error = None
            if row.get("error_position") is not None:
                error = {
                    "position": int(row["error_position"]),
                    "topic": row["error_topic"],
                    "message": row["error_message"],
                    "at": row["error_at"],
                }
            report.append(
                {
                    "name": name,
                    "position": position,
                    "head": head,
                    "lag": max(0, head - position),
                    "state": "stopped" if error else ("current" if head <= position else "behind"),
                    "error": error,
                    "skips": [
                        {k: s[k] for k in ("position", "topic", "reason", "actor", "skipped_at")}
                        for s in skips
                        if s["name"] == name
                    ],
                }
            )
        return report


def _ensure_sqlite_views(database_url: str, views: ViewStore) -> None:
    """The embedded default needs no set-up: apply SQLite view migrations on first use, and
    those a newer version brings on its first use."""
    last: sqlite3.OperationalError | None = None
    for attempt in range(SQLITE_MIGRATE_ATTEMPTS):
        if not pending_migrations("sqlite", _applied_migrations(views)):
            return
        try:
            migrate(database_url)
        except sqlite3.OperationalError as error:  # another process is migrating it, say
            last = error
            time.sleep(0.1 * (attempt + 1))
    try:
        _require_migrated(views)
    except UnmigratedDatabaseError as error:
        raise error from last


def _require_migrated(views: ViewStore) -> None:
    """PostgreSQL's schema is made once, by `batchlog migrate`: refuse to work without it."""
    pending = pending_migrations(views.dialect, _applied_migrations(views))
    if pending:
        raise UnmigratedDatabaseError(
            f"The database's views lack {len(pending)} migration(s) this version needs "
            f"({', '.join(pending)}): run `batchlog migrate` once, before processes start."
        )


def _applied_migrations(views: ViewStore) -> list[str] | None:
    """The view migrations the database's ledger lists (None: it has no ledger)."""
    if views.dialect == "sqlite":
        ledger = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        ledger = "SELECT relname AS name FROM pg_class WHERE oid = to_regclass(?)"
    if not views.query(ledger, ("batchlog_migrations",)):
        return None
    return [str(row["name"]) for row in views.query("SELECT name FROM batchlog_migrations")]


def _fold(
    projection: Projection, records: Sequence[Decoded], skipped: set[int]
) -> tuple[int, Exception] | None:
    """Apply records in order; the index and error of the first one that failed, or None."""
    for index, record in enumerate(records):
        if record.position in skipped:
            continue
        if isinstance(record, DecodeFailure):
            return index, record.error
        try:
            projection.apply(record)
        except Exception as error:
            return index, error
    return None
