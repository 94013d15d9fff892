"""What the runner needs of the store: claim, extend, record, release, reap — as a Protocol.

The runner depends on this port only; `batchlog.adapters.execution_service` implements it on
the event store, so `batchlog.runner` never imports an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from batchlog.runner.backend import BatchInput, BatchOutcome

FailureAction = Literal["retry", "split", "dead-letter"]
JobTypeFilter = Callable[[str], bool]


@dataclass(frozen=True)
class ClaimedItem:
    """An item this runner holds: its claim token, attempt, lease and the batch to run."""

    item_id: str
    job_type: str
    claim_token: str
    attempt: int
    lease_expires_at: datetime
    batch: BatchInput


@dataclass(frozen=True)
class BatchFailure:
    """Why a whole batch failed, and what the runner decided to do about it."""

    error: str
    retryable: bool
    out_of_memory: bool
    seconds: float
    action: FailureAction
    not_before: datetime | None = None


@dataclass(frozen=True)
class RecordResult:
    """Whether an outcome was applied (False: the claim was superseded and the result refused)."""

    accepted: bool
    succeeded: int = 0
    failed: int = 0
    detail: str = ""


@dataclass(frozen=True)
class QueueOutlook:
    """What is left for this runner: whether the queue is paused, and what waits for whom."""

    paused: bool
    runnable_now: int
    waiting_for_backoff: int
    in_flight: int
    unsupported: int
    next_not_before: datetime | None = None

    @property
    def idle(self) -> bool:
        """Nothing this runner could take now or later, and nothing in flight that may return."""
        if self.paused:
            return True
        return self.runnable_now == 0 and self.waiting_for_backoff == 0 and self.in_flight == 0


class RunnerStore(Protocol):
    """The store operations a runner performs; every write is one transaction."""

    runner_id: str

    def claim_next(
        self, supports: JobTypeFilter, lease_seconds: float, backend: str, device: str
    ) -> ClaimedItem | None:
        """Claim the next runnable item in queue order (and start its Execution), or None."""
        ...

    def extend_lease(self, claimed: ClaimedItem, lease_seconds: float) -> bool:
        """Push the lease out; False when the claim was superseded."""
        ...

    def record_outcome(self, claimed: ClaimedItem, outcome: BatchOutcome) -> RecordResult:
        """Record each run's outcome and the end of the batch, or refuse a superseded result."""
        ...

    def record_failure(self, claimed: ClaimedItem, failure: BatchFailure) -> RecordResult:
        """Record a failed batch and requeue, split or dead-letter the item in the same save."""
        ...

    def release(self, claimed: ClaimedItem, reason: str) -> bool:
        """Give the item back to the queue (shutdown); False when it was no longer ours."""
        ...

    def reap_expired(self) -> int:
        """Requeue items whose lease expired (their executions superseded); return how many."""
        ...

    def settle_finished(self) -> int:
        """Remove finished items from the queue when it is running; return how many."""
        ...

    def outlook(self, supports: JobTypeFilter) -> QueueOutlook:
        """What is left in the queue for a runner with this backend."""
        ...

    def announce(
        self, backend: str, device: str, job_types: list[str], lease_seconds: float
    ) -> None:
        """Record that this runner started, which job types it claims, and its first heartbeat."""
        ...

    def renew_session(self, lease_seconds: float) -> None:
        """Record that this runner is alive while it holds no item (its heartbeat)."""
        ...

    def retire(self, summary: dict[str, Any]) -> None:
        """Record that this runner stopped, with its summary."""
        ...

    def wait_for_change(self, timeout: float) -> None:
        """Block until the store may have changed (a notification or a poll interval)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
