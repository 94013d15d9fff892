"""The error hierarchy: one root, small subclasses whose docstring is the default message."""

from __future__ import annotations


class BatchlogError(Exception):
    """A batchlog operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())


class ValidationError(BatchlogError):
    """The input is not valid."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NoAnalysisError(BatchlogError):
    """No analysis available. Run analyze_queue_for_smart_batching first."""


class StaleAnalysisError(BatchlogError):
    """Analysis is stale - queue has changed. Please re-analyze."""


class QueueNotPausedError(BatchlogError):
    """The queue is running. Pause it first with set_queue_paused(True)."""


class NothingToBatchError(BatchlogError):
    """No batchable jobs found."""


class UnknownJobError(BatchlogError):
    """No such job in the queue."""


class UnknownPromptError(BatchlogError):
    """No such prompt."""


class UnknownAnalysisError(BatchlogError):
    """No such analysis for this queue."""


class JobNotCancellableError(BatchlogError):
    """The job cannot be cancelled in its current state."""


class ItemAlreadyClaimedError(BatchlogError):
    """The item was claimed by another runner first."""


class ClaimSupersededError(BatchlogError):
    """This claim is no longer current: its lease expired or another runner holds the item."""


class ConcurrentUpdateError(BatchlogError):
    """The queue kept changing under this command; retries were exhausted."""


class ViewLagError(BatchlogError):
    """The read view did not catch up with your last write in time."""
