"""Replay: rebuild views from the log into scratch tables and compare them with the live views."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batchlog.adapters.store import EventStore, open_store
from batchlog.adapters.views.decode import DecodeFailure, LogRow, NotificationDecoder
from batchlog.adapters.views.log_rows import LogRows
from batchlog.adapters.views.read_ahead import ReadAhead
from batchlog.adapters.views.store import SCRATCH_PREFIX, ViewStore
from batchlog.adapters.views.workers import run_side_by_side, view_groups
from batchlog.domain.collector import collector_paused
from batchlog.projections import PROJECTIONS
from batchlog.projections.base import Changes, EventRecord, Projection, ProjectionError, Table

# Events per page read, and per write of the appended rows (which are then freed): 10,000 made
# half the statements of 5,000 and rebuilt 100k events 2-7% faster side by side; 20,000 no more.
FLUSH_EVERY = 10_000
PAGE_SIZE = 10_000


@dataclass
class RebuildResult:
    """What a rebuild read and wrote, and how long it took."""

    targets: dict[str, int]
    events: int = 0
    rows: int = 0
    seconds: float = 0.0
    finished_at: float = 0.0  # time.time() at the end: comparable across processes


@dataclass
class VerifyReport:
    """The outcome of `replay --verify`: differences row by row (empty means equal)."""

    rebuild: RebuildResult
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every rebuilt view equals its live view."""
        return not self.differences


def rebuild(database_url: str, targets: dict[str, int], jobs: int | None = None) -> RebuildResult:
    """Rebuild the views up to their targets: in `jobs` groups (default: as many as finish
    first for this length of log, see `view_groups`), each but the first in a worker process,
    each reading the log and writing its own scratch tables; 1: all here."""
    groups = view_groups(list(targets), jobs, max(targets.values(), default=0))
    if len(groups) == 1:
        return _rebuild_part(database_url, targets)
    started = time.time()
    parts = run_side_by_side(_rebuild_part, database_url, [_part(targets, g) for g in groups])
    return _merged(targets, parts, started)


def _part(targets: dict[str, int], names: Sequence[str]) -> dict[str, int]:
    return {name: targets[name] for name in names}


def _merged(
    targets: dict[str, int], parts: Sequence[RebuildResult], started: float
) -> RebuildResult:
    """One result for rebuilds that ran side by side (started at `started`, by time.time()):
    the log, read once per worker, counts once; they took until the last one finished."""
    events = max(part.events for part in parts)
    finished = max(part.finished_at for part in parts)
    rows = sum(part.rows for part in parts)
    return RebuildResult(dict(targets), events, rows, finished - started, finished)


def _rebuild_part(database_url: str, targets: dict[str, int]) -> RebuildResult:
    """A rebuild over connections of its own (a worker's body)."""
    store = open_store(database_url)
    try:
        with ViewStore(database_url) as views:
            return rebuild_into_scratch(store, views, targets)
    finally:
        store.close()


def rebuild_into_scratch(
    store: EventStore,
    views: ViewStore,
    targets: dict[str, int],
    factories: dict[str, Callable[[], Projection]] | None = None,
) -> RebuildResult:
    """Fold the log from the start into empty scratch tables, each view up to its target."""
    chosen = {**PROJECTIONS, **(factories or {})}
    projections = {name: chosen[name]() for name in targets}
    tables: list[Table] = [t for p in projections.values() for t in p.tables]
    views.create_scratch(tables)
    skipped = {name: {int(s["position"]) for s in views.skips(name)} for name in targets}
    result = RebuildResult(targets=dict(targets))
    started = time.perf_counter()
    with collector_paused():
        _fold_log(store, views, projections, targets, skipped, result)
    result.seconds = time.perf_counter() - started
    result.finished_at = time.time()
    return result


def _fold_log(
    store: EventStore,
    views: ViewStore,
    projections: dict[str, Projection],
    targets: dict[str, int],
    skipped: dict[str, set[int]],
    result: RebuildResult,
) -> None:
    """Fold every event up to the targets into the projections and write their rows."""
    decoder = NotificationDecoder(store.mapper)
    stop, pending = max(targets.values(), default=0), 0
    folds = [(targets[name], skipped[name], p.apply) for name, p in projections.items()]
    postgres = views.dialect == "postgres"
    with _Writer(views, background=postgres) as writer:
        for page in _pages(store, stop, read_ahead=postgres):
            _fold_page(decoder, page, folds)
            result.events += len(page)
            pending += len(page)
            if pending >= FLUSH_EVERY:
                writer.write(projections.values(), final=False)
                pending = 0
        writer.write(projections.values(), final=True)
    result.rows = writer.rows


