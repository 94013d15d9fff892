"""Measured figures end to end: the real runner (drain mode) runs a reorganized queue on the torch
reference backend; the plan report then shows measured seconds, and the next analysis is priced
from the measured batches."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("batchlog.adapters.inference.torch_backend")

from batchlog import QueueService
from batchlog.adapters.bootstrap import build_runner
from tests.fixtures.queues import FAST, tiny_video

pytestmark = pytest.mark.torch
WEIGHTS = [{"vis": 0.5}] * 5 + [{"edge": 0.4}] * 2 + [{"vis": 0.2, "edge": 0.7}]


def drain(url: str, tmp_path: Path) -> dict:
    runner = build_runner(url, "torch", device="cpu", artifacts_dir=tmp_path / "out")
    try:
        return runner.run(until_idle=True)
    finally:
        runner.close()


def test_after_a_drain_the_plan_report_has_measured_figures_and_the_next_analysis_is_fitted(
    database_url: str, tmp_path: Path
) -> None:
    video = tiny_video(tmp_path / "input.gif")
    with QueueService(database_url, actor="tester") as service:
        for index, weights in enumerate(WEIGHTS):
            prompt = service.create_prompt(f"a red square {index}", video)
            service.add_job([prompt], config={"weights": weights, "seed": index, **FAST})
        service.set_queue_paused(True)
        service.set_batch_size(2)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        assert analysis["efficiency"]["basis"].startswith("default coefficients for torch")
        executed = service.execute_smart_batches()
        assert executed["batches_created"] == 5
        service.set_queue_paused(False)

        assert drain(database_url, tmp_path)["finished"] == 5

        report = service.get_plan_report(analysis["analysis_id"])
        assert report["complete"] is True
        assert report["measured_batches"] == report["total_batches"] == 5
        assert all(
            b["measured_seconds"] > 0 and b["state"] == "finished" for b in report["batches"]
        )
        assert {b["backend"] for b in report["batches"]} == {"torch/cpu"}
        measured = sum(b["measured_seconds"] for b in report["batches"])
        assert report["measured_seconds_batched"] == pytest.approx(measured)
        assert report["measured_speedup"] == pytest.approx(
            analysis["efficiency"]["estimated_seconds_unbatched"] / measured
        )
        assert report["estimate_error"] == pytest.approx(
            (analysis["efficiency"]["estimated_seconds_batched"] - measured) / measured
        )

        prompt = service.create_prompt("one more", video)
        service.add_job([prompt], config={"weights": {"vis": 0.5}, **FAST})
        service.add_job([prompt], config={"weights": {"vis": 0.6}, **FAST})
        service.set_queue_paused(True)
        calibrated = service.analyze_queue_for_smart_batching()
        assert calibrated is not None
        assert calibrated["efficiency"]["basis"].startswith("fitted from 5 batches on torch/cpu")
