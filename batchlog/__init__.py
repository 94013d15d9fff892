"""batchlog: an event-sourced job queue for GPU video-generation inference with Smart Batching."""

from batchlog.adapters.queue_service import QueueService
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