def _fold_page(
    decoder: NotificationDecoder,
    page: Sequence[LogRow],
    folds: Sequence[tuple[int, set[int], Callable[[EventRecord], None]]],
) -> None:
    """Decode each row once and fold it into every view whose target it is within."""
    first, last = page[0][0], page[-1][0]
    if all(last <= target and not _any_within(skips, first, last) for target, skips, _ in folds):
        applies = [apply for _, _, apply in folds]  # the usual page: every view takes every event
        for row in page:
            record = decoder.decode_row(row)
            if isinstance(record, DecodeFailure):
                raise _undecodable(record)
            for apply in applies:
                apply(record)
        return
    for row in page:
        record = decoder.decode_row(row)
        for target, skips, apply in folds:
            if record.position > target or record.position in skips:
                continue
            if isinstance(record, DecodeFailure):
                raise _undecodable(record)
            apply(record)


def _any_within(positions: set[int], first: int, last: int) -> bool:
    return any(first <= position <= last for position in positions)


def _undecodable(failure: DecodeFailure) -> ProjectionError:
    return ProjectionError(
        f"cannot decode event {failure.position} ({failure.topic}): {failure.error}"
    )


def _pages(store: EventStore, stop: int, *, read_ahead: bool) -> Iterator[Sequence[LogRow]]:
    """The log up to `stop` in pages; the next page is read while the caller folds this one."""
    rows = LogRows(store)
    position = 0
    with ReadAhead(lambda start: rows.page(start, stop, PAGE_SIZE), enabled=read_ahead) as pages:
        while position < stop:
            page = pages.page(position)
            if not page:
                return
            position = page[-1][0]
            if position < stop:
                pages.ahead(position)
            yield page


class _Writer:
    """Writes the folded rows into the scratch tables: appended rows after each page, upserted
    rows (last one wins) once, at the end, each in bulk into its empty table.

    With `background` (PostgreSQL) a page's rows are written by a thread while the next pages
    are folded, so the fold does not wait for the server; one write at a time (one connection),
    and the final write waits for the one before it.
    """

    def __init__(self, views: ViewStore, *, background: bool) -> None:
        self._views = views
        self._pool = ThreadPoolExecutor(1, "batchlog-write") if background else None
        self._pending: Future[None] | None = None
        self.rows = 0  # written so far (read it after the final write)

    def write(self, projections: Iterable[Projection], *, final: bool) -> None:
        """Take the projections' rows now and write them (in the background unless final)."""
        batch = [
            (p.tables, p.take_changes(last=True) if final else p.take_inserts())
            for p in projections
        ]
        self._wait()
        if self._pool is not None and not final:
            self._pending = self._pool.submit(self._write, batch, final=False)
        else:
            self._write(batch, final=final)

    def _write(self, batch: Sequence[tuple[Sequence[Table], Changes]], *, final: bool) -> None:
        with self._views.transaction() as cursor:
            for tables, changes in batch:
                self.rows += self._views.write(
                    cursor, tables, changes, prefix=SCRATCH_PREFIX, empty=True
                )
            if final:
                self._views.seal_scratch(cursor, [t for ts, _ in batch for t in ts])

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def verify(
    store: EventStore,
    views: ViewStore,
    names: Sequence[str],
    factories: dict[str, Callable[[], Projection]] | None = None,
    attempts: int = 3,
    jobs: int | None = None,
) -> VerifyReport:
    """Rebuild the named views at their live positions and report every differing row; several
    views are rebuilt and compared in `jobs` worker processes (see `rebuild`), unless the
    projections are given as factories (those cannot leave this process)."""
    head = max((int(row["position"]) for row in views.tracking().values()), default=0)
    groups = view_groups(names, 1 if factories else jobs, head)
    if len(groups) > 1:
        started = time.time()
        parts = run_side_by_side(_verify_part, views.url, [dict.fromkeys(g, 0) for g in groups])
        targets = {n: t for part in parts for n, t in part.rebuild.targets.items()}
        rebuilds = [part.rebuild for part in parts]
        merged = _merged(_part(targets, names), rebuilds, started)
        return VerifyReport(merged, [d for part in parts for d in part.differences])
    chosen = {**PROJECTIONS, **(factories or {})}
    for _ in range(attempts):
        tracking = views.tracking()
        targets = {name: int(tracking[name]["position"]) for name in names}
        rebuilt = rebuild_into_scratch(store, views, targets, factories)
        with views.transaction(snapshot=True) as cursor:
            now = views.query("SELECT name, position FROM projection_tracking", (), cursor)
            if {r["name"]: int(r["position"]) for r in now if r["name"] in targets} != targets:
                continue  # a live host moved on while we rebuilt; rebuild at the new positions
            differences = [
                difference
                for name in names
                for table in chosen[name]().tables
                for difference in views.differences(table, cursor)
            ]
        return VerifyReport(rebuilt, differences)
    raise ProjectionError("the live views kept moving during verification; try again")


def _verify_part(database_url: str, targets: dict[str, int]) -> VerifyReport:
    """`verify` of some views over connections of their own (a worker's body)."""
    store = open_store(database_url)
    try:
        with ViewStore(database_url) as views:
            return verify(store, views, list(targets), jobs=1)
    finally:
        store.close()
