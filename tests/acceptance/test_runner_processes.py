"""Real runner processes: crash recovery with SIGKILL on PostgreSQL, SIGTERM shutdown, drain."""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest

from batchlog.adapters.execution_service import ExecutionService
from batchlog.adapters.store import open_store
from batchlog.adapters.wakeup import PollingWaiter
from batchlog.domain.jobs import ExecutionParameters
from batchlog.runner.backend import BatchInput, BatchOutcome, RunInput, RunOutcome
from batchlog.runner.ports import ClaimedItem
from tests.acceptance.runner_processes import (
    RunnerProcesses,
    listed_runners,
    running_item_of,
    wait_until,
)
from tests.fixtures.queues import (
    events_named,
    fill_queue,
    read_events,
    succeeded_by_run,
    tiny_video,
)

WEIGHTS = [{"vis": 0.5}, {"edge": 0.3}, {"vis": 0.2, "edge": 0.6}, {"vis": 0.9}]


@pytest.mark.parametrize("backend", ["files", "torch-cli"])
def test_drain_mode_process_exits_zero_after_running_everything(
    sqlite_url: str, processes: RunnerProcesses, tmp_path: Path, backend: str
) -> None:
    video = tiny_video(tmp_path / "input.gif") if backend != "files" else ""
    fill_queue(sqlite_url, WEIGHTS, prompts_per_job=2, mode="mixed", input_video=video).close()
    process = processes.start(sqlite_url, "drainer", "--until-idle", "--json", backend=backend)
    assert process.wait(timeout=120) == 0, processes.log("drainer")
    log = processes.log("drainer")
    summary = json.loads(log[log.index("{") :])
    assert summary["succeeded_runs"] == 8 and summary["failed_runs"] == 0
    (runner,) = listed_runners(sqlite_url).values()
    assert runner["runner_id"] == "drainer" and runner["active"] is False
    assert runner["status"] == "stopped"
    expected = ["inference", "batch_inference"] + (["upscale"] if backend != "files" else [])
    assert runner["job_types"] == expected


@pytest.mark.parametrize("backend", ["files", "torch"])
def test_killed_runner_item_is_requeued_finished_by_another_and_its_token_refused(
    postgres_url: str, processes: RunnerProcesses, tmp_path: Path, backend: str
) -> None:
    video = tiny_video(tmp_path / "input.gif") if backend == "torch" else ""
    service = fill_queue(
        postgres_url, WEIGHTS * 2, 3, mode="strict", batch_size=3, input_video=video
    )
    all_runs = {run.run_id for item in service.load_queue().queued_in_order() for run in item.runs}
    assert len(all_runs) == 24
    common = ("--until-idle", "--lease-seconds", "1.5")
    never_opened = tmp_path / "victim-batch-may-end"
    victim = processes.start(postgres_url, "victim", *common, gate=never_opened, backend=backend)
    survivors = [
        processes.start(postgres_url, f"survivor-{n}", *common, delay=1.0, backend=backend)
        for n in (1, 2)
    ]
    held = wait_until(lambda: running_item_of(service, "victim"), 60, "the victim's first claim")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    for n, survivor in enumerate(survivors, start=1):
        assert survivor.wait(timeout=120) == 0, processes.log(f"survivor-{n}")

    events = read_events(postgres_url)
    victim_claims = [c for c in events_named(events, "ItemClaimed") if c.runner_id == "victim"]
    killed = next(c for c in victim_claims if c.job_id == held["id"])
    requeues = [
        r for r in events_named(events, "ItemRequeued") if r.claim_token == killed.claim_token
    ]
    assert [r.reason for r in requeues] == ["lease-expired"]
    reclaims = [
        c for c in events_named(events, "ItemClaimed")
        if c.job_id == killed.job_id and c.claim_token != killed.claim_token
    ]  # fmt: skip
    assert reclaims and reclaims[-1].runner_id.startswith("survivor-")
    superseded = events_named(events, "Superseded")
    started = {s.originator_id: s for s in events_named(events, "Execution.Started")}
    assert any(started[s.originator_id].claim_token == killed.claim_token for s in superseded)

    succeeded = succeeded_by_run(events)
    assert set(succeeded) == all_runs
    assert all(len(found) == 1 for found in succeeded.values()), "a run has two accepted outcomes"
    finished_executions = {f.originator_id for f in events_named(events, "Finished")}
    assert all(e.originator_id in finished_executions for f in succeeded.values() for e in f)
    killed_execution = next(s for s in started.values() if s.claim_token == killed.claim_token)
    assert killed_execution.originator_id not in finished_executions

    comeback = ExecutionService(
        open_store(postgres_url), "default", "victim", Path("."), PollingWaiter()
    )
    claimed = _claim_of(killed_execution, killed.lease_expires_at)
    assert comeback.extend_lease(claimed, 30) is False
    first_run = succeeded[claimed.batch.runs[0].run_id][0]
    late = BatchOutcome(
        tuple(RunOutcome(r.run_id, True, 1.0, first_run.output_path) for r in claimed.batch.runs),
        1.0,
        "cpu",
    )
    assert comeback.record_outcome(claimed, late).accepted is False
    comeback.close()
    refused = events_named(read_events(postgres_url), "ResultRefused")
    assert [(r.originator_id, r.runner_id) for r in refused] == [
        (killed_execution.originator_id, "victim")
    ]
    assert service.get_queue_status()["running"] == []
    service.close()


