"""The runner's store side on the event store: claims, leases, outcomes, failures, the reaper.

Every write is one `save(...)`, which is one transaction: a claim appends `ItemClaimed` at the
queue's expected version together with the new Execution's `Started`; the reaper's
`ItemRequeued(lease-expired)` and the old Execution's `Superseded` commit together, so a late
result either lands before the requeue (and the requeue fails) or is refused afterwards.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from batchlog.adapters.batch_inputs import build_batch_input, checked_outcome, refused_payload
from batchlog.adapters.store import EventStore, load_or_create_queue, translate_store_errors
from batchlog.adapters.wakeup import Waiter
from batchlog.domain.errors import ClaimSupersededError
from batchlog.domain.execution import Execution, execution_aggregate_id
from batchlog.domain.ids import (
    new_batch_job_id,
    new_claim_token,
    queue_aggregate_id,
)
from batchlog.domain.jobs import QueueItem
from batchlog.domain.prompt import Prompt
from batchlog.domain.queue import Queue
from batchlog.domain.runner_session import RunnerSession
from batchlog.runner.backend import BatchOutcome
from batchlog.runner.ports import (
    BatchFailure,
    ClaimedItem,
    JobTypeFilter,
    QueueOutlook,
    RecordResult,
)

T = TypeVar("T")
WRITE_RETRIES = 30
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class ExecutionService:
    """Implements the runner's `RunnerStore` port for one queue on one event store."""

    def __init__(
        self,
        store: EventStore,
        queue_name: str,
        runner_id: str,
        artifacts_dir: Path,
        waiter: Waiter,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.queue_name = queue_name
        self.runner_id = runner_id
        self.artifacts_dir = Path(artifacts_dir)
        self.waiter = waiter
        self.clock = clock
        self._queue_id = queue_aggregate_id(queue_name)
        self._lock = threading.RLock()
        self._session_id: UUID | None = None
        self._session: RunnerSession | None = None
        self._prompts: dict[str, Prompt] = {}

    # ---- claiming ------------------------------------------------------------------------

    def claim_next(
        self, supports: JobTypeFilter, lease_seconds: float, backend: str, device: str
    ) -> ClaimedItem | None:
        """Claim the next runnable item in queue order (and start its Execution), or None."""
        for _ in range(WRITE_RETRIES):
            with self._lock:
                queue = self._load_queue()
                if queue.paused:
                    return None
                now = self.clock()
                candidate = next(
                    (i for i in queue.queued_in_order() if supports(i.job_type) and _ready(i, now)),
                    None,
                )
                if candidate is None:
                    return None
                token = new_claim_token()
                lease = now + timedelta(seconds=lease_seconds)
                batch = build_batch_input(
                    self.store, candidate, candidate.attempt + 1, self.artifacts_dir, self._prompts
                )
                settled = self._finished_claims(queue)
                try:
                    item = queue.claim(candidate.job_id, self.runner_id, token, now, lease, settled)
                    execution = Execution(
                        queue_name=self.queue_name,
                        item_id=item.job_id,
                        claim_token=token,
                        runner_id=self.runner_id,
                        attempt=item.attempt,
                        backend=backend,
                        device=device,
                        run_ids=[run.run_id for run in item.runs],
                        controls=list(batch.controls),
                        parameters=batch.parameters.to_payload(),
                        lease_expires_at=lease,
                    )
                    self._save(queue, execution)
                except IntegrityError:
                    pass
                except BaseException:
                    self._evict(self._queue_id)
                    raise
                else:
                    return ClaimedItem(
                        item.job_id, item.job_type, token, item.attempt, lease, batch
                    )
            _jitter()
        return None

    def outlook(self, supports: JobTypeFilter) -> QueueOutlook:
        """What is left in the queue for a runner with this backend."""
        with self._lock:
            queue = self._load_queue()
            now = self.clock()
            runnable = waiting = unsupported = 0
            next_not_before: datetime | None = None
            for item in queue.queued_in_order():
                if not supports(item.job_type):
                    unsupported += 1
                elif _ready(item, now):
                    runnable += 1
                else:
                    waiting += 1
                    assert item.not_before is not None
                    next_not_before = min(next_not_before or item.not_before, item.not_before)
            finished = set(self._finished_claims(queue))
            in_flight = sum(
                1
                for item in queue.claimed()
                if item.job_id not in finished and supports(item.job_type)
            )
            return QueueOutlook(
                queue.paused, runnable, waiting, in_flight, unsupported, next_not_before
            )

    # ---- while running -------------------------------------------------------------------

    def extend_lease(self, claimed: ClaimedItem, lease_seconds: float) -> bool:
        """Push the lease out; False when the claim was superseded."""

        def command() -> bool:
            execution = self._execution(claimed)
            if execution.state != "running":
                return False
            execution.extend_lease(self.clock() + timedelta(seconds=lease_seconds))
            self._save(execution)
            return True

        return self._retrying(claimed, command)

    def record_outcome(self, claimed: ClaimedItem, outcome: BatchOutcome) -> RecordResult:
        """Record each run's outcome and the end of the batch, or refuse a superseded result."""
        reported = {run.run_id: run for run in outcome.runs}
        checked = [checked_outcome(run, reported.get(run.run_id)) for run in claimed.batch.runs]

        def command() -> RecordResult:
            execution = self._execution(claimed)
            if execution.state != "running":
                return self._refuse(execution, [refused_payload(c) for c in checked])
            for run, result in zip(claimed.batch.runs, checked, strict=True):
                if result.ok:
                    assert result.output_path is not None and result.sha256 is not None
                    execution.record_run_succeeded(
                        run.run_id, run.prompt_id, result.output_path, result.sha256, result.seconds
                    )
                else:
                    execution.record_run_failed(
                        run.run_id, run.prompt_id, result.error or "failed", result.seconds
                    )
            execution.finish(
                seconds=outcome.seconds,
                device=outcome.device,
                peak_memory_bytes=outcome.peak_memory_bytes,
                finished_at=self.clock(),
            )
            self._save(execution)
            succeeded = sum(1 for c in checked if c.ok)
            return RecordResult(True, succeeded, len(checked) - succeeded)

        return self._retrying(claimed, command)

    def record_failure(self, claimed: ClaimedItem, failure: BatchFailure) -> RecordResult:
        """Record a failed batch and requeue, split or dead-letter the item in the same save."""

        def command() -> RecordResult:
            queue = self._load_queue()
            execution = self._execution(claimed)
            if execution.state != "running":
                return self._refuse(execution, [{"error": failure.error}])
            execution.fail(failure.error, failure.retryable, failure.out_of_memory, failure.seconds)
            detail = ""
            match failure.action:
                case "retry":
                    queue.requeue(
                        claimed.item_id, claimed.claim_token, "failure", failure.not_before
                    )
                    detail = f"retry after {failure.not_before.isoformat() if failure.not_before else 'now'}"
                case "split":
                    halves = queue.split_item(
                        claimed.item_id,
                        claimed.claim_token,
                        "out-of-memory",
                        [new_batch_job_id(), new_batch_job_id()],
                    )
                    detail = " + ".join(str(len(h["run_ids"])) for h in halves) + " runs"
                case "dead-letter":
                    reason = "out-of-memory" if failure.out_of_memory else "failure"
                    queue.dead_letter(claimed.item_id, claimed.claim_token, reason, failure.error)
                    detail = f"dead-lettered after attempt {claimed.attempt}"
            self._save(queue, execution)
            return RecordResult(True, 0, len(claimed.batch.runs), detail)

        return self._retrying(claimed, command)

    def release(self, claimed: ClaimedItem, reason: str) -> bool:
        """Give the item back to the queue (shutdown); False when it was no longer ours."""

        def command() -> bool:
            queue = self._load_queue()
            execution = self._execution(claimed)
            if execution.state != "running":
                return False
            queue.requeue(claimed.item_id, claimed.claim_token, "released", None)
            execution.supersede(f"released by {self.runner_id}: {reason}")
            self._save(queue, execution)
            return True

        return self._retrying(claimed, command)

    # ---- housekeeping --------------------------------------------------------------------

    def reap_expired(self) -> int:
        """Requeue items whose lease expired (their executions superseded); return how many."""
        reaped = 0
        with self._lock:
            now = self.clock()
            queue = self._load_queue()
            expired = [
                item
                for item in queue.claimed()
                if item.claim is not None and item.claim.lease_expires_at <= now
            ]
            for item in expired:
                assert item.claim is not None
                execution = self._execution_of(item)
                if execution is not None and (
                    execution.state != "running" or execution.lease_expires_at > now
                ):
                    continue
                try:
                    queue.requeue(item.job_id, item.claim.token, "lease-expired", None)
                    if execution is None:  # claimed without an Execution: nothing to supersede
                        self._save(queue)
                    else:
                        execution.supersede(
                            f"lease expired at {execution.lease_expires_at.isoformat()}; "
                            f"requeued by {self.runner_id}"
                        )
                        self._save(queue, execution)
                except (IntegrityError, ClaimSupersededError):
                    break
                reaped += 1
                queue = self._load_queue()
        return reaped

    def settle_finished(self) -> int:
        """Remove finished items from the queue when it is running; return how many."""
        with self._lock:
            queue = self._load_queue()
            if queue.paused:
                return 0
            finished = self._finished_claims(queue)
            if not finished:
                return 0
            try:
                settled = queue.settle(finished, actor=self.runner_id)
                self._save(queue)
            except IntegrityError:
                return 0
            return len(settled)

    def announce(
        self, backend: str, device: str, job_types: list[str], lease_seconds: float
    ) -> None:
        """Record that this runner started, which job types it claims, and its first heartbeat."""
        now = self.clock()
        session = RunnerSession(
            runner_id=self.runner_id,
            queue_name=self.queue_name,
            backend=backend,
            device=device,
            job_types=job_types,
            started_at=now,
        )
        session.renew(now, lease_seconds)
        self._save(session)
        self._session_id = session.id
        self._session = session

    def renew_session(self, lease_seconds: float) -> None:
        """Record that this runner is alive while it holds no item (its heartbeat)."""
        self._update_session(lambda session: session.renew(self.clock(), lease_seconds))

    def retire(self, summary: dict[str, Any]) -> None:
        """Record that this runner stopped, with its summary."""
        self._update_session(lambda session: session.stop(self.clock(), summary))
        self._session_id = None

    def wait_for_change(self, timeout: float) -> None:
        """Block until the store may have changed (a notification or a poll interval)."""
        self.waiter.wait(timeout)

    def close(self) -> None:
        """Close the waiter and the store."""
        try:
            self.waiter.close()
        finally:
            self.store.close()

    # ---- internals -----------------------------------------------------------------------

    def _update_session(self, command: Callable[[RunnerSession], None]) -> None:
        """Apply a command to this runner's open session and save it (nothing when none is open).

        The session stays in memory: loading it would replay one event per heartbeat of its
        life. After a failed save it is loaded again, as its unsaved event is gone.
        """
        with self._lock:
            if self._session_id is None:
                return
            if self._session is None:
                self._session = self.store.repository.get(self._session_id)
            command(self._session)
            try:
                self._save(self._session)
            except BaseException:
                self._session = None
                raise

    def _finished_claims(self, queue: Queue) -> list[str]:
        finished = []
        for item in queue.claimed():
            execution = self._execution_of(item)
            if execution is not None and execution.state == "finished":
                finished.append(item.job_id)
        return finished

    def _execution_of(self, item: QueueItem) -> Execution | None:
        if item.claim is None:
            return None
        try:
            execution: Execution = self.store.repository.get(
                execution_aggregate_id(item.job_id, item.claim.token)
            )
        except AggregateNotFoundError:
            return None
        return execution

    def _execution(self, claimed: ClaimedItem) -> Execution:
        execution: Execution = self.store.repository.get(
            execution_aggregate_id(claimed.item_id, claimed.claim_token)
        )
        return execution

    def _refuse(self, execution: Execution, outcomes: list[dict[str, Any]]) -> RecordResult:
        reason = f"claim {execution.claim_token[:8]} is {execution.state}; result not applied"
        execution.refuse(self.runner_id, reason, outcomes, self.clock())
        self._save(execution)
        return RecordResult(False, 0, 0, reason)

    def _load_queue(self) -> Queue:
        return load_or_create_queue(self.store, self.queue_name)

    def _save(self, *aggregates: Any) -> None:
        try:
            with translate_store_errors():
                self.store.save(*aggregates)
        except BaseException:
            for aggregate in aggregates:
                self._evict(aggregate.id)
            raise

    def _evict(self, aggregate_id: UUID) -> None:
        cache = self.store.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _retrying(self, claimed: ClaimedItem, command: Callable[[], T]) -> T:
        """Run a write command, retrying on version conflicts; never keep half-applied state."""
        for attempt in range(WRITE_RETRIES):
            with self._lock:
                try:
                    return command()
                except BaseException as error:
                    self._evict(self._queue_id)
                    self._evict(execution_aggregate_id(claimed.item_id, claimed.claim_token))
                    if not isinstance(error, IntegrityError) or attempt == WRITE_RETRIES - 1:
                        raise
            _jitter()
        raise AssertionError("unreachable")


def _ready(item: QueueItem, now: datetime) -> bool:
    return item.not_before is None or item.not_before <= now


def _jitter() -> None:
    time.sleep(random.uniform(0.001, 0.01))
