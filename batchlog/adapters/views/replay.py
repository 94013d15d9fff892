"""Replay: rebuild views from the log into scratch tables and compare them with the live views."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchlog.adapters.store import EventStore
from batchlog.adapters.views.decode import DecodeFailure, NotificationDecoder
from batchlog.adapters.views.read_ahead import Page, ReadAhead
from batchlog.adapters.views.store import SCRATCH_PREFIX, ViewStore
from batchlog.projections import PROJECTIONS
from batchlog.projections.base import Projection, ProjectionError, Table

FLUSH_EVERY = 5_000  # events; appended rows are written (and freed) after each page
PAGE_SIZE = 5_000


@dataclass
class RebuildResult:
    """What a rebuild read and wrote, and how long it took."""

    targets: dict[str, int]
    events: int = 0
    rows: int = 0
    seconds: float = 0.0


@dataclass
class VerifyReport:
    """The outcome of `replay --verify`: differences row by row (empty means equal)."""

    rebuild: RebuildResult
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every rebuilt view equals its live view."""
        return not self.differences


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
    decoder = NotificationDecoder(store.mapper)
    result = RebuildResult(targets=dict(targets))
    started = time.perf_counter()
    stop, pending = max(targets.values(), default=0), 0
    folds = [(targets[name], skipped[name], p.apply) for name, p in projections.items()]
    for page in _pages(store, stop, read_ahead=views.dialect == "postgres"):
        for notification in page:
            record = decoder.decode(notification)
            for target, skips, apply in folds:
                if record.position > target or record.position in skips:
                    continue
                if isinstance(record, DecodeFailure):
                    raise ProjectionError(
                        f"cannot decode event {record.position} ({record.topic}): {record.error}"
                    )
                apply(record)
        result.events += len(page)
        pending += len(page)
        if pending >= FLUSH_EVERY:
            result.rows += _flush(views, projections.values(), final=False)
            pending = 0
    result.rows += _flush(views, projections.values(), final=True)
    result.seconds = time.perf_counter() - started
    return result


def _pages(store: EventStore, stop: int, *, read_ahead: bool) -> Iterator[Page]:
    """The log up to `stop` in pages; the next page is read while the caller folds this one."""

    def read(start: int) -> Page:
        return store.recorder.select_notifications(
            start=start, limit=PAGE_SIZE, stop=stop, inclusive_of_start=False
        )

    position = 0
    with ReadAhead(read, enabled=read_ahead) as pages:
        while position < stop:
            page = pages.page(position)
            if not page:
                return
            position = page[-1].id
            if position < stop:
                pages.ahead(position)
            yield page


def _flush(views: ViewStore, projections: Iterable[Projection], *, final: bool) -> int:
    """Write appended rows now; keep upserted rows (last one wins) until the final flush, so
    each is written once, in bulk, into its empty scratch table."""
    written = 0
    with views.transaction() as cursor:
        for projection in projections:
            changes = projection.take_changes() if final else projection.take_inserts()
            written += changes.row_count()
            views.write(cursor, projection.tables, changes, prefix=SCRATCH_PREFIX, empty=True)
    return written


def verify(
    store: EventStore,
    views: ViewStore,
    names: Sequence[str],
    factories: dict[str, Callable[[], Projection]] | None = None,
    attempts: int = 3,
) -> VerifyReport:
    """Rebuild the named views at their live positions and report every differing row."""
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
