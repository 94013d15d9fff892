"""Read models: the current queue, the audit history, batching statistics (pure folds)."""

from __future__ import annotations

from collections.abc import Callable

from batchlog.projections.base import (
    Changes,
    EventRecord,
    InconsistentEventError,
    Projection,
    ProjectionError,
    Table,
    UnknownEventError,
)
from batchlog.projections.history_view import HistoryProjection
from batchlog.projections.queue_view import QueueProjection
from batchlog.projections.stats_view import StatsProjection

PROJECTIONS: dict[str, Callable[[], Projection]] = {
    QueueProjection.name: QueueProjection,
    HistoryProjection.name: HistoryProjection,
    StatsProjection.name: StatsProjection,
}
PROJECTION_NAMES: tuple[str, ...] = tuple(PROJECTIONS)

__all__ = [
    "PROJECTIONS",
    "PROJECTION_NAMES",
    "Changes",
    "EventRecord",
    "HistoryProjection",
    "InconsistentEventError",
    "Projection",
    "ProjectionError",
    "QueueProjection",
    "StatsProjection",
    "Table",
    "UnknownEventError",
]
