"""The queue fold against the queue aggregate itself, for generated command sequences."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, given, settings

from batchlog.adapters.status import item_view
from batchlog.projections import queue_view
from batchlog.projections.base import _jsonable
from batchlog.projections.queue_status import status_from_projection
from batchlog.projections.queue_view import QueueProjection
from tests.workload import World, commands

JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)
COMPARED_KEYS = (
    "id",
    "position",
    "type",
    "status",
    "prompt_ids",
    "runs",
    "controls",
    "weights_list",
    "seeds",
    "parameters",
    "priority",
    "submitter",
    "source_job_ids",
    "analysis_id",
    "attempt",
)


def _fold(world: World) -> tuple[QueueProjection, dict[str, dict]]:
    projection = QueueProjection()
    rows: dict[str, dict] = {}
    for record in world.records:
        projection.apply(record)
        for row in projection.take_changes().upserts.get("queue_view_items", {}).values():
            rows[row["job_id"]] = row
    return projection, rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_queue_fold_agrees_with_the_aggregate_and_keeps_every_run_in_one_place(script):
    world = World()
    world.run(script)
    projection, rows = _fold(world)
    status = status_from_projection(projection, "default")
    queue = world.queue

    assert status["sequence"] == queue.version
    assert status["paused"] == queue.paused
    assert status["batch_size"] == queue.batch_size
    expected_queued = [item_view(item, i) for i, item in enumerate(queue.queued_in_order(), 1)]
    assert [{k: e[k] for k in COMPARED_KEYS} for e in status["queued_jobs"]] == [
        {k: e[k] for k in COMPARED_KEYS} for e in expected_queued
    ]
    finished = {ex.item_id for ex in world.executions.values() if ex.state == "finished"}
    expected_running = {item.job_id for item in queue.claimed()} - finished
    assert {entry["id"] for entry in status["running"]} == expected_running
    for entry in status["running"]:
        claim = queue.items[entry["id"]].claim
        assert claim is not None
        assert entry["claimed_by"] == claim.runner_id

    places = Counter(
        run["run_id"]
        for row in rows.values()
        if row["status"] not in {"retired", "split"}
        for run in row["runs"]
    )
    assert set(places) == world.all_run_ids()
    assert all(count == 1 for count in places.values()), places.most_common(3)


@settings(max_examples=60, deadline=None)
@given(commands)
def test_restoring_from_a_checkpoint_state_continues_the_same_fold(script):
    world = World()
    world.run(script)
    half = len(world.records) // 2
    whole, _ = _fold(world)
    first = QueueProjection()
    for record in world.records[:half]:
        first.apply(record)
    resumed = QueueProjection()
    resumed.restore(first.state_of("default"))
    for record in world.records[half:]:
        resumed.apply(record)
    assert status_from_projection(resumed, "default") == status_from_projection(whole, "default")


def test_a_running_item_carries_its_progress_from_execution_events():
    world = World()
    world.run([("add", 1), ("claim", 0), ("start", 0), ("run_ok", 0)])
    projection, _ = _fold(world)
    (running,) = status_from_projection(projection, "default")["running"]
    assert running["progress"] == {"done": 1, "failed": 0, "total": 2}
    assert running["claimed_by"] == "runner0"


def test_a_finished_item_leaves_running_and_shows_in_recent_with_its_outcome():
    world = World()
    world.run([("add", 0), ("claim", 0), ("start", 0), ("run_ok", 0), ("finish", 0)])
    projection, _ = _fold(world)
    status = status_from_projection(projection, "default")
    assert status["running"] == []
    (recent,) = status["recent"]
    assert recent["status"] == "done"
    assert recent["outcome"].startswith("1/1 runs succeeded")


def test_a_batch_with_a_failed_run_is_not_reported_done():
    world = World()
    world.run([("add", 0), ("claim", 0), ("start", 0), ("run_failed", 0), ("finish", 0)])
    projection, _ = _fold(world)
    (recent,) = status_from_projection(projection, "default")["recent"]
    assert recent["status"] == "failed"
    assert recent["outcome"].startswith("0/1 runs succeeded")


def test_halves_of_splits_keep_the_aggregates_order_and_every_run():
    world = World()
    world.run(
        [("add", 2), ("claim", 0), ("start", 0), ("fail_split", 0), ("claim", 0), ("start", 0),
         ("fail_split", 0), ("add", 0), ("settle", 0)]
    )  # fmt: skip
    projection, rows = _fold(world)
    status = status_from_projection(projection, "default")
    expected = [item.job_id for item in world.queue.queued_in_order()]
    assert [job["id"] for job in status["queued_jobs"]] == expected
    assert expected[:3] == ["half_00003_b", "half_00005_a", "half_00005_b"]  # one position, tied
    assert sum(job["runs"] for job in status["queued_jobs"]) == 4
    assert [job["source_job_ids"] for job in status["queued_jobs"]][:3] == [["job_00001"]] * 3
    splits = [row for row in rows.values() if row["status"] == "split"]
    assert len(splits) == 2


def test_a_checkpoint_walks_for_nan_once_an_event_not_marked_finite_was_folded(monkeypatch):
    """Checkpoints of a fold of `finite` events skip dumps' NaN walk; after one event that is
    not (here a NaN in a job's options, as the transcoder decodes it) the text is still the
    json module's, NaN included."""
    monkeypatch.setattr(queue_view, "CHECKPOINT_INTERVAL", 1)
    world = World()
    world.run([("add", 0), ("add", 1)])
    *earlier, last = [replace(record, finite=True) for record in world.records]
    options = {**dict(last.payload.get("options") or {}), "t": float("nan")}
    not_a_number = replace(last, payload={**last.payload, "options": options}, finite=False)
    for records, expected in ((earlier, "finite"), ([*earlier, not_a_number], "NaN")):
        projection = QueueProjection()
        for record in records:
            projection.apply(record)
        state = projection.take_changes().inserts["queue_view_checkpoints"][-1]["state"]
        assert state == JSON.encode(projection.state_of("default"))
        assert ("NaN" in state) == (expected == "NaN")
