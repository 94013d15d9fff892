"""Measured execution history, read from the event log: it calibrates the cost model.

`ExecutionHistory` follows the Execution streams of one queue in the notification log
(incrementally: each refresh reads only notifications it has not seen) and keeps one record per
execution. `Calibration` is the QueueService coefficient source: it fits the cost model from the
finished executions (see `batchlog.domain.cost_model.fit_coefficients`).

The log, not a view, is read on purpose: the estimate then never depends on a projection's lag,
and a control-set change can be derived from the order in which a runner finished its batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from batchlog.adapters.store import EventStore, translate_store_errors
from batchlog.domain.cost_model import BatchObservation, CostCoefficients, fit_coefficients
from batchlog.domain.execution import Execution

_TOPICS = (
    Execution.Started.TOPIC,
    Execution.Finished.TOPIC,
    Execution.Failed.TOPIC,
    Execution.Superseded.TOPIC,
)
_PAGE = 500


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution of a queue item as the log tells it."""

    item_id: str
    runner_id: str
    attempt: int
    backend: str
    device: str
    controls: tuple[str, ...]
    parameters: dict[str, Any]
    batch_size: int
    state: str = "running"
    seconds: float | None = None
    error: str | None = None
    control_set_changed: bool = False

    def observation(self) -> BatchObservation | None:
        """The measured batch for the cost model (only finished executions are measurements)."""
        if self.state != "finished" or self.seconds is None:
            return None
        return BatchObservation(
            backend=self.backend,
            device=self.device,
            num_steps=int(self.parameters.get("num_steps", 0)),
            width=int(self.parameters.get("width", 0)),
            height=int(self.parameters.get("height", 0)),
            frames=int(self.parameters.get("frames", 0)),
            batch_size=self.batch_size,
            controls_computed=len(self.controls),
            seconds=float(self.seconds),
            control_set_changed=self.control_set_changed,
        )


class ExecutionHistory:
    """The executions of one queue, followed incrementally in the notification log."""

    def __init__(self, store: EventStore, queue_name: str) -> None:
        self.store = store
        self.queue_name = queue_name
        self._position = 0
        self._records: dict[UUID, ExecutionRecord] = {}
        self._order: list[UUID] = []
        self._last_finished_by_runner: dict[str, tuple[tuple[str, ...], tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the execution events appended since the last refresh."""
        with self._lock, translate_store_errors():
            # Read up to the head as it is now, then start after it next time, so the other
            # events in between are scanned once, not at every analysis.
            head = self.store.recorder.max_notification_id() or 0
            while self._position < head:
                page = self.store.recorder.select_notifications(
                    self._position, _PAGE, stop=head, topics=_TOPICS, inclusive_of_start=False
                )
                for notification in page:
                    self._apply(self.store.mapper.to_domain_event(notification))
                    self._position = notification.id
                if len(page) < _PAGE:
                    self._position = head

    def records(self) -> list[ExecutionRecord]:
        """Every execution seen, in the order they started."""
        self.refresh()
        return [self._records[key] for key in self._order]

    def observations(self) -> list[BatchObservation]:
        """The finished executions as cost-model observations."""
        self.refresh()
        return [o for r in self._records.values() if (o := r.observation()) is not None]

    def by_item(self, item_ids: Iterable[str]) -> dict[str, list[ExecutionRecord]]:
        """The executions of these items (every attempt, oldest first)."""
        wanted = set(item_ids)
        found: dict[str, list[ExecutionRecord]] = {item: [] for item in wanted}
        for record in self.records():
            if record.item_id in wanted:
                found[record.item_id].append(record)
        return found

    def _apply(self, event: Any) -> None:
        key = event.originator_id
        if isinstance(event, Execution.Started):
            if event.queue_name != self.queue_name:
                return
            self._records[key] = ExecutionRecord(
                item_id=event.item_id,
                runner_id=event.runner_id,
                attempt=event.attempt,
                backend=event.backend,
                device=event.device,
                controls=tuple(event.controls),
                parameters=dict(event.parameters),
                batch_size=len(event.run_ids),
            )
            self._order.append(key)
            return
        record = self._records.get(key)
        if record is None:
            return
        if isinstance(event, Execution.Finished):
            signature = (record.controls, _bucket(record.parameters))
            previous = self._last_finished_by_runner.get(record.runner_id)
            self._last_finished_by_runner[record.runner_id] = signature
            self._records[key] = replace(
                record,
                state="finished",
                seconds=float(event.seconds),
                device=event.device or record.device,
                batch_size=int(event.batch_size),
                control_set_changed=previous is not None and previous != signature,
            )
        elif isinstance(event, Execution.Failed):
            self._records[key] = replace(
                record, state="failed", seconds=float(event.seconds), error=event.error
            )
        elif isinstance(event, Execution.Superseded):
            self._records[key] = replace(record, state="superseded", error=event.reason)


class Calibration:
    """QueueService's coefficient source: the cost model fitted from this queue's history."""

    def __init__(
        self, history: ExecutionHistory, backend: str | None = None, device: str | None = None
    ) -> None:
        self.history = history
        self.backend = backend
        self.device = device

    def __call__(self) -> CostCoefficients:
        """Fit now from everything finished so far."""
        return fit_coefficients(self.history.observations(), self.backend, self.device)


def _bucket(parameters: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(parameters.get(k) for k in ("model", "num_steps", "width", "height", "frames"))
