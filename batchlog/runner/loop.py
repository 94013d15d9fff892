"""The Runner: wait for queue changes, claim the next item its backend supports, run it, record.

The store side is the `RunnerStore` port; the model side is the `InferenceBackend` protocol.
The backend runs in a worker thread so that the lease keeps being extended and a stop request
(SIGTERM) can release the item when the grace period is over, instead of leaving it claimed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchlog.domain.jobs import JOB_TYPES
from batchlog.runner.backend import (
    BackendError,
    BackendOutOfMemoryError,
    BatchOutcome,
    BatchTimeLimitError,
    InferenceBackend,
)
from batchlog.runner.liveness import LeaseKeeper, SessionHeartbeat
from batchlog.runner.ports import BatchFailure, ClaimedItem, FailureAction, RunnerStore

logger = logging.getLogger("batchlog.runner")
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunnerConfig:
    """How a runner leases, retries, waits and shuts down."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    backoff_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    lease_fraction: float = 1 / 3
    poll_seconds: float = 1.0
    grace_seconds: float = 30.0
    max_batch_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 < self.lease_fraction < 1:
            raise ValueError("lease_fraction must be between 0 and 1")
        if self.max_batch_seconds is not None and self.max_batch_seconds <= 0:
            raise ValueError("max_batch_seconds must be > 0 (or None for no limit)")


def backoff_delay(attempt: int, base_seconds: float, cap_seconds: float) -> float:
    """Exponential backoff before the next attempt: base, 2·base, 4·base, … capped."""
    return float(min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1)))


def decide_failure(
    error: BaseException, runs: int, attempt: int, max_attempts: int
) -> tuple[FailureAction, bool, bool]:
    """What to do with a failed batch: (action, retryable, out_of_memory).

    Out of memory with more than one run splits the batch in half; otherwise a retryable error
    is retried until the last attempt, and then the item is dead-lettered.
    """
    out_of_memory = isinstance(error, BackendOutOfMemoryError)
    retryable = error.retryable if isinstance(error, BackendError) else True
    if out_of_memory and runs > 1:
        return "split", True, True
    if retryable and attempt < max_attempts:
        return "retry", retryable, out_of_memory
    return "dead-letter", retryable, out_of_memory


