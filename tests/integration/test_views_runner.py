"""The views after a real runner drained a reorganized queue (both stores)."""

from __future__ import annotations

from pathlib import Path

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.views import ProjectionHost
from batchlog.adapters.views.replay import verify
from batchlog.projections import PROJECTION_NAMES
from tests.fixtures.backends import FileBackend
from tests.fixtures.queues import fill_queue

JOBS = [{"vis": 0.5}, {"vis": 0.7, "edge": 0.2}, {"edge": 0.4}, {"vis": 0.3}]


def test_a_drained_queue_shows_done_items_stats_and_lineage_and_rebuilds_equal(
    database_url: str, tmp_path: Path
) -> None:
    service = fill_queue(database_url, JOBS, prompts_per_job=2, mode="strict")
    try:
        planned = [job["id"] for job in service.get_queue_status()["queued_jobs"]]
        runner = build_runner(
            database_url, backend=FileBackend(tmp_path / "out"), artifacts_dir=tmp_path / "out"
        )
        try:
            runner.run(until_idle=True)
        finally:
            runner.close()

        status = service.get_queue_status()
        assert status["queued_jobs"] == [] and status["running"] == []
        done = {entry["id"]: entry for entry in status["recent"] if entry["status"] == "done"}
        assert set(planned) <= set(done)
        assert all(done[job]["outcome"].startswith(f"{done[job]['runs']}/") for job in planned)

        stats = service.batch_stats()
        assert sorted(row["item_id"] for row in stats) == sorted(planned)
        assert all(row["analysis_id"] and row["seconds"] is not None for row in stats)
        assert sum(row["batch_size"] for row in stats) == 8

        source = next(e for e in service.history() if e["event_type"] == "JobAdded")["payload"]
        lineage = service.lineage(source["job_id"])
        assert lineage["merged_into"] in planned and lineage["status"] == "done"
        assert all(run["status"] == "succeeded" and run["sha256"] for run in lineage["runs"])
        assert lineage["claims"][0]["outcome"].startswith("finished")

        with ProjectionHost(database_url) as host:
            host.catch_up()
            assert verify(host.store, host.views, list(PROJECTION_NAMES)).ok
    finally:
        service.close()
