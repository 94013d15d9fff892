"""The runner with the real torch reference backend: strict and mixed queues, SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("batchlog.adapters.inference.torch_backend")

from batchlog import QueueService
from batchlog.adapters.bootstrap import build_runner
from tests.fixtures.queues import FAST, events_named, read_events, succeeded_by_run, tiny_video

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("mode", ["strict", "mixed"])
def test_torch_backend_drains_a_reorganized_queue_with_verified_outputs(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    video = tiny_video(tmp_path / "input.gif")
    service = QueueService(database_url, actor="tester")
    weights = [{"vis": 0.5}, {"edge": 0.4}, {"vis": 0.2, "edge": 0.7}]
    for index, w in enumerate(weights):
        prompts = [service.create_prompt(f"a red square {index}-{n}", video) for n in range(2)]
        service.add_job(prompts, config={"weights": w, "seed": index, **FAST})
    service.set_queue_paused(True)
    assert service.analyze_queue_for_smart_batching(mix_controls=mode == "mixed")
    service.execute_smart_batches()
    service.set_queue_paused(False)
    planned_runs = sum(job["runs"] for job in service.get_queue_status()["queued_jobs"])

    runner = build_runner(database_url, "torch", device="cpu", artifacts_dir=tmp_path / "out")
    try:
        summary = runner.run(until_idle=True)
    finally:
        runner.close()

    events = read_events(database_url)
    succeeded = succeeded_by_run(events)
    assert len(succeeded) == planned_runs == summary["succeeded_runs"] == 6
    for (event,) in succeeded.values():
        assert Path(event.output_path).is_file()
        assert hashlib.sha256(Path(event.output_path).read_bytes()).hexdigest() == event.sha256
    assert not events_named(events, "RunFailed") and not events_named(events, "Failed")
    assert {f.device for f in events_named(events, "Finished")} == {"cpu"}
    service.close()
