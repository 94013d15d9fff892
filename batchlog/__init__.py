"""batchlog: an event-sourced job queue for GPU video-generation inference with Smart Batching."""

from typing import TYPE_CHECKING, Any

from batchlog.domain.errors import (
    BatchlogError,
    ClaimSupersededError,
    ConcurrentUpdateError,
    ItemAlreadyClaimedError,
    JobNotCancellableError,
    NoAnalysisError,
    QueueNotPausedError,
    StaleAnalysisError,
    UnknownAnalysisError,
    UnknownJobError,
    UnknownPromptError,
    ValidationError,
    ViewLagError,
)

if TYPE_CHECKING:
    from batchlog.adapters.queue_service import QueueService


def __getattr__(name: str) -> Any:
    """QueueService, imported on first use: a process that only rebuilds views (a spawned
    replay worker) then starts without the service's imports."""
    if name == "QueueService":
        from batchlog.adapters.queue_service import QueueService

        return QueueService
    raise AttributeError(f"module 'batchlog' has no attribute {name!r}")


__all__ = [
    "BatchlogError",
    "ClaimSupersededError",
    "ConcurrentUpdateError",
    "ItemAlreadyClaimedError",
    "JobNotCancellableError",
    "NoAnalysisError",
    "QueueNotPausedError",
    "QueueService",
    "StaleAnalysisError",
    "UnknownAnalysisError",
    "UnknownJobError",
    "UnknownPromptError",
    "ValidationError",
    "ViewLagError",
]