def test_a_killed_runner_is_listed_lost_after_its_lease_and_another_finishes_its_item(
    postgres_url: str, processes: RunnerProcesses, tmp_path: Path
) -> None:
    service = fill_queue(postgres_url, [{"vis": 0.5}])
    never_opened = tmp_path / "victim-batch-may-end"
    victim = processes.start(postgres_url, "victim", "--lease-seconds", "2", gate=never_opened)
    held = wait_until(lambda: running_item_of(service, "victim"), 60, "the victim's claim")
    wait_until(
        lambda: listed_runners(postgres_url)["victim"]["status"] == "active", 120, "victim active"
    )
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL

    lost = wait_until(
        lambda: (r := listed_runners(postgres_url)["victim"])["status"] == "lost" and r,
        120,
        "the killed runner to be listed as lost",
    )
    assert isinstance(lost, dict) and lost["active"] is False and lost["lease_seconds"] == 2
    assert lost["heartbeat_age_seconds"] > 2
    assert lost["status_text"].startswith("lost (no heartbeat for ")
    assert lost["status_text"].endswith(" s; lease 2 s)")

    survivor = processes.start(postgres_url, "survivor", "--until-idle")
    assert survivor.wait(timeout=120) == 0, processes.log("survivor")
    events = read_events(postgres_url)
    (killed,) = [c for c in events_named(events, "ItemClaimed") if c.runner_id == "victim"]
    assert killed.job_id == held["id"]
    (requeued,) = events_named(events, "ItemRequeued")
    assert (requeued.claim_token, requeued.reason) == (killed.claim_token, "lease-expired")
    (rerun,) = events_named(events, "Execution.Started")[1:]
    assert (rerun.item_id, rerun.runner_id) == (held["id"], "survivor")
    (finished,) = events_named(events, "Finished")
    assert finished.originator_id == rerun.originator_id
    listed = listed_runners(postgres_url)
    assert (listed["victim"]["status"], listed["survivor"]["status"]) == ("lost", "stopped")
    service.close()


@pytest.mark.parametrize(
    ("grace", "open_gate", "signals", "expected"),
    [
        ("0.3", False, 1, "released"),  # the batch outlasts the grace period
        ("300", True, 1, "finished"),  # the batch ends within it
        ("300", False, 2, "released"),  # a second signal releases at once
    ],
)
def test_sigterm_releases_or_finishes_the_current_item(
    sqlite_url: str,
    processes: RunnerProcesses,
    tmp_path: Path,
    grace: str,
    open_gate: bool,
    signals: int,
    expected: str,
) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}, {"edge": 0.5}])
    first, second = (job["id"] for job in service.get_queue_status()["queued_jobs"])
    gate = tmp_path / "batch-may-end"
    process = processes.start(sqlite_url, "term", "--grace-seconds", grace, gate=gate)
    wait_until(lambda: running_item_of(service, "term"), 60, "the first claim")
    for handled in range(1, signals + 1):
        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda n=handled: processes.log("term").count("SIGTERM") >= n,
            60,
            f"the runner to handle SIGTERM number {handled}",
        )
    if open_gate:
        gate.touch()
    assert process.wait(timeout=120) == 0, processes.log("term")

    events = read_events(sqlite_url)
    assert [c.job_id for c in events_named(events, "ItemClaimed")] == [first]
    status = service.get_queue_status()
    assert status["running"] == []
    if expected == "released":
        (released,) = events_named(events, "ItemRequeued")
        assert (released.job_id, released.reason) == (first, "released")
        assert events_named(events, "Superseded") and not events_named(events, "Finished")
        assert [j["id"] for j in status["queued_jobs"]] == [first, second]
    else:
        assert len(events_named(events, "Finished")) == 1
        assert not events_named(events, "ItemRequeued")
        assert [j["id"] for j in status["queued_jobs"]] == [second]
    service.close()


def _claim_of(started, lease_expires_at: datetime) -> ClaimedItem:
    """The victim's claim as the killed process held it, rebuilt from its Started event."""
    runs = tuple(RunInput(run_id, "", "", "", "", {}, {}, 0) for run_id in started.run_ids)
    batch = BatchInput(
        started.item_id,
        "batch_inference",
        ExecutionParameters.from_payload(started.parameters),
        tuple(started.controls),
        runs,
        Path("."),
    )
    return ClaimedItem(
        started.item_id, "batch_inference", started.claim_token, started.attempt,
        lease_expires_at, batch,
    )  # fmt: skip
