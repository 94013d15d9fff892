"""The demo's queue story on a real SQLite store: the mix, both analyses, the executed plan."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from batchlog.adapters.demo.scenario import FULL, QUICK, DemoSize, job_mix, run_scenario
from batchlog.adapters.demo.scenes import sample_scenes, write_scene
from batchlog.adapters.queue_service import QueueService
from batchlog.domain.controls import control_signature
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.jobs import Run
from batchlog.domain.queue import Queue


def _scenes(tmp_path: Path, size: DemoSize) -> list:
    return [
        write_scene(spec, tmp_path / "scenes", width=16, height=16, frames=2, fps=2)
        for spec in sample_scenes(size.scenes)
    ]


def test_full_mix_is_about_a_dozen_jobs_and_two_dozen_runs() -> None:
    jobs = job_mix([f"ps_{i}" for i in range(FULL.scenes)], FULL)
    runs = sum(len(job["prompt_ids"]) for job in jobs)
    assert 10 <= len(jobs) <= 14 and 20 <= runs <= 28
    assert [job["job_type"] for job in jobs].count("upscale") == 1
    configs = [job["config"] for job in jobs if job["job_type"] != "upscale"]
    signatures = {
        control_signature(w) for c in configs for w in (c.get("weights_list") or [c["weights"]])
    }
    assert len(signatures) >= 5
    assert len({c["num_steps"] for c in configs}) == 2
    assert len({c.get("seed") for c in configs}) >= 5


@pytest.mark.parametrize("size", [QUICK, FULL], ids=["quick", "full"])
def test_scenario_executes_the_plan_with_fewer_estimated_seconds(
    sqlite_url: str, tmp_path: Path, size: DemoSize
) -> None:
    out = io.StringIO()
    with QueueService(sqlite_url, queue_name="demo-test", actor="tester") as service:
        record = run_scenario(service, _scenes(tmp_path, size), size, Console(file=out, width=200))
        estimates = {
            mode: analysis["efficiency"]["estimated_seconds_batched"]
            for mode, analysis in (("strict", record.strict), ("mixed", record.mixed))
        }
        assert record.chosen_mode == min(estimates, key=lambda m: (estimates[m], m != "strict"))
        assert record.executed["mode"] == record.chosen_mode
        assert record.reorganized["analysis_id"] == record.executed["analysis_id"]
        after_types = [job["type"] for job in record.status_after["queued_jobs"]]
        assert after_types.count("upscale") == 1
        assert after_types.count("batch_inference") == len(record.executed["batches"])
        assert set(record.batch_runs) == set(record.reorganized["batch_job_ids"])
        assert record.total_runs == sum(
            len(j["prompt_ids"]) for j in record.status_before["queued_jobs"]
        )
        assert not service.is_queue_paused()
        events = list(service.store.events.get(queue_aggregate_id("demo-test")))
    modes = [e.mode for e in events if isinstance(e, Queue.Analyzed)]
    assert modes[:2] == ["strict", "mixed"]
    text = out.getvalue()
    assert "Strict Mode" in text and "Mixed Mode" in text and "reorganized successfully" in text


def test_a_chosen_strict_plan_is_reanalyzed_because_the_mixed_one_made_it_stale(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchlog.adapters.demo.scenario as scenario

    monkeypatch.setattr(scenario, "_better", lambda strict, mixed: "strict")
    out = io.StringIO()
    with QueueService(sqlite_url, queue_name="demo-test", actor="tester") as service:
        record = run_scenario(
            service, _scenes(tmp_path, QUICK), QUICK, Console(file=out, width=200)
        )
    assert record.executed["mode"] == "strict"
    assert record.executed["analysis_id"] != record.strict["analysis_id"]
    assert "Analysis is stale" in out.getvalue()


def _same_work(a: Run, b: Run) -> bool:
    def work(run: Run) -> tuple[object, ...]:
        return (run.prompt_id, dict(run.weights), run.seed, run.parameters)

    return work(a) == work(b)


def test_measurement_queues_hold_exactly_the_plans_runs(sqlite_url: str, tmp_path: Path) -> None:
    from batchlog.adapters.demo.drain import batch_jobs, one_run_jobs

    out = Console(file=io.StringIO())
    with QueueService(sqlite_url, queue_name="demo-test", actor="tester") as service:
        record = run_scenario(service, _scenes(tmp_path, FULL), FULL, out)
    batches = [record.batch_runs[j] for j in record.reorganized["batch_job_ids"]]
    runs = [run for batch in batches for run in batch]
    with QueueService(sqlite_url, queue_name="demo-test-solo", actor="tester") as solo:
        ids = solo.add_jobs(one_run_jobs(runs))
        items = solo.load_queue().items
        assert [len(items[i].runs) for i in ids] == [1] * len(runs)
        assert all(_same_work(items[i].runs[0], run) for i, run in zip(ids, runs, strict=True))
    with QueueService(sqlite_url, queue_name="demo-test-repeat", actor="tester") as repeat:
        ids = repeat.add_jobs(batch_jobs(batches))
        items = repeat.load_queue().items
        for job_id, batch in zip(ids, batches, strict=True):
            assert items[job_id].job_type == "batch_inference"
            assert len(items[job_id].runs) == len(batch)
            assert all(_same_work(a, b) for a, b in zip(items[job_id].runs, batch, strict=True))
