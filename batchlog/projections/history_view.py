"""The history view: one row per event (position, sequence, time, type, actor, jobs, summary),
and an index from each job id to the events that touched it (written by the database from each
row's job ids, see `Table.expands`).

A row holds what the fold works out; the event itself (its originator, topic and payload) is
read from the log, which holds it, when the history is read: copying every payload into the view
was most of what a rebuild of it cost. It records every event, known or not, so the audit trail
never has holes; an event type it has no summary for is still recorded and read with its payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from batchlog.domain.execution import Execution
from batchlog.domain.prompt import Prompt
from batchlog.domain.queue import Queue
from batchlog.projections.base import (
    EventRecord,
    Projection,
    Row,
    Table,
    as_read_back,
    dumps_texts,
    loads_texts,
    source_job_of,
    stream_of,
)
from batchlog.projections.queue_tables import ITEM_SPLIT_TOPIC, ITEMS_SETTLED_TOPIC

RUNNER_STARTED_TOPIC = "batchlog.runner:RunnerSession.Started"
RUNNER_STOPPED_TOPIC = "batchlog.runner:RunnerSession.Stopped"
RUNNER_RENEWED_TOPIC = "batchlog.runner:RunnerSession.LeaseRenewed"

EVENTS = Table(
    "history_events",
    key=("position",),
    columns=("position", "sequence", "recorded_at", "event_type", "actor", "job_ids", "summary"),
    append_only=True,
)
EVENT_JOBS = Table(
    "history_event_jobs",
    key=("job_id", "position"),
    columns=("job_id", "position"),
    append_only=True,
    expands=(EVENTS.name, "job_ids"),  # the database writes a row per job id of each event
)
HISTORY_EXECUTIONS = Table(
    "history_executions",
    key=("execution_id",),
    columns=("execution_id", "queue_name", "item_id", "runner_id", "ended"),
)

Described = tuple[str, list[str], str]  # actor, job ids, summary
_ENDINGS = frozenset({"Finished", "Failed", "Superseded"})  # execution events that end it


class HistoryProjection(Projection):
    """Folds every event into an audit row, indexed by the jobs it touched."""

    name: ClassVar[str] = "history"
    tables: ClassVar[tuple[Table, ...]] = (EVENTS, EVENT_JOBS, HISTORY_EXECUTIONS)

    def __init__(self) -> None:
        super().__init__()
        self.executions: dict[str, Row] = {}
        self._topics: dict[str, tuple[str, str]] = {}  # topic → (stream, event type)
        self._describers: dict[str, Callable[[EventRecord], Described]] = {
            Queue.Created.TOPIC: lambda e: ("", [], f"queue {e.payload['name']!r} created"),
            Queue.JobAdded.TOPIC: _job_added,
            Queue.JobsAdded.TOPIC: _jobs_added,
            Queue.JobCancelled.TOPIC: lambda e: (
                e.payload["actor"],
                [e.payload["job_id"]],
                f"cancelled {e.payload['job_id']}" + _reason(e),
            ),
            Queue.Paused.TOPIC: lambda e: (e.payload["actor"], [], "queue paused" + _reason(e)),
            Queue.Resumed.TOPIC: lambda e: (e.payload["actor"], [], "queue resumed" + _reason(e)),
            Queue.BatchSizeSet.TOPIC: lambda e: (
                e.payload["actor"],
                [],
                f"batch size {e.payload['previous']} → {e.payload['batch_size']}",
            ),
            Queue.Analyzed.TOPIC: _analyzed,
            Queue.Reorganized.TOPIC: _reorganized,
            Queue.ItemClaimed.TOPIC: _claimed,
            Queue.ItemRequeued.TOPIC: lambda e: (
                str(e.payload.get("actor", "")),
                [e.payload["job_id"]],
                f"requeued {e.payload['job_id']} after attempt {e.payload['attempt']}" + _reason(e),
            ),
            Queue.ItemDeadLettered.TOPIC: lambda e: (
                str(e.payload.get("actor", "")),
                [e.payload["job_id"]],
                f"dead-lettered {e.payload['job_id']} after attempt {e.payload['attempt']}: "
                f"{e.payload['reason']}: {e.payload['error']}",
            ),
            ITEM_SPLIT_TOPIC: _split,
            ITEMS_SETTLED_TOPIC: lambda e: (
                e.payload["actor"],
                list(e.payload["job_ids"]),
                f"settled {', '.join(e.payload['job_ids'])} (their executions ended)",
            ),
            RUNNER_STARTED_TOPIC: lambda e: (
                e.payload["runner_id"],
                [],
                f"runner {e.payload['runner_id']} started on {e.payload['backend']}/"
                f"{e.payload['device']} for {', '.join(e.payload['job_types'])}",
            ),
            RUNNER_STOPPED_TOPIC: lambda e: ("", [], "runner stopped"),
            RUNNER_RENEWED_TOPIC: lambda e: (
                "",
                [],
                f"runner heartbeat (lease {e.payload['lease_seconds']:g} s)",
            ),
            Prompt.Created.TOPIC: lambda e: (
                str(e.payload.get("actor", "")),
                [],
                f"prompt {e.payload['prompt_id']} registered: {_short(e.payload['text'])}",
            ),
            Execution.Started.TOPIC: self._started,
        }

    def apply(self, event: EventRecord) -> None:
        """Record the event's row (the database indexes it under every job it touched)."""
        topic = self._topics.get(event.topic)
        if topic is None:
            topic = self._topics[event.topic] = (event.stream, event.event_type)
        stream, event_type = topic
        describe = self._describers.get(event.topic)
        if describe is not None:
            actor, job_ids, summary = describe(event)
        elif stream == "execution":
            actor, job_ids, summary = self._execution_event(event, event_type)
        else:
            actor, job_ids, summary = "", [], f"{event_type} (no summary for this type)"
        if len(job_ids) > 1:
            job_ids = list(dict.fromkeys(job_ids))
        self.insert(
            EVENTS.name,
            {
                "position": event.position,
                "sequence": event.sequence,
                "recorded_at": event.recorded_at,
                "event_type": event_type,
                "actor": actor,
                "job_ids": dumps_texts(job_ids),
                "summary": summary,
            },
        )

    def _started(self, event: EventRecord) -> Described:
        p = event.payload
        execution: Row = {
            "execution_id": event.originator_id,
            "queue_name": p["queue_name"],
            "item_id": p["item_id"],
            "runner_id": p["runner_id"],
            "ended": 0,
        }
        self.executions[event.originator_id] = execution
        self.upsert(HISTORY_EXECUTIONS.name, execution)
        return (
            p["runner_id"],
            [p["item_id"]],
            f"{p['runner_id']} started {p['item_id']} attempt {p['attempt']} "
            f"({len(p['run_ids'])} runs on {p['backend']}/{p['device']})",
        )

    def _execution_event(self, event: EventRecord, event_type: str) -> Described:
        execution = self.executions.get(event.originator_id)
        if execution is None:
            return "", [], f"{event_type} of an execution the history has not seen start"
        p, item_id, runner = event.payload, execution["item_id"], execution["runner_id"]
        job_ids = [item_id]
        match event_type:
            case "RunSucceeded":
                job_ids.append(source_job_of(p["run_id"]))
                summary = (
                    f"run {p['run_id']} of {item_id} succeeded in {float(p['seconds']):.2f}s: "
                    f"{p['output_path']} sha256 {str(p['sha256'])[:12]}"
                )
            case "RunFailed":
                job_ids.append(source_job_of(p["run_id"]))
                summary = f"run {p['run_id']} of {item_id} failed: {p['error']}"
            case "Finished":
                summary = (
                    f"{item_id} finished: {p['succeeded']}/{p['batch_size']} runs succeeded "
                    f"in {float(p['seconds']):.2f}s on {p['device']}"
                )
            case "Failed":
                kind = "out of memory" if p.get("out_of_memory") else "error"
                summary = f"{item_id} failed ({kind}, retryable={p['retryable']}): {p['error']}"
            case "Superseded":
                summary = f"execution of {item_id} superseded: {p['reason']}"
            case "LeaseExtended":
                summary = f"lease on {item_id} extended to {p['lease_expires_at']}"
            case "ResultRefused":
                runner = p["runner_id"]
                summary = (
                    f"late result from {runner} for {item_id} refused "
                    f"(execution {p['state']}): {p['reason']}"
                )
            case _:
                summary = f"{event_type} of {item_id}"
        if event_type in _ENDINGS and not execution["ended"]:
            execution["ended"] = 1
            self.upsert(HISTORY_EXECUTIONS.name, execution)
        return runner, job_ids, summary

    def restore(self, rows: Mapping[str, list[Row]]) -> None:
        """Load every execution (late events of ended ones still name their item)."""
        self.executions = {row["execution_id"]: dict(row) for row in rows.get("executions", [])}


