"""View stores and hosts: projections' tables on SQLite/PostgreSQL, following the log."""

from batchlog.adapters.views.host import ProjectionHost
from batchlog.adapters.views.reads import ProjectionStoppedError, ViewReader
from batchlog.adapters.views.store import TrackingConflictError, ViewStore

__all__ = [
    "ProjectionHost",
    "ProjectionStoppedError",
    "TrackingConflictError",
    "ViewReader",
    "ViewStore",
]
