"""The queue view: every queue's items in order with status, claim, lease and progress.

State held in memory is what later events can still touch: the queues, the items the queue
aggregate still holds (queued or claimed), the running executions, and the last items that
ended. Every item ever seen keeps its row in `queue_view_items` (nothing is deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from batchlog.domain.execution import Execution
from batchlog.domain.jobs import BATCHABLE_JOB_TYPES
from batchlog.domain.prompt import Prompt
from batchlog.domain.queue import DEFAULT_BATCH_SIZE, Queue
from batchlog.projections.added_jobs import added_jobs
from batchlog.projections.base import (
    EventRecord,
    InconsistentEventError,
    Projection,
    Row,
    Table,
    UnknownEventError,
    dumps,
    iso,
    stream_of,
)
from batchlog.projections.queue_executions import ExecutionFolding
from batchlog.projections.queue_tables import (
    _NO_CLAIM,
    CHECKPOINT_INTERVAL,
    CHECKPOINTS,
    EXECUTIONS,
    ITEM_SPLIT_TOPIC,
    ITEMS,
    ITEMS_SETTLED_TOPIC,
    QUEUES,
    RECENT_LIMIT,
    RESULT_REFUSED_TOPIC,
    recent_order,
)


class QueueProjection(ExecutionFolding, Projection):
    """Folds queue and execution events into the queue view."""

    name: ClassVar[str] = "queue"
    tables: ClassVar[tuple[Table, ...]] = (QUEUES, ITEMS, EXECUTIONS, CHECKPOINTS)

    def __init__(self, *, only_queue: str | None = None) -> None:
        super().__init__()
        self.only_queue = only_queue
        self.queues: dict[str, Row] = {}
        self.items: dict[str, Row] = {}
        self.executions: dict[str, Row] = {}
        self.recent: dict[str, list[Row]] = {}
        self._finite = True  # every event folded so far was `finite`: the state holds no NaN
        self._handlers: dict[str, Callable[[EventRecord], None]] = {
            Queue.Created.TOPIC: self._created,
            Queue.JobAdded.TOPIC: self._job_added,
            Queue.JobsAdded.TOPIC: self._job_added,
            Queue.JobCancelled.TOPIC: self._job_cancelled,
            Queue.Paused.TOPIC: self._paused,
            Queue.Resumed.TOPIC: self._resumed,
            Queue.BatchSizeSet.TOPIC: self._batch_size_set,
            Queue.Analyzed.TOPIC: self._analyzed,
            Queue.Reorganized.TOPIC: self._reorganized,
            Queue.ItemClaimed.TOPIC: self._item_claimed,
            Queue.ItemRequeued.TOPIC: self._item_requeued,
            Queue.ItemDeadLettered.TOPIC: self._item_dead_lettered,
            ITEM_SPLIT_TOPIC: self._item_split,
            ITEMS_SETTLED_TOPIC: self._items_settled,
            RESULT_REFUSED_TOPIC: _ignore,
            Execution.Started.TOPIC: self._started,
            Execution.LeaseExtended.TOPIC: self._lease_extended,
            Execution.RunSucceeded.TOPIC: self._run_outcome,
            Execution.RunFailed.TOPIC: self._run_outcome,
            Execution.Finished.TOPIC: self._finished,
            Execution.Failed.TOPIC: self._failed,
            Execution.Superseded.TOPIC: self._superseded,
            Prompt.Created.TOPIC: _ignore,
        }
        # the topics whose events also advance their queue's sequence
        self._sequenced = frozenset(
            topic
            for topic in self._handlers
            if stream_of(topic) == "queue" and topic != Queue.Created.TOPIC
        )

    # ---- folding ---------------------------------------------------------------------------

    def apply(self, event: EventRecord) -> None:
        """Fold one event; queue events also advance their queue's sequence."""
        if not event.finite:
            self._finite = False
        handler = self._handlers.get(event.topic)
        if handler is None:
            if event.stream not in {"queue", "execution"}:
                return  # prompts, runner sessions: nothing the queue view shows
            raise UnknownEventError(f"the queue view does not know event topic {event.topic!r}")
        if event.topic in self._sequenced:
            queue = self._queue(event)
            if queue is None:
                return
            handler(event)
            queue["sequence"] = event.sequence
            queue["updated_position"] = event.position
            self.upsert(QUEUES.name, queue)
            if event.sequence % CHECKPOINT_INTERVAL == 0:
                self._checkpoint(queue, event.position)
            return
        handler(event)

    def _queue(self, event: EventRecord) -> Row | None:
        queue = self.queues.get(event.originator_id)
        if queue is None:
            if self.only_queue is not None:
                return None
            raise InconsistentEventError(f"no queue {event.originator_id} in the view")
        return queue

    def _created(self, event: EventRecord) -> None:
        name = str(event.payload["name"])
        if self.only_queue is not None and name != self.only_queue:
            return
        queue: Row = {
            "queue_id": event.originator_id,
            "queue_name": name,
            "paused": 0,
            "batch_size": DEFAULT_BATCH_SIZE,
            "sequence": event.sequence,
            "latest_analysis_id": None,
            "analysis_sequence": None,
            "updated_position": event.position,
        }
        self.queues[event.originator_id] = queue
        self.recent.setdefault(name, [])
        self.upsert(QUEUES.name, queue)

    def _queue_name(self, event: EventRecord) -> str:
        return str(self.queues[event.originator_id]["queue_name"])

    def _item(self, job_id: str) -> Row:
        try:
            return self.items[job_id]
        except KeyError:
            raise InconsistentEventError(f"job {job_id!r} is not active in the view") from None

    def _save_item(self, item: Row, event: EventRecord) -> None:
        item["updated_position"] = event.position
        self.upsert(ITEMS.name, item)

    def _new_item(self, event: EventRecord, **fields: Any) -> Row:
        item: Row = {
            "queue_name": self._queue_name(event),
            "status": "queued",
            "active": 1,
            "options": {},
            "source_job_ids": [],
            "analysis_id": None,
            "merged_into": [],
            "attempt": 0,
            "outcome": None,
            "added_position": event.position,
            "added_index": 0,
            "ended_position": None,
            **_NO_CLAIM,
            **fields,
        }
        item["progress_total"] = len(item["runs"])
        self.items[item["job_id"]] = item
        self._save_item(item, event)
        return item

    def _job_added(self, event: EventRecord) -> None:
        for index, (minor, p) in enumerate(added_jobs(event.event_type, event.payload)):
            self._new_item(
                event,
                job_id=p["job_id"],
                job_type=p["job_type"],
                priority=int(p["priority"]),
                position_major=event.sequence,
                position_minor=minor,
                runs=list(p["runs"]),
                submitter=p["submitter"],
                options=dict(p.get("options") or {}),
                added_index=index,
            )

    def _end(self, item: Row, event: EventRecord, status: str, outcome: str) -> None:
        """The item ended (it may still be held by the aggregate until it is settled)."""
        recent = self.recent.setdefault(item["queue_name"], [])
        if item["ended_position"] is not None:
            recent[:] = [row for row in recent if row["job_id"] != item["job_id"]]
        item.update(status=status, outcome=outcome, ended_position=event.position)
        self._save_item(item, event)
        key = recent_order(item)
        if len(recent) >= RECENT_LIMIT and key > recent_order(recent[-1]):
            return  # older than everything kept
        index = 0
        while index < len(recent) and recent_order(recent[index]) < key:
            index += 1
        recent.insert(index, item)
        del recent[RECENT_LIMIT:]

    def _leave(self, item: Row, event: EventRecord) -> None:
        """The item left the aggregate's state; later events can no longer touch it."""
        item["active"] = 0
        self.items.pop(item["job_id"], None)
        self._save_item(item, event)

    def _job_cancelled(self, event: EventRecord) -> None:
        item = self._item(event.payload["job_id"])
        reason = event.payload.get("reason") or ""
        self._end(item, event, "cancelled", f"cancelled by {event.payload['actor']}: {reason}")
        self._leave(item, event)

    def _paused(self, event: EventRecord) -> None:
        self.queues[event.originator_id]["paused"] = 1

    def _resumed(self, event: EventRecord) -> None:
        self.queues[event.originator_id]["paused"] = 0

    def _batch_size_set(self, event: EventRecord) -> None:
        self.queues[event.originator_id]["batch_size"] = int(event.payload["batch_size"])

    def _analyzed(self, event: EventRecord) -> None:
        queue = self.queues[event.originator_id]
        queue["latest_analysis_id"] = event.payload["analysis_id"]
        queue["analysis_sequence"] = event.sequence

    def _reorganized(self, event: EventRecord) -> None:
        p = event.payload
        retired = [self._item(job_id) for job_id in p["retired_job_ids"]]
        runs = {run["run_id"]: run for item in retired for run in item["runs"]}
        submitters = {item["job_id"]: item["submitter"] for item in retired}
        merged: dict[str, list[str]] = {}
        for new in p["new_jobs"]:
            for job_id in new["source_job_ids"]:
                merged.setdefault(job_id, []).append(new["job_id"])
        for item in retired:
            item["merged_into"] = merged.get(item["job_id"], [])
            targets = ", ".join(item["merged_into"]) or "nothing"
            self._end(item, event, "retired", f"merged into {targets} by {p['analysis_id']}")
            self._leave(item, event)
        for index, new in enumerate(p["new_jobs"]):
            self._new_item(
                event,
                job_id=new["job_id"],
                job_type="batch_inference",
                priority=int(new["priority"]),
                position_major=int(new["position"][0]),
                position_minor=int(new["position"][1]),
                runs=[runs[run_id] for run_id in new["run_ids"]],
                submitter=", ".join(dict.fromkeys(submitters[j] for j in new["source_job_ids"])),
                source_job_ids=list(new["source_job_ids"]),
                analysis_id=p["analysis_id"],
                added_index=index,
            )
        queue = self.queues[event.originator_id]
        queue["latest_analysis_id"] = None
        queue["analysis_sequence"] = None

    def _item_claimed(self, event: EventRecord) -> None:
        p = event.payload
        self._settle(list(p.get("settled_job_ids") or []), event)
        item = self._item(p["job_id"])
        item.update(
            status="claimed",
            attempt=int(p["attempt"]),
            claimed_by=p["runner_id"],
            claim_token=p["claim_token"],
            claimed_at=iso(p["claimed_at"]),
            lease_expires_at=iso(p["lease_expires_at"]),
            claimed_position=event.position,
            not_before=None,
            execution_id=None,
            progress_done=0,
            progress_failed=0,
            progress_total=len(item["runs"]),
            outcome=None,
        )
        self._save_item(item, event)

    def _item_requeued(self, event: EventRecord) -> None:
        p = event.payload
        item = self._item(p["job_id"])
        if item["ended_position"] is not None:
            recent = self.recent.get(item["queue_name"], [])
            recent[:] = [row for row in recent if row["job_id"] != item["job_id"]]
        item.update(
            _NO_CLAIM,
            status="queued",
            not_before=iso(p.get("not_before")),
            outcome=f"requeued after attempt {p['attempt']}: {p['reason']}",
            ended_position=None,
            progress_total=len(item["runs"]),
        )
        self._save_item(item, event)

    def _item_dead_lettered(self, event: EventRecord) -> None:
        p = event.payload
        item = self._item(p["job_id"])
        self._end(item, event, "dead_lettered", f"{p['reason']}: {p['error']}")
        self._leave(item, event)

    def _item_split(self, event: EventRecord) -> None:
        p = event.payload
        parent = self._item(p["job_id"])
        runs = {run["run_id"]: run for run in parent["runs"]}
        halves = [half["job_id"] for half in p["new_jobs"]]
        self._end(parent, event, "split", f"split into {', '.join(halves)}: {p['reason']}")
        self._leave(parent, event)
        batchable = parent["job_type"] in BATCHABLE_JOB_TYPES
        for index, half in enumerate(p["new_jobs"]):
            position = half["position"]
            if isinstance(position, int):  # a bare major position, as in JobAdded
                position = [position, 0]
            self._new_item(
                event,
                job_id=half["job_id"],
                job_type="batch_inference" if batchable else parent["job_type"],
                priority=int(half.get("priority", parent["priority"])),
                position_major=int(position[0]),
                position_minor=int(position[1]),
                runs=[runs[run_id] for run_id in half["run_ids"]],
                submitter=parent["submitter"],
                options=dict(parent["options"]),
                source_job_ids=list(parent["source_job_ids"]) or [parent["job_id"]],
                analysis_id=parent["analysis_id"],
                added_index=index,
            )

    def _items_settled(self, event: EventRecord) -> None:
        self._settle(event.payload["job_ids"], event)

    def _settle(self, job_ids: list[str], event: EventRecord) -> None:
        """Items whose execution ended leave the aggregate's state (the view shows them done)."""
        for job_id in job_ids:
            settled = self.items.get(job_id)
            if settled is None:
                continue
            if settled["ended_position"] is None:
                self._end(settled, event, "done", "settled without a recorded finish")
            self._leave(settled, event)

    # ---- state in and out ------------------------------------------------------------------

    def _checkpoint(self, queue: Row, position: int) -> None:
        if not self.record_changes:
            return
        self.insert(
            CHECKPOINTS.name,
            {
                "queue_name": queue["queue_name"],
                "sequence": queue["sequence"],
                "position": position,
                "state": dumps(self.state_of(queue["queue_name"]), finite=self._finite),
            },
        )

    def state_of(self, queue_name: str) -> dict[str, Any]:
        """The in-memory state that belongs to one queue, as plain JSON-ready data."""
        return {
            "queues": [q for q in self.queues.values() if q["queue_name"] == queue_name],
            "items": [i for i in self.items.values() if i["queue_name"] == queue_name],
            "executions": [e for e in self.executions.values() if e["queue_name"] == queue_name],
            "recent": list(self.recent.get(queue_name, [])),
        }

    def restore(self, rows: Mapping[str, list[Row]]) -> None:
        """Load queues, active items, running executions and recent items."""
        self._finite = False  # values read back from JSON text may be NaN
        self.queues = {row["queue_id"]: dict(row) for row in rows.get("queues", [])}
        self.items = {row["job_id"]: dict(row) for row in rows.get("items", [])}
        self.executions = {row["execution_id"]: dict(row) for row in rows.get("executions", [])}
        self.recent = {q["queue_name"]: [] for q in self.queues.values()}
        for row in sorted(rows.get("recent", []), key=recent_order):
            shared = self.items.get(row["job_id"], dict(row))
            bucket = self.recent.setdefault(row["queue_name"], [])
            if len(bucket) < RECENT_LIMIT:
                bucket.append(shared)

    def queue_named(self, queue_name: str) -> Row | None:
        """The queue row with this name, if the view holds it."""
        return next((q for q in self.queues.values() if q["queue_name"] == queue_name), None)


def _ignore(_: EventRecord) -> None:
    """An event this view does not need."""
