"""History rows, lineage and the ItemSplit event, folded from events made by real aggregates."""

from __future__ import annotations

from collections import Counter

from batchlog.projections.base import EventRecord
from batchlog.projections.history_view import HistoryProjection, history_entry
from batchlog.projections.lineage import build_lineage
from batchlog.projections.queue_status import status_from_projection
from batchlog.projections.queue_view import ITEM_SPLIT_TOPIC, QueueProjection
from batchlog.projections.stats_view import StatsProjection
from tests.workload import BASE_TIME, World

BATCH_SCRIPT = [
    ("add", 0), ("add", 0), ("pause", 0), ("analyze_strict", 0), ("execute", 0), ("resume", 0),
    ("claim", 0), ("start", 0), ("run_ok", 0), ("run_failed", 0), ("finish", 0),
]  # fmt: skip


def _history_rows(world: World) -> list[dict]:
    history = HistoryProjection()
    for record in world.records:
        history.apply(record)
    rows = history.take_changes().inserts["history_events"]
    return [history_entry(row, record) for row, record in zip(rows, world.records, strict=True)]


def test_every_event_gets_one_history_row_with_a_readable_summary():
    world = World()
    world.run(BATCH_SCRIPT)
    rows = _history_rows(world)
    assert [row["position"] for row in rows] == [r.position for r in world.records]
    by_type = {row["event_type"]: row for row in rows}
    assert by_type["JobAdded"]["summary"].startswith("added job_0000")
    assert by_type["ItemClaimed"]["actor"] == "runner0"
    assert by_type["RunSucceeded"]["actor"] == "runner0"  # the runner of the execution
    assert "sha256" in by_type["RunSucceeded"]["summary"]
    assert by_type["Finished"]["summary"].endswith("on cpu")
    assert by_type["Reorganized"]["job_ids"][:2] == ["job_00001", "job_00002"]


def test_lineage_of_a_merged_job_follows_it_into_its_batch_and_to_each_outcome():
    world = World()
    world.run(BATCH_SCRIPT)
    lineage = build_lineage("job_00002", _history_rows(world))
    assert lineage["merged_into"].startswith("batch_")
    (run,) = lineage["runs"]
    assert run["source_job_id"] == "job_00002"
    assert run["status"] == "failed" and run["error"] == "missing output"
    assert lineage["status"] == "failed"
    (claim,) = lineage["claims"]
    assert claim["outcome"] == "finished: 1/2 runs succeeded"


def test_lineage_of_a_batch_job_names_the_source_of_each_run():
    world = World()
    world.run(BATCH_SCRIPT)
    rows = _history_rows(world)
    batch = next(r for r in rows if r["event_type"] == "Reorganized")["payload"]["new_jobs"][0]
    lineage = build_lineage(batch["job_id"], rows)
    assert lineage["source_job_ids"] == ["job_00001", "job_00002"]
    assert [(r["source_job_id"], r["status"]) for r in lineage["runs"]] == [
        ("job_00001", "succeeded"),
        ("job_00002", "failed"),
    ]


def test_stats_row_per_finished_execution_names_its_analysis():
    world = World()
    world.run(BATCH_SCRIPT)
    stats = StatsProjection()
    for record in world.records:
        stats.apply(record)
    (row,) = stats.take_changes().upserts["stats_batches"].values()
    assert row["state"] == "finished" and row["batch_size"] == 2
    assert row["analysis_id"] == "an_00003" and row["seconds"] == 1.5
    assert row["controls_computed"] == 1 and row["num_steps"] == 10


def test_an_item_split_replaces_the_claimed_item_by_two_queued_halves_with_its_runs():
    world = World()
    world.run([("add", 1), ("claim", 0), ("start", 0)])
    item = world.queue.claimed()[0]
    runs = [run.run_id for run in item.runs]
    split = EventRecord(
        position=len(world.records) + 1,
        originator_id=str(world.queue.id),
        sequence=world.queue.version + 1,
        topic=ITEM_SPLIT_TOPIC,
        timestamp=BASE_TIME,
        payload={
            "job_id": item.job_id,
            "claim_token": item.claim.token,
            "reason": "out of memory",
            "new_jobs": [
                {"job_id": "half_a", "run_ids": runs[:1], "position": [2, 1], "priority": 50},
                {"job_id": "half_b", "run_ids": runs[1:], "position": [2, 2], "priority": 50},
            ],
        },
    )
    projection = QueueProjection()
    placed: dict[str, dict] = {}
    for record in [*world.records, split]:
        projection.apply(record)
        placed.update(
            {
                r["job_id"]: r
                for r in projection.take_changes().upserts.get("queue_view_items", {}).values()
            }
        )
    status = status_from_projection(projection, "default")
    assert [job["id"] for job in status["queued_jobs"]] == ["half_a", "half_b"]
    assert all(job["type"] == "batch_inference" for job in status["queued_jobs"])
    assert status["running"] == [] and status["recent"][0]["status"] == "split"
    places = Counter(
        r["run_id"] for row in placed.values() if row["status"] != "split" for r in row["runs"]
    )
    assert places == Counter(runs)


BULK_SCRIPT = [
    ("add_bulk", 0), ("pause", 0), ("analyze_strict", 0), ("execute", 0), ("resume", 0),
    ("claim", 0), ("start", 0), ("run_ok", 0),
]  # fmt: skip


def test_a_bulk_add_is_one_history_row_naming_each_of_its_jobs():
    world = World()
    world.run(BULK_SCRIPT)
    rows = _history_rows(world)
    (bulk,) = [row for row in rows if row["event_type"] == "JobsAdded"]
    assert bulk["job_ids"] == ["job_00001", "job_00002", "job_00003"]
    assert bulk["summary"].startswith("added 3 jobs (job_00001, job_00002, job_00003;")
    assert bulk["actor"] == "user0"


def test_lineage_of_a_bulk_added_job_starts_at_its_bulk_add():
    world = World()
    world.run(BULK_SCRIPT)
    rows = _history_rows(world)
    (bulk,) = [row for row in rows if row["event_type"] == "JobsAdded"]
    for job_id in bulk["job_ids"]:
        lineage = build_lineage(job_id, rows)
        assert lineage["added"] == {"position": bulk["position"], "by": "user0"}
        assert lineage["runs"] and all(r["source_job_id"] == job_id for r in lineage["runs"])
    assert build_lineage("job_00001", rows)["merged_into"].startswith("batch_")
    assert build_lineage("job_00002", rows)["status"] != "unknown"  # the upscale stays itself
