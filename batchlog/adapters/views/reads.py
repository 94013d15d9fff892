"""Reads from the views: queue status (read-your-writes), history, lineage, stats, time travel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from batchlog.adapters.store import EventStore
from batchlog.adapters.views.decode import Decoded, DecodeFailure, LogRow
from batchlog.adapters.views.host import ProjectionHost
from batchlog.adapters.views.log_rows import LogRows
from batchlog.domain.collector import collector_paused
from batchlog.domain.errors import UnknownJobError, ValidationError, ViewLagError
from batchlog.domain.ids import queue_aggregate_id
from batchlog.projections.base import ProjectionError
from batchlog.projections.history_view import history_entry, undecodable_entry
from batchlog.projections.lineage import build_lineage, descendants
from batchlog.projections.queue_status import queue_status, status_from_projection
from batchlog.projections.queue_view import ITEMS, QueueProjection
from batchlog.projections.stats_view import batch_stat

VIEW_WAIT_SECONDS = 2.0
LINEAGE_DEPTH = 32


class ProjectionStoppedError(ViewLagError):
    """A view stopped at an event it could not apply; see `batchlog projections status`."""


class ViewReader:
    """Catches the views up (in this process) and reads them."""

    def __init__(
        self,
        database_url: str,
        *,
        store: EventStore | None = None,
        wait_seconds: float = VIEW_WAIT_SECONDS,
    ) -> None:
        self.host = ProjectionHost(database_url, store=store)
        self.views = self.host.views
        self._log = LogRows(self.host.store)
        self.wait_seconds = wait_seconds

    def close(self) -> None:
        """Close the host and its connections."""
        self.host.close()

    def _caught_up(self, name: str) -> None:
        self.host.catch_up([name])
        stopped = self.host.stopped_at(name)
        if stopped is not None:
            raise ProjectionStoppedError(
                f"The {name} view stopped at event {stopped['position']} ({stopped['topic']}): "
                f"{stopped['message']}. See `batchlog projections status`, then "
                f"`batchlog projections retry {name}` or `skip`."
            )

    # ---- the queue -------------------------------------------------------------------------

    def queue_status(self, queue_name: str, min_sequence: int = 0) -> dict[str, Any]:
        """The queue from its view, once the view holds at least min_sequence (bounded wait)."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            self._caught_up("queue")
            status = self._read_queue(queue_name)
            if status["sequence"] >= min_sequence:
                return status
            if time.monotonic() > deadline:
                raise ViewLagError(
                    f"The queue view is at sequence {status['sequence']} but your last write "
                    f"was sequence {min_sequence}; it did not catch up within "
                    f"{self.wait_seconds:.1f}s. Check `batchlog projections status`."
                )
            time.sleep(0.02)

    def _read_queue(self, queue_name: str) -> dict[str, Any]:
        with self.views.transaction(snapshot=True) as cursor:
            queues = self.views.query(
                "SELECT * FROM queue_view_queues WHERE queue_name = ?", (queue_name,), cursor
            )
            items = self.views.query(
                "SELECT * FROM queue_view_items WHERE queue_name = ? AND active = 1",
                (queue_name,),
                cursor,
            )
            recent = self.views.query(
                "SELECT * FROM queue_view_items WHERE queue_name = ? "
                "AND ended_position IS NOT NULL ORDER BY ended_position DESC, job_id LIMIT 50",
                (queue_name,),
                cursor,
            )
        parse = ViewReader._item
        return queue_status(
            queue_name, queues[0] if queues else None, map(parse, items), map(parse, recent)
        )

    @staticmethod
    def _item(row: dict[str, Any]) -> dict[str, Any]:
        for column in ITEMS.json_columns:
            row[column] = json.loads(row[column])
        return row

    def queue_at(self, queue_name: str, sequence: int) -> dict[str, Any]:
        """The queue exactly as it was right after `sequence` was written."""
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
            raise ValidationError(
                "sequence", f"must be a queue sequence number >= 1, got {sequence!r}"
            )
        projection = QueueProjection(only_queue=queue_name)
        projection.record_changes = False
        position = 0
        checkpoint = self.views.query(
            "SELECT position, state FROM queue_view_checkpoints WHERE queue_name = ? "
            "AND sequence <= ? ORDER BY sequence DESC LIMIT 1",
            (queue_name, sequence),
        )
        if checkpoint:
            projection.restore(json.loads(checkpoint[0]["state"]))
            position = int(checkpoint[0]["position"])
        reached = projection.queue_named(queue_name)
        if reached is not None and int(reached["sequence"]) == sequence:
            return status_from_projection(projection, queue_name)
        queue_id = str(queue_aggregate_id(queue_name))
        skipped = {int(s["position"]) for s in self.views.skips("queue")}
        recorder, decoder = self.host.store.recorder, self.host.decoder
        while True:
            page = recorder.select_notifications(
                start=position, limit=2000, inclusive_of_start=False
            )
            for notification in page:
                record = decoder.decode(notification)
                if record.position in skipped:
                    continue
                if isinstance(record, DecodeFailure):
                    raise ProjectionError(
                        f"cannot decode event {record.position} ({record.topic}): {record.error}"
                    )
                ours = record.stream == "queue" and record.originator_id == queue_id
                if record.stream == "queue" and not ours:
                    continue
                if ours and record.sequence > sequence:
                    return status_from_projection(projection, queue_name)
                projection.apply(record)
                if ours and record.sequence == sequence:
                    return status_from_projection(projection, queue_name)
            if len(page) < 2000:
                break
            position = page[-1].id
        head = projection.queue_named(queue_name)
        raise ValidationError(
            "sequence",
            f"queue {queue_name!r} has no sequence {sequence}; its head is "
            f"{head['sequence'] if head else 0}",
        )

    # ---- history, lineage, stats -----------------------------------------------------------

    def history(
        self, job_id: str | None = None, since: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Events in log order (after global position `since`), optionally of one job."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", f"must be a positive integer, got {limit!r}")
        self._caught_up("history")
        with collector_paused():  # every row and entry made survives until the call returns
            after = int(since or 0)
            if job_id is None:
                rows = self.views.query(
                    "SELECT * FROM history_events WHERE position > ? ORDER BY position LIMIT ?",
                    (after, limit),
                )
            else:
                rows = self.views.query(
                    "SELECT h.* FROM history_event_jobs j JOIN history_events h "
                    "ON h.position = j.position WHERE j.job_id = ? AND j.position > ? "
                    "ORDER BY j.position LIMIT ?",
                    (job_id, after, limit),
                )
            return self._with_events(rows)

    def _with_events(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """History rows, each with its event's originator, topic and payload from the log."""
        found = {row[0]: row for row in self._log.at([int(row["position"]) for row in rows])}
        decode = self.host.decoder.decode_row
        return [_history_row(row, found.get(int(row["position"])), decode) for row in rows]

    def lineage(self, job_id: str) -> dict[str, Any]:
        """Where a job came from and went: merges, claims, each run's outcome and checksum."""
        rows = {row["position"]: row for row in self._decoded_history(job_id)}
        if not rows:
            raise UnknownJobError(f"No job {job_id!r} in the history.")
        seen, todo = {job_id}, descendants(job_id, rows.values())
        for _ in range(LINEAGE_DEPTH):
            if not todo:
                break
            following: list[str] = []
            for related in todo:
                if related in seen:
                    continue
                seen.add(related)
                related_rows = self._decoded_history(related)
                rows.update((row["position"], row) for row in related_rows)
                following += descendants(related, related_rows)
            todo = following
        return build_lineage(job_id, list(rows.values()))

    def _decoded_history(self, job_id: str) -> list[dict[str, Any]]:
        """Every history entry of a job, each with its payload: a lineage read from entries
        missing some would be silently incomplete, so an undecodable one stops it."""
        rows = self.history(job_id=job_id, limit=1_000_000)
        for row in rows:
            if "decode_error" in row:
                raise ProjectionError(
                    f"the lineage of {job_id} needs event {row['position']}, which this process "
                    f"cannot read: {row['decode_error']}"
                )
        return rows

    def batch_stats(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One row per finished execution, oldest first (the last `limit` when given)."""
        self._caught_up("stats")
        statement = (
            "SELECT * FROM stats_batches WHERE state = 'finished' ORDER BY finished_position"
        )
        if limit is None:
            rows = self.views.query(statement)
        else:
            rows = self.views.query(statement + " DESC LIMIT ?", (int(limit),))[::-1]
        return [batch_stat(row) for row in rows]


def _history_row(
    row: dict[str, Any], event: LogRow | None, decode: Callable[[LogRow], Decoded]
) -> dict[str, Any]:
    if event is None:
        raise ProjectionError(f"the history holds event {row['position']}, which the log does not")
    record = decode(event)
    if isinstance(record, DecodeFailure):  # the rest of the history stays readable
        error = f"cannot decode event {record.position} ({record.topic}): {record.error}"
        return undecodable_entry(row, record.topic, str(event[1]), error)
    return history_entry(row, record)
