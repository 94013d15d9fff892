"""Calibration and plan reports on real stores: the analysis uses measured history once there is
enough of it, and a plan report shows measured seconds next to the estimate.

Executions are recorded the way a runner records them (claim in the queue stream, then the
Execution aggregate's events), so these tests exercise the real log reading.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from batchlog import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.errors import UnknownAnalysisError
from batchlog.domain.execution import Execution

A, B0, B1 = 0.7, 0.4, 0.1


def record_execution(
    service: QueueService, job_id: str, seconds: float, *, device: str = "cpu"
) -> None:
    """Claim a queued item and record a finished execution of it, as a runner would."""
    queue = service.load_queue()
    item = queue.item(job_id)
    token = uuid.uuid4().hex
    now = datetime.now(UTC)
    queue.claim(job_id, "runner-1", token, now, now + timedelta(minutes=5))
    service.store.save(queue)
    execution = Execution(
        queue_name=service.queue_name,
        item_id=job_id,
        claim_token=token,
        runner_id="runner-1",
        attempt=1,
        backend="torch",
        device=device,
        run_ids=[run.run_id for run in item.runs],
        controls=sorted(item.controls),
        parameters=item.runs[0].parameters.to_payload(),
        lease_expires_at=now + timedelta(minutes=5),
    )
    for run in item.runs:
        execution.record_run_succeeded(
            run.run_id, run.prompt_id, f"/out/{run.run_id}.mp4", "0" * 64, seconds / len(item.runs)
        )
    execution.finish(seconds, device, None, now)
    service.store.save(execution)


def true_seconds(batch_size: int, controls: int) -> float:
    return A + batch_size * (B0 + B1 * controls)


class CalibrationContract:
    url: str

    @pytest.fixture
    def service(self, settings: Settings) -> QueueService:
        service = QueueService(self.url, settings=settings)
        yield service
        service.close()

    def add(self, service: QueueService, runs: int, weights: dict[str, float]) -> str:
        prompts = [service.create_prompt(f"prompt {uuid.uuid4().hex[:6]}") for _ in range(runs)]
        return service.add_job(prompts, config={"weights": weights})

    def test_analysis_uses_defaults_without_history(self, service: QueueService) -> None:
        self.add(service, 1, {"vis": 0.5})
        self.add(service, 1, {"vis": 0.5})
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        assert analysis["efficiency"]["basis"].startswith("default coefficients for torch")

    def test_analysis_picks_calibrated_coefficients_once_enough_history_exists(
        self, service: QueueService
    ) -> None:
        sizes = [1, 2, 4, 1, 2]
        jobs = [self.add(service, size, {"vis": 0.5}) for size in sizes]
        for job_id, size in zip(jobs[:4], sizes, strict=False):
            record_execution(service, job_id, true_seconds(size, 1))
        self.add(service, 1, {"vis": 0.5})
        service.set_queue_paused(True)
        four = service.analyze_queue_for_smart_batching()
        assert four is not None
        assert four["efficiency"]["basis"].startswith("default coefficients"), (
            "4 batches are not enough"
        )

        service.set_queue_paused(False)
        record_execution(service, jobs[4], true_seconds(2, 1))
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        assert (
            analysis["efficiency"]["basis"] == "fitted from 5 batches on torch/cpu, median error 0%"
        )
        batch = analysis["batches"][0]
        assert batch["estimated_seconds"] == pytest.approx(true_seconds(batch["size"], 1))

    def test_plan_report_shows_measured_seconds_next_to_the_estimate(
        self, service: QueueService
    ) -> None:
        for weights in ({"vis": 0.5}, {"vis": 0.3}, {"vis": 0.4, "edge": 0.2}):
            self.add(service, 1, weights)
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        executed = service.execute_smart_batches()
        before = service.get_plan_report(analysis["analysis_id"])
        assert before["executed"] is True
        assert before["measured_batches"] == 0
        assert before["measured_speedup"] is None

        service.set_queue_paused(False)
        measured = [3.0, 2.0]
        for job_id, seconds in zip(executed["batch_job_ids"], measured, strict=True):
            record_execution(service, job_id, seconds)
        report = service.get_plan_report(analysis["analysis_id"])
        assert report["complete"] is True
        assert [b["measured_seconds"] for b in report["batches"]] == measured
        assert report["measured_seconds_batched"] == pytest.approx(5.0)
        estimated = analysis["efficiency"]["estimated_seconds_batched"]
        assert report["estimate_error"] == pytest.approx((estimated - 5.0) / 5.0)
        assert report["measured_speedup"] == pytest.approx(
            analysis["efficiency"]["estimated_seconds_unbatched"] / 5.0
        )
        assert [r["analysis_id"] for r in service.plan_reports()] == [analysis["analysis_id"]]

    def test_an_analysis_that_was_not_executed_reports_no_measurements(
        self, service: QueueService
    ) -> None:
        self.add(service, 1, {"vis": 0.5})
        self.add(service, 1, {"vis": 0.5})
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        report = service.get_plan_report()
        assert report["analysis_id"] == analysis["analysis_id"]
        assert report["executed"] is False
        assert service.plan_reports() == []

    def test_a_control_set_change_is_derived_from_the_runners_previous_batch(
        self, service: QueueService
    ) -> None:
        jobs = [
            self.add(service, 1, weights)
            for weights in ({"vis": 0.5}, {"vis": 0.9}, {"edge": 0.5}, {"edge": 0.1, "vis": 0.0})
        ]
        for job_id in jobs:
            record_execution(service, job_id, 1.0)
        records = service.execution_history.records()
        assert [r.item_id for r in records] == jobs
        assert [r.control_set_changed for r in records] == [False, False, True, False]
        assert [o.controls_computed for o in service.execution_history.observations()] == [1] * 4

    def test_unknown_analysis_is_an_error(self, service: QueueService) -> None:
        with pytest.raises(UnknownAnalysisError):
            service.get_plan_report("an_missing")


class TestCalibrationSQLite(CalibrationContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url


@pytest.mark.postgres
class TestCalibrationPostgres(CalibrationContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