@dataclass
class RunSummary:
    """Counters of one `Runner.run`, returned as a dict."""

    runner_id: str
    claimed: int = 0
    finished: int = 0
    succeeded_runs: int = 0
    failed_runs: int = 0
    retried: int = 0
    split: int = 0
    dead_lettered: int = 0
    released: int = 0
    abandoned: int = 0
    refused: int = 0
    reaped: int = 0
    settled: int = 0
    unsupported: int = 0
    backend_seconds: float = 0.0
    bookkeeping_seconds: float = 0.0
    batches: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as a plain dict."""
        total = self.backend_seconds + self.bookkeeping_seconds
        return {
            **self.__dict__,
            "batches": list(self.batches),
            "bookkeeping_share": (self.bookkeeping_seconds / total) if total else 0.0,
        }


class Runner:
    """Claims batches in queue order and drives a backend; loads the model once, keeps it warm."""

    def __init__(
        self,
        store: RunnerStore,
        backend: InferenceBackend,
        config: RunnerConfig | None = None,
        device: str = "cpu",
    ) -> None:
        self.store = store
        self.backend = backend
        self.config = config or RunnerConfig()
        self.device = str(getattr(backend, "device", device))
        self._loaded = False
        self._closed = False
        self._release_now = threading.Event()
        self._abandoned: threading.Thread | None = None
        self._heartbeat = SessionHeartbeat(
            store, self.config.lease_seconds, self.config.lease_seconds * self.config.lease_fraction
        )

    @property
    def runner_id(self) -> str:
        """This runner's id, as recorded on its claims."""
        return self.store.runner_id

    def run(
        self,
        until_idle: bool = False,
        stop_event: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Process items until stopped (or, with until_idle, until nothing is left); summarize."""
        stop = stop_event or threading.Event()
        progress = on_progress or (lambda _: None)
        summary = RunSummary(runner_id=self.runner_id)
        if not self._loaded:
            self.backend.load()
            self._loaded = True
        job_types: list[str] = [t for t in JOB_TYPES if self.backend.supports(t)]
        self.store.announce(self.backend.name, self.device, job_types, self.config.lease_seconds)
        self._heartbeat.restart()
        progress({"event": "started", "runner_id": self.runner_id, "job_types": job_types})
        try:
            while not stop.is_set():
                try:
                    if not self._step(until_idle, stop, summary, progress):
                        break
                except Exception as error:
                    if until_idle:
                        raise
                    logger.exception("runner step failed; retry in %s s", self.config.poll_seconds)
                    progress({"event": "error", "error": f"{type(error).__name__}: {error}"})
                    stop.wait(self.config.poll_seconds)
            summary.settled += self.store.settle_finished()
            summary.unsupported = self.store.outlook(self.backend.supports).unsupported
        finally:
            result = summary.as_dict()
            self.store.retire({k: v for k, v in result.items() if k != "batches"})
        progress({"event": "stopped", **{k: v for k, v in result.items() if k != "batches"}})
        return result

    def release_now(self) -> None:
        """Stop waiting for the current batch: release it at once (a second SIGTERM/SIGINT)."""
        self._release_now.set()

    def close(self) -> None:
        """Release the backend and the store."""
        if self._closed:
            return
        self._closed = True
        try:
            self.backend.close()
        finally:
            self.store.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _step(
        self,
        until_idle: bool,
        stop: threading.Event,
        summary: RunSummary,
        progress: ProgressCallback,
    ) -> bool:
        """Reap, claim and run one item, or wait; False when drain mode found nothing left."""
        began = time.perf_counter()
        summary.reaped += self.store.reap_expired()
        claimed = None
        if not self._backend_busy():
            claimed = self.store.claim_next(
                self.backend.supports, self.config.lease_seconds, self.backend.name, self.device
            )
        if claimed is not None:
            summary.bookkeeping_seconds += time.perf_counter() - began
            self._execute(claimed, stop, summary, progress)
            return True
        summary.settled += self.store.settle_finished()
        outlook = self.store.outlook(self.backend.supports)
        if until_idle and outlook.idle:
            return False
        self._heartbeat.beat_if_due()
        waits = [self.config.poll_seconds, self._heartbeat.seconds_until_due()]
        if self._abandoned is not None:  # nothing to claim before the backend returns
            self._abandoned.join(max(0.01, min(waits)))
            return True
        if outlook.next_not_before is not None:
            waits.append((outlook.next_not_before - datetime.now(UTC)).total_seconds())
        self.store.wait_for_change(max(0.01, min(waits)))
        return True

    def _backend_busy(self) -> bool:
        """Whether an abandoned batch's backend call still runs (no claims until it returns:
        a backend is not asked to run two batches at once)."""
        if self._abandoned is not None and not self._abandoned.is_alive():
            self._abandoned = None
        return self._abandoned is not None

    # ---- one item --------------------------------------------------------------------------

    def _execute(
        self,
        claimed: ClaimedItem,
        stop: threading.Event,
        summary: RunSummary,
        progress: ProgressCallback,
    ) -> None:
        summary.claimed += 1
        runs = len(claimed.batch.runs)
        progress(
            {
                "event": "claimed",
                "item_id": claimed.item_id,
                "runs": runs,
                "attempt": claimed.attempt,
            }
        )
        interval = self.config.lease_seconds * self.config.lease_fraction
        keeper = LeaseKeeper(self.store, claimed, self.config.lease_seconds, interval)
        keeper.start()
        began = time.perf_counter()
        try:
            result = self._run_backend(claimed, stop)
        finally:
            keeper.stop()
        backend_seconds = time.perf_counter() - began
        summary.backend_seconds += backend_seconds
        began = time.perf_counter()
        self._heartbeat.beat_if_due_or_log()  # before the item's lease stops counting
        if result is None:
            summary.released += int(self.store.release(claimed, "grace period over at shutdown"))
            progress({"event": "released", "item_id": claimed.item_id})
            return
        outcome, error = result
        if error is not None:
            self._record_failure(claimed, error, backend_seconds, summary, progress)
        else:
            assert outcome is not None
            recorded = self.store.record_outcome(claimed, outcome)
            if recorded.accepted:
                summary.finished += 1
                summary.succeeded_runs += recorded.succeeded
                summary.failed_runs += recorded.failed
            else:
                summary.refused += 1
            progress(
                {
                    "event": "finished" if recorded.accepted else "refused",
                    "item_id": claimed.item_id,
                    "runs": runs,
                    "succeeded": recorded.succeeded,
                    "failed": recorded.failed,
                    "seconds": outcome.seconds,
                }
            )
        bookkeeping = time.perf_counter() - began
        summary.bookkeeping_seconds += bookkeeping
        summary.batches.append(
            {
                "item_id": claimed.item_id,
                "runs": runs,
                "backend_seconds": backend_seconds,
                "record_seconds": bookkeeping,
            }
        )

    def _run_backend(
        self, claimed: ClaimedItem, stop: threading.Event
    ) -> tuple[BatchOutcome | None, BaseException | None] | None:
        """Run the batch in a worker thread; None when stopped and the grace period ran out."""
        holder: dict[str, Any] = {}

        def work() -> None:
            try:
                holder["outcome"] = self.backend.run_batch(claimed.batch)
            except BaseException as error:
                holder["error"] = error

        worker = threading.Thread(target=work, name=f"batch-{claimed.item_id}", daemon=True)
        worker.start()
        limit = self.config.max_batch_seconds
        time_limit = None if limit is None else time.monotonic() + limit
        deadline: float | None = None
        while worker.is_alive():
            worker.join(0.05 if deadline is None else 0.01)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.config.grace_seconds
            overdue = deadline is not None and time.monotonic() >= deadline
            if worker.is_alive() and (overdue or self._release_now.is_set()):
                return None
            if worker.is_alive() and time_limit is not None and time.monotonic() >= time_limit:
                assert limit is not None
                self._abandoned = worker
                return None, BatchTimeLimitError(limit)
        return holder.get("outcome"), holder.get("error")

    def _record_failure(
        self,
        claimed: ClaimedItem,
        error: BaseException,
        seconds: float,
        summary: RunSummary,
        progress: ProgressCallback,
    ) -> None:
        action, retryable, out_of_memory = decide_failure(
            error, len(claimed.batch.runs), claimed.attempt, self.config.max_attempts
        )
        not_before = None
        if action == "retry":
            delay = backoff_delay(
                claimed.attempt, self.config.backoff_seconds, self.config.backoff_cap_seconds
            )
            not_before = datetime.now(UTC) + timedelta(seconds=delay)
        failure = BatchFailure(
            error=f"{type(error).__name__}: {error}",
            retryable=retryable,
            out_of_memory=out_of_memory,
            seconds=seconds,
            action=action,
            not_before=not_before,
        )
        logger.warning("batch %s failed (%s): %s", claimed.item_id, action, failure.error)
        recorded = self.store.record_failure(claimed, failure)
        summary.abandoned += int(isinstance(error, BatchTimeLimitError))
        if not recorded.accepted:
            summary.refused += 1
        elif action == "retry":
            summary.retried += 1
        elif action == "split":
            summary.split += 1
        else:
            summary.dead_lettered += 1
        progress(
            {
                "event": action if recorded.accepted else "refused",
                "item_id": claimed.item_id,
                "error": failure.error,
                "attempt": claimed.attempt,
                "detail": recorded.detail,
            }
        )
