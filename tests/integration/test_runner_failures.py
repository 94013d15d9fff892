"""Failure policy, races, pause and lease expiry, recorded as events, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.execution_service import ExecutionService, utc_now
from batchlog.adapters.store import open_store
from batchlog.adapters.wakeup import PollingWaiter
from batchlog.runner.backend import BatchOutcome, RunOutcome
from tests.fixtures.backends import FileBackend
from tests.fixtures.queues import events_named, fill_queue, read_events, succeeded_by_run

SUPPORTS = FileBackend(".").supports


def _drain(url: str, backend: FileBackend, tmp_path: Path, **options: float) -> dict:
    runner = build_runner(
        url, backend=backend, artifacts_dir=tmp_path / "out", backoff_seconds=0.05, **options
    )
    try:
        return runner.run(until_idle=True)
    finally:
        runner.close()


def _service(url: str, runner_id: str, tmp_path: Path, clock=utc_now) -> ExecutionService:
    return ExecutionService(
        open_store(url), "default", runner_id, tmp_path / "out", PollingWaiter(0.05), clock
    )


def test_retries_back_off_exponentially_then_succeed(database_url: str, tmp_path: Path) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    backend = FileBackend(tmp_path, fail_times=2)
    runner = build_runner(
        database_url, backend=backend, artifacts_dir=tmp_path, backoff_seconds=0.2
    )
    try:
        summary = runner.run(until_idle=True)
    finally:
        runner.close()
    events = read_events(database_url)
    failed = events_named(events, "Failed")
    requeued = events_named(events, "ItemRequeued")
    claims = events_named(events, "ItemClaimed")
    assert [f.retryable for f in failed] == [True, True]
    assert [r.reason for r in requeued] == ["failure", "failure"]
    assert [c.attempt for c in claims] == [1, 2, 3]
    # not_before = failure time + 0.2 s, then + 0.4 s; the event is made a moment later.
    delays = [(r.not_before - r.timestamp).total_seconds() for r in requeued]
    assert 0 < delays[0] <= 0.2 < delays[1] <= 0.4
    for requeue, next_claim in zip(requeued, claims[1:], strict=True):
        assert next_claim.claimed_at >= requeue.not_before
    assert len(events_named(events, "Finished")) == 1
    assert summary["retried"] == 2 and summary["finished"] == 1


def test_last_failed_attempt_dead_letters_with_its_error(database_url: str, tmp_path: Path) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    summary = _drain(database_url, FileBackend(tmp_path, fail_times=9), tmp_path, max_attempts=2)
    events = read_events(database_url)
    (dead,) = events_named(events, "ItemDeadLettered")
    assert dead.attempt == 2 and "simulated backend failure" in dead.error
    assert dead.reason == "failure"
    assert not events_named(events, "Finished") and not events_named(events, "RunSucceeded")
    assert summary["dead_lettered"] == 1


def test_a_non_retryable_error_dead_letters_at_once(sqlite_url: str, tmp_path: Path) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}]).close()
    _drain(sqlite_url, FileBackend(tmp_path, fail_times=1, retryable=False), tmp_path)
    events = read_events(sqlite_url)
    assert [f.retryable for f in events_named(events, "Failed")] == [False]
    assert events_named(events, "ItemDeadLettered")[0].attempt == 1


def test_out_of_memory_splits_the_batch_in_half_until_it_fits(
    database_url: str, tmp_path: Path
) -> None:
    service = fill_queue(database_url, [{"vis": 0.5}], prompts_per_job=4)
    (item,) = service.get_queue_status()["queued_jobs"]
    original = service.load_queue().items[item["id"]]
    summary = _drain(database_url, FileBackend(tmp_path, oom_above=1), tmp_path)
    events = read_events(database_url)
    splits = events_named(events, "ItemSplit")
    assert splits[0].job_id == item["id"] and splits[0].reason == "out-of-memory"
    assert [len(new["run_ids"]) for new in splits[0].new_jobs] == [2, 2]
    assert all(new["position"] == list(original.position) for new in splits[0].new_jobs)
    assert [len(new["run_ids"]) for s in splits[1:] for new in s.new_jobs] == [1, 1, 1, 1]
    assert [f.out_of_memory for f in events_named(events, "Failed")] == [True] * 3
    succeeded = succeeded_by_run(events)
    assert sorted(succeeded) == sorted(run.run_id for run in original.runs)
    assert all(len(found) == 1 for found in succeeded.values())
    assert summary["split"] == 3
    service.close()


def test_a_single_run_that_never_fits_is_dead_lettered_as_out_of_memory(
    sqlite_url: str, tmp_path: Path
) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}], prompts_per_job=1).close()
    _drain(sqlite_url, FileBackend(tmp_path, oom_above=0), tmp_path, max_attempts=2)
    (dead,) = events_named(read_events(sqlite_url), "ItemDeadLettered")
    assert dead.reason == "out-of-memory"


def test_of_many_claimers_of_one_item_exactly_one_wins(database_url: str, tmp_path: Path) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    services = [_service(database_url, f"racer-{n}", tmp_path) for n in range(6)]
    barrier = threading.Barrier(len(services))
    won: list[object] = []

    def race(service: ExecutionService) -> None:
        barrier.wait()
        claimed = service.claim_next(SUPPORTS, 30, "test", "cpu")
        if claimed is not None:
            won.append(claimed)

    threads = [threading.Thread(target=race, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for service in services:
        service.close()
    assert len(won) == 1
    events = read_events(database_url)
    assert len(events_named(events, "ItemClaimed")) == 1
    assert len(events_named(events, "Execution.Started")) == 1


def test_expired_lease_is_requeued_and_the_late_result_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    stale = _service(database_url, "stale-runner", tmp_path)
    claimed = stale.claim_next(SUPPORTS, 5, "test", "cpu")
    assert claimed is not None
    later = _service(database_url, "reaper", tmp_path, clock=lambda: utc_now() + timedelta(hours=1))
    assert later.reap_expired() == 1
    later.close()
    _drain(database_url, FileBackend(tmp_path / "b"), tmp_path)

    assert stale.extend_lease(claimed, 5) is False
    run = claimed.batch.runs[0]
    path = tmp_path / "late.bin"
    path.write_bytes(b"late")
    late = BatchOutcome((RunOutcome(run.run_id, True, 0.1, str(path)),), 0.1, "cpu")
    assert stale.record_outcome(claimed, late).accepted is False
    stale.close()

    events = read_events(database_url)
    names = [type(e).__name__ for e in events]
    requeue_at = names.index("ItemRequeued")
    assert events[requeue_at].reason == "lease-expired"
    assert names[requeue_at + 1] == "Superseded"  # committed in the same transaction
    (refused,) = events_named(events, "ResultRefused")
    assert refused.runner_id == "stale-runner" and refused.state == "superseded"
    assert refused.outcomes[0]["output_path"] == str(path)
    succeeded = succeeded_by_run(events)
    assert all(len(found) == 1 for found in succeeded.values())
    assert str(path) not in {e.output_path for found in succeeded.values() for e in found}


def test_pause_stops_new_claims_while_the_running_batch_finishes(
    database_url: str, tmp_path: Path
) -> None:
    service = fill_queue(database_url, [{"vis": 0.5}, {"edge": 0.5}])
    first, second = (job["id"] for job in service.get_queue_status()["queued_jobs"])
    claimed = threading.Event()
    backend = FileBackend(tmp_path, delay_seconds=0.5)

    def on_progress(progress: dict) -> None:
        if progress["event"] == "claimed":
            service.set_queue_paused(True, reason="test")
            claimed.set()

    runner = build_runner(database_url, backend=backend, artifacts_dir=tmp_path / "o")
    try:
        summary = runner.run(until_idle=True, on_progress=on_progress)
    finally:
        runner.close()
    assert claimed.is_set()
    events = read_events(database_url)
    assert [c.job_id for c in events_named(events, "ItemClaimed")] == [first]
    assert len(events_named(events, "Finished")) == 1
    status = service.get_queue_status()
    assert status["paused"] and [j["id"] for j in status["queued_jobs"]] == [second]
    assert summary["claimed"] == 1 and summary["finished"] == 1
    service.close()


def test_an_expired_claim_without_an_execution_is_requeued_too(
    sqlite_url: str, tmp_path: Path
) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}])
    (job,) = service.get_queue_status()["queued_jobs"]
    now = utc_now()
    queue = service.load_queue()
    queue.claim(job["id"], "elsewhere", "tok", now, now)  # e.g. a claim made by another tool
    service.store.save(queue)
    reaper = _service(sqlite_url, "reaper", tmp_path, clock=lambda: now + timedelta(seconds=1))
    assert reaper.reap_expired() == 1
    reaper.close()
    (requeued,) = events_named(read_events(sqlite_url), "ItemRequeued")
    assert (requeued.job_id, requeued.reason) == (job["id"], "lease-expired")
    service.close()


def test_lease_is_extended_while_a_long_batch_runs_so_no_reaper_takes_it(
    database_url: str, tmp_path: Path
) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    reaper = _service(database_url, "reaper", tmp_path)
    done = threading.Event()
    reaped: list[int] = []

    def keep_reaping() -> None:
        while not done.wait(0.2):
            reaped.append(reaper.reap_expired())

    watcher = threading.Thread(target=keep_reaping)
    watcher.start()
    try:
        summary = _drain(
            database_url, FileBackend(tmp_path, delay_seconds=3.0), tmp_path, lease_seconds=2
        )
    finally:
        done.set()
        watcher.join(30)
        reaper.close()
    events = read_events(database_url)
    extended = events_named(events, "LeaseExtended")
    assert len(extended) >= 2
    leases = [e.lease_expires_at for e in extended]
    assert leases == sorted(leases)
    assert sum(reaped) == 0 and not events_named(events, "ItemRequeued")
    assert summary["finished"] == 1 and len(events_named(events, "Finished")) == 1