def history_entry(row: Row, event: EventRecord) -> dict[str, Any]:
    """A history row as it is read: the stored row, with its event's originator, topic and
    payload (the payload as JSON text would give it back: datetimes as ISO text)."""
    payload = as_read_back(dict(event.payload), finite=event.finite)
    return _entry(row, event.topic, event.originator_id, payload)


def undecodable_entry(row: Row, topic: str, originator_id: str, error: str) -> dict[str, Any]:
    """A history row whose event the reading process cannot decode (e.g. it lacks a cipher key
    or a transcoding the writer had): all the view holds, no payload, and why."""
    return {**_entry(row, topic, originator_id, None), "decode_error": error}


def _entry(row: Row, topic: str, originator_id: str, payload: Any) -> dict[str, Any]:
    return {
        "position": int(row["position"]),
        "sequence": int(row["sequence"]),
        "stream": stream_of(topic),
        "originator_id": originator_id,
        "timestamp": row["recorded_at"],
        "topic": topic,
        "event_type": row["event_type"],
        "actor": row["actor"],
        "job_ids": loads_texts(row["job_ids"]),
        "summary": row["summary"],
        "payload": payload,
    }


def _reason(event: EventRecord) -> str:
    reason = event.payload.get("reason") or ""
    return f": {reason}" if reason else ""


