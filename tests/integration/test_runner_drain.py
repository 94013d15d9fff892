"""The runner in drain mode on SQLite and PostgreSQL, with a test backend that writes real files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.runner_status import runner_overview
from batchlog.adapters.store import open_store
from batchlog.domain.errors import ValidationError
from tests.fixtures.backends import FileBackend
from tests.fixtures.queues import events_named, fill_queue, read_events, succeeded_by_run

JOBS = [
    {"vis": 0.5},
    {"vis": 0.7, "edge": 0.2},
    {"edge": 0.4},
    {"vis": 0.3},
    {"depth": 0.6, "vis": 0.1},
]


@pytest.mark.parametrize("mode", ["strict", "mixed"])
def test_drain_runs_a_reorganized_queue_and_records_every_run_once(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    service = fill_queue(database_url, JOBS, prompts_per_job=2, mode=mode)
    planned = service.get_queue_status()["queued_jobs"]
    weights_by_run = {}
    for item in planned:
        for run_id, weights in zip(
            _run_ids(service, item["id"]), item["weights_list"], strict=True
        ):
            weights_by_run[run_id] = weights
    backend = FileBackend(tmp_path / "artifacts")
    runner = build_runner(database_url, backend=backend, artifacts_dir=tmp_path / "artifacts")
    try:
        summary = runner.run(until_idle=True)
    finally:
        runner.close()

    events = read_events(database_url)
    succeeded = succeeded_by_run(events)
    assert sorted(succeeded) == sorted(weights_by_run)
    assert all(len(found) == 1 for found in succeeded.values())
    for run_id, (event,) in succeeded.items():
        data = Path(event.output_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == event.sha256
        body = json.loads(data)
        assert {k: v for k, v in body["weights"].items() if v > 0} == weights_by_run[run_id]
    started = events_named(events, "Execution.Started")
    assert [s.item_id for s in started] == [item["id"] for item in planned]
    for start, item in zip(started, planned, strict=True):
        assert start.controls == item["controls"]
    assert len(events_named(events, "Finished")) == len(planned)
    assert summary["finished"] == len(planned) and summary["succeeded_runs"] == 10
    assert backend.loads == 1
    status = service.get_queue_status()
    assert status["total_queued"] == 0 and status["running"] == []
    service.close()


def test_a_missing_output_file_fails_that_run_only(sqlite_url: str, tmp_path: Path) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}], prompts_per_job=3)
    job_id = service.get_queue_status()["queued_jobs"][0]["id"]
    backend = FileBackend(tmp_path / "a", skip_file_for=f"{job_id}:1")
    runner = build_runner(sqlite_url, backend=backend, artifacts_dir=tmp_path / "a")
    try:
        runner.run(until_idle=True)
    finally:
        runner.close()
    events = read_events(sqlite_url)
    (failed,) = events_named(events, "RunFailed")
    assert failed.run_id == f"{job_id}:1" and "missing" in failed.error
    (finished,) = events_named(events, "Finished")
    assert (finished.succeeded, finished.failed) == (2, 1)
    service.close()


def test_runner_claims_only_job_types_its_backend_supports_and_status_says_why(
    sqlite_url: str, tmp_path: Path
) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}])
    prompt = service.create_prompt("to upscale")
    upscale_id = service.add_job([prompt], job_type="upscale")
    runner = build_runner(
        sqlite_url, backend=FileBackend(tmp_path), artifacts_dir=tmp_path, runner_id="r-inf"
    )
    seen: dict = {}

    def on_progress(progress: dict) -> None:
        if progress["event"] == "finished":
            store = open_store(sqlite_url)
            seen.update(runner_overview(store, "default"))
            store.close()

    try:
        summary = runner.run(until_idle=True, on_progress=on_progress)
    finally:
        runner.close()
    assert summary["finished"] == 1 and summary["unsupported"] == 1
    status = service.get_queue_status()
    assert [job["id"] for job in status["queued_jobs"]] == [upscale_id]
    (active,) = seen["runners"]
    assert active["active"] and active["job_types"] == ["inference", "batch_inference"]
    assert seen["unrunnable"] == [
        {"id": upscale_id, "type": "upscale", "reason": "no active runner supports 'upscale' jobs"}
    ]
    store = open_store(sqlite_url)
    after = runner_overview(store, "default")
    store.close()
    assert after["active"] == 0 and after["runners"][0]["runner_id"] == "r-inf"
    assert after["unrunnable"][0]["reason"] == "no runner is active for this queue"
    service.close()


def _run_ids(service, job_id: str) -> list[str]:
    queue = service.load_queue()
    return [run.run_id for run in queue.items[job_id].runs]


def test_upscale_batch_gets_the_latest_output_of_each_prompt(
    database_url: str, tmp_path: Path
) -> None:
    service = fill_queue(database_url, [{"vis": 0.5}], prompts_per_job=2)
    (job,) = service.get_queue_status()["queued_jobs"]
    upscale = service.add_job(job["prompt_ids"], job_type="upscale", config={"scale": 2})
    backend = FileBackend(tmp_path, job_types=("inference", "upscale"))
    runner = build_runner(database_url, backend=backend, artifacts_dir=tmp_path)
    try:
        runner.run(until_idle=True)
    finally:
        runner.close()
    first, second = backend.inputs
    assert second.item_id == upscale and second.options["scale"] == 2
    outputs = {
        e.prompt_id: e.output_path
        for e in events_named(read_events(database_url), "RunSucceeded")
        if e.run_id.startswith(job["id"])
    }
    assert second.options["source_videos"] == {pid: outputs[pid] for pid in job["prompt_ids"]}
    assert first.options == {}
    service.close()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"device": "gpu"}, "device"),
        ({"backend_name": "tensorflow"}, "backend"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_runner_options_name_the_field_and_append_nothing(
    sqlite_url: str, tmp_path: Path, options: dict, field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        build_runner(sqlite_url, artifacts_dir=tmp_path, **options)
    assert raised.value.field == field
    assert read_events(sqlite_url) == []
