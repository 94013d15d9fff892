"""The Execution aggregate: one claimed attempt at a queue item, and what happened to its runs.

Outcomes live here, not in the queue stream, so completions never bump the queue's sequence (an
analysis under review stays fresh while running batches finish). Once an execution is
superseded (its lease expired and the item was requeued), it refuses every further result.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from batchlog.domain.errors import ClaimSupersededError

_EXECUTION_NAMESPACE = uuid.UUID("a3c9e0d4-5b6f-4a71-8e2d-9f0c1b2a3d4e")


def execution_aggregate_id(item_id: str, claim_token: str) -> UUID:
    """The id of the execution of one claim of one item."""
    return uuid.uuid5(_EXECUTION_NAMESPACE, f"{item_id}:{claim_token}")


class Execution(Aggregate):
    """One attempt at running a claimed queue item."""

    TOPIC = "batchlog.execution:Execution"

    class Event(Aggregate.Event):
        """Base class of the execution's events."""

        TOPIC = "batchlog.execution:Execution.Event"

    class Started(Event, Aggregate.Created):
        """A runner started executing a claimed item."""

        TOPIC = "batchlog.execution:Execution.Started"
        class_version = 1
        queue_name: str
        item_id: str
        claim_token: str
        runner_id: str
        attempt: int
        backend: str
        device: str
        run_ids: list[str]
        controls: list[str]
        parameters: dict[str, Any]
        lease_expires_at: datetime

    @staticmethod
    def create_id(item_id: str, claim_token: str, **_: Any) -> UUID:
        """Execution ids are derived from the item and the claim token."""
        return execution_aggregate_id(item_id, claim_token)

    @event(Started)
    def __init__(
        self,
        queue_name: str,
        item_id: str,
        claim_token: str,
        runner_id: str,
        attempt: int,
        backend: str,
        device: str,
        run_ids: list[str],
        controls: list[str],
        parameters: dict[str, Any],
        lease_expires_at: datetime,
    ) -> None:
        self.queue_name = queue_name
        self.item_id = item_id
        self.claim_token = claim_token
        self.runner_id = runner_id
        self.attempt = attempt
        self.backend = backend
        self.device = device
        self.run_ids = list(run_ids)
        self.controls = list(controls)
        self.parameters = dict(parameters)
        self.lease_expires_at = lease_expires_at
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.state = "running"
        self.refusals: list[dict[str, str]] = []

    @property
    def finished(self) -> bool:
        """Whether the execution reached an end (finished, failed or superseded)."""
        return self.state != "running"

    def _require_running(self) -> None:
        if self.state != "running":
            raise ClaimSupersededError(
                f"Execution of {self.item_id!r} (token {self.claim_token[:8]}) is {self.state}; "
                "its results are refused."
            )

    def extend_lease(self, lease_expires_at: datetime) -> None:
        """Keep the claim alive."""
        self._require_running()
        self._lease_extended(lease_expires_at=lease_expires_at)

    class LeaseExtended(Event):
        """The runner extended its lease."""

        TOPIC = "batchlog.execution:Execution.LeaseExtended"
        class_version = 1
        lease_expires_at: datetime

    @event(LeaseExtended)
    def _lease_extended(self, lease_expires_at: datetime) -> None:
        self.lease_expires_at = lease_expires_at

    def record_run_succeeded(
        self, run_id: str, prompt_id: str, output_path: str, sha256: str, seconds: float
    ) -> None:
        """Record one run's output."""
        self._require_running()
        self._check_run(run_id)
        self._run_succeeded(
            run_id=run_id,
            prompt_id=prompt_id,
            output_path=output_path,
            sha256=sha256,
            seconds=seconds,
        )

    class RunSucceeded(Event):
        """One run produced its output."""

        TOPIC = "batchlog.execution:Execution.RunSucceeded"
        class_version = 1
        run_id: str
        prompt_id: str
        output_path: str
        sha256: str
        seconds: float

    @event(RunSucceeded)
    def _run_succeeded(
        self, run_id: str, prompt_id: str, output_path: str, sha256: str, seconds: float
    ) -> None:
        self.outcomes[run_id] = {
            "ok": True,
            "output_path": output_path,
            "sha256": sha256,
            "seconds": seconds,
        }

    def record_run_failed(self, run_id: str, prompt_id: str, error: str, seconds: float) -> None:
        """Record that one run failed (e.g. its output is missing)."""
        self._require_running()
        self._check_run(run_id)
        self._run_failed(run_id=run_id, prompt_id=prompt_id, error=error, seconds=seconds)

    class RunFailed(Event):
        """One run failed."""

        TOPIC = "batchlog.execution:Execution.RunFailed"
        class_version = 1
        run_id: str
        prompt_id: str
        error: str
        seconds: float

    @event(RunFailed)
    def _run_failed(self, run_id: str, prompt_id: str, error: str, seconds: float) -> None:
        self.outcomes[run_id] = {"ok": False, "error": error, "seconds": seconds}

    def finish(
        self,
        seconds: float,
        device: str,
        peak_memory_bytes: int | None,
        finished_at: datetime,
    ) -> None:
        """Record the end of the batch with its measured time."""
        self._require_running()
        succeeded = sum(1 for outcome in self.outcomes.values() if outcome["ok"])
        self._finished(
            seconds=seconds,
            device=device,
            peak_memory_bytes=peak_memory_bytes,
            batch_size=len(self.run_ids),
            controls_computed=len(self.controls),
            succeeded=succeeded,
            failed=len(self.run_ids) - succeeded,
            finished_at=finished_at,
        )

    class Finished(Event):
        """The batch ended; measured seconds calibrate the cost model."""

        TOPIC = "batchlog.execution:Execution.Finished"
        class_version = 1
        seconds: float
        device: str
        peak_memory_bytes: int | None
        batch_size: int
        controls_computed: int
        succeeded: int
        failed: int
        finished_at: datetime

    @event(Finished)
    def _finished(
        self,
        seconds: float,
        device: str,
        peak_memory_bytes: int | None,
        batch_size: int,
        controls_computed: int,
        succeeded: int,
        failed: int,
        finished_at: datetime,
    ) -> None:
        self.state = "finished"

    def fail(self, error: str, retryable: bool, out_of_memory: bool, seconds: float) -> None:
        """Record that the whole batch failed."""
        self._require_running()
        self._failed(error=error, retryable=retryable, out_of_memory=out_of_memory, seconds=seconds)

    class Failed(Event):
        """The whole batch failed."""

        TOPIC = "batchlog.execution:Execution.Failed"
        class_version = 1
        error: str
        retryable: bool
        out_of_memory: bool
        seconds: float

    @event(Failed)
    def _failed(self, error: str, retryable: bool, out_of_memory: bool, seconds: float) -> None:
        self.state = "failed"

    def supersede(self, reason: str) -> None:
        """Mark this execution superseded (lease expired, item requeued); later results are refused."""
        if self.state == "running":
            self._superseded(reason=reason)

    class Superseded(Event):
        """The claim behind this execution is no longer current."""

        TOPIC = "batchlog.execution:Execution.Superseded"
        class_version = 1
        reason: str

    @event(Superseded)
    def _superseded(self, reason: str) -> None:
        self.state = "superseded"

    def refuse(
        self, runner_id: str, reason: str, outcomes: list[dict[str, Any]], refused_at: datetime
    ) -> None:
        """Record that a result for this execution arrived after it ended and was not applied."""
        if self.state == "running":
            raise ValueError("a running execution accepts its results; nothing to refuse")
        self._result_refused(
            runner_id=runner_id,
            reason=reason,
            state=self.state,
            outcomes=outcomes,
            refused_at=refused_at,
        )

    class ResultRefused(Event):
        """A late result (e.g. from a superseded token) was refused and not applied."""

        TOPIC = "batchlog.execution:Execution.ResultRefused"
        class_version = 1
        runner_id: str
        reason: str
        state: str
        outcomes: list[dict[str, Any]]
        refused_at: datetime

    @event(ResultRefused)
    def _result_refused(
        self,
        runner_id: str,
        reason: str,
        state: str,
        outcomes: list[dict[str, Any]],
        refused_at: datetime,
    ) -> None:
        self.refusals.append({"reason": reason, "state": state})

    def _check_run(self, run_id: str) -> None:
        if run_id not in self.run_ids:
            raise ValueError(f"run {run_id!r} is not part of this execution")
        if run_id in self.outcomes:
            raise ValueError(f"run {run_id!r} already has an outcome")