def _short(text: Any, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _job_added(event: EventRecord) -> Described:
    p = event.payload
    runs = len(p["runs"])
    summary = (
        f"added {p['job_id']} ({p['job_type']}, {runs} run{'s' * (runs != 1)}, "
        f"priority {p['priority']}) by {p['submitter']}"
    )
    return p["submitter"], [p["job_id"]], summary


def _jobs_added(event: EventRecord) -> Described:
    p = event.payload
    job_ids = [job["job_id"] for job in p["jobs"]]
    runs = sum(len(job["runs"]) for job in p["jobs"])
    shown = ", ".join(job_ids[:3]) + (f" … {job_ids[-1]}" if len(job_ids) > 3 else "")
    summary = (
        f"added {len(job_ids)} jobs ({shown}; {runs} runs) by {p['submitter']} in one bulk add"
    )
    return p["submitter"], job_ids, summary


def _analyzed(event: EventRecord) -> Described:
    p = event.payload
    batches = p["batch_columns"]["source_job_ids"]
    sources = [job for batch in batches for job in batch]
    summary = (
        f"analysis {p['analysis_id']} ({p['mode']}, batch size {p['batch_size']}): "
        f"{len(dict.fromkeys(sources))} jobs → {len(batches)} batches "
        f"at sequence {p['based_on_sequence']}"
    )
    return p["actor"], sources, summary


def _reorganized(event: EventRecord) -> Described:
    p = event.payload
    new_ids = [new["job_id"] for new in p["new_jobs"]]
    summary = (
        f"reorganized by {p['analysis_id']}: retired {len(p['retired_job_ids'])} jobs, "
        f"created {', '.join(new_ids)}"
    )
    return p["actor"], [*p["retired_job_ids"], *new_ids], summary


def _claimed(event: EventRecord) -> Described:
    p = event.payload
    settled = list(p.get("settled_job_ids") or [])
    summary = f"{p['runner_id']} claimed {p['job_id']} (attempt {p['attempt']})"
    if settled:
        summary += f"; settled {', '.join(settled)}"
    return p["runner_id"], [p["job_id"], *settled], summary


def _split(event: EventRecord) -> Described:
    p = event.payload
    halves = [half["job_id"] for half in p["new_jobs"]]
    summary = f"split {p['job_id']} into {', '.join(halves)}" + _reason(event)
    return str(p.get("actor", "")), [p["job_id"], *halves], summary
