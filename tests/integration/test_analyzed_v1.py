"""Analyzed events (and queue snapshots) stored by batchlog before the compact v2 plan still read.

The fixture holds the rows that batchlog at commit 5061865 stored on SQLite (Analyzed
class_version 1: a list of full batches and the rendered preview; a v1 queue snapshot holding
such an analysis). They are put back into a fresh SQLite store as they were, and read by
today's code: upcast, they give the same batches, preview, history and reorganization.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from batchlog import QueueService
from batchlog.adapters.status import analysis_view
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.queue import Queue

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v1_analyzed_store.json"


def _stored(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(row["originator_id"]),
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=row["state"].encode(),
    )


@pytest.fixture
def v1_rows() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture
def v1_url(sqlite_url, settings, v1_rows) -> str:
    """A fresh SQLite store holding exactly the v1 rows."""
    with QueueService(sqlite_url, settings=settings) as service:
        service.store.recorder.insert_events([_stored(row) for row in v1_rows["events"]])
        assert service.store.snapshots is not None
        service.store.snapshots.recorder.insert_events(
            [_stored(row) for row in v1_rows["snapshots"]]
        )
    return sqlite_url


def v1_analyses(v1_rows, queue_name: str) -> list[dict[str, Any]]:
    """The stored v1 Analyzed states of a queue, oldest first, as the v1 code wrote them."""
    queue_id = queue_aggregate_id(queue_name)
    return [
        json.loads(row["state"])
        for row in v1_rows["events"]
        if UUID(row["originator_id"]) == queue_id and row["topic"] == Queue.Analyzed.TOPIC
    ]


def v1_view_batches(state: dict[str, Any]) -> list[dict[str, Any]]:
    """What v1's analyze returned as batches for a stored v1 analysis."""
    return [
        {"index": index, "size": len(batch["run_ids"]), **batch}
        for index, batch in enumerate(state["batches"], start=1)
    ]


def test_the_fixture_is_v1(v1_rows):
    (strict, mixed) = v1_analyses(v1_rows, "default")
    assert "class_version" not in strict and "preview" in strict
    assert {"run_ids", "parameters"} <= set(strict["batches"][0])
    # The second analysis is over batch jobs: run ids do not name their source job.
    sources = {j for b in mixed["batches"] for j in b["source_job_ids"]}
    assert sources and all(j.startswith("batch_") for j in sources)
    assert len({json.dumps(b["parameters"]) for b in strict["batches"]}) == 2


def test_v1_events_upcast_to_the_same_plan(v1_url, settings, v1_rows):
    with QueueService(v1_url, settings=settings) as service:
        events = [
            e
            for e in service.store.events.get(service.load_queue().id)
            if type(e).__name__ == "Analyzed"
        ]
    stored = v1_analyses(v1_rows, "default")
    assert len(events) == len(stored) == 2
    for event, old in zip(events, stored, strict=True):
        assert not hasattr(event, "preview") and not hasattr(event, "batches")
        columns = event.batch_columns
        assert columns["run_ids"] == [b["run_ids"] for b in old["batches"]]
        assert columns["source_job_ids"] == [b["source_job_ids"] for b in old["batches"]]
        assert columns["controls"] == [b["controls"] for b in old["batches"]]
        assert columns["priority"] == [b["priority"] for b in old["batches"]]
        assert columns["position"] == [b["position"] for b in old["batches"]]
        assert columns["estimated_seconds"] == [b["estimated_seconds"] for b in old["batches"]]
        assert [event.parameter_sets[i] for i in columns["parameter_set"]] == [
            b["parameters"] for b in old["batches"]
        ]
        assert (event.analysis_id, event.mode, event.efficiency) == (
            old["analysis_id"],
            old["mode"],
            old["efficiency"],
        )


@pytest.mark.parametrize("queue_name", ["default", "snapshotted"])
def test_a_fresh_v1_analysis_reads_previews_and_executes_as_before(
    v1_url, settings, v1_rows, queue_name
):
    latest = v1_analyses(v1_rows, queue_name)[-1]
    with QueueService(v1_url, settings=settings, queue_name=queue_name) as service:
        analysis = service.get_analysis()
        assert analysis is not None
        assert analysis["analysis_id"] == latest["analysis_id"]
        assert analysis["batches"] == v1_view_batches(latest)
        assert analysis["preview"] == latest["preview"]
        assert service.get_smart_batch_preview() == latest["preview"]
        result = service.execute_smart_batches()
        queue = service.load_queue()
        new_jobs = [queue.items[job_id] for job_id in result["batch_job_ids"]]
    assert [[run.run_id for run in job.runs] for job in new_jobs] == [
        b["run_ids"] for b in latest["batches"]
    ]
    assert [job.runs[0].parameters.to_payload() for job in new_jobs] == [
        b["parameters"] for b in latest["batches"]
    ]


def test_a_v1_queue_snapshot_upcasts_its_latest_analysis(v1_url, settings, v1_rows):
    latest = v1_analyses(v1_rows, "snapshotted")[-1]
    with QueueService(v1_url, settings=settings, queue_name="snapshotted") as service:
        assert service.store.snapshots is not None
        (snapshot,) = service.store.snapshots.get(queue_aggregate_id("snapshotted"))
        assert "class_version" not in snapshot.state
        queue = snapshot.mutate(None)
        assert queue.version == service.load_queue().version
        assert queue.latest_analysis is not None
        assert analysis_view(queue.latest_analysis, queue)["batches"] == v1_view_batches(latest)


def test_history_and_lineage_read_v1_analyses(v1_url, settings, v1_rows):
    stored = v1_analyses(v1_rows, "default") + v1_analyses(v1_rows, "snapshotted")
    job_id = stored[0]["batches"][0]["source_job_ids"][0]
    with QueueService(v1_url, settings=settings) as service:
        rows = [row for row in service.history(limit=1000) if row["event_type"] == "Analyzed"]
        lineage = service.lineage(job_id)
    assert len(rows) == len(stored) == 4
    for row, old in zip(rows, stored, strict=True):
        jobs = len({j for b in old["batches"] for j in b["source_job_ids"]})
        assert row["summary"] == (
            f"analysis {old['analysis_id']} ({old['mode']}, batch size 4): "
            f"{jobs} jobs → {len(old['batches'])} batches at sequence {old['based_on_sequence']}"
        )
    assert lineage["analyses"] == [stored[0]["analysis_id"]]
