"""Runner liveness on SQLite and PostgreSQL: heartbeats recorded, and judged at read time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.execution_service import ExecutionService
from batchlog.adapters.runner_status import runner_overview
from batchlog.adapters.store import open_store
from batchlog.adapters.wakeup import PollingWaiter
from tests.acceptance.runner_processes import wait_until
from tests.fixtures.backends import FileBackend
from tests.fixtures.queues import events_named, fill_queue, read_events

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


class ManualClock:
    """The time the service records; the test moves it."""

    def __init__(self) -> None:
        self.now = T0

    def at(self, seconds: float) -> datetime:
        self.now = T0 + timedelta(seconds=seconds)
        return self.now

    def __call__(self) -> datetime:
        return self.now


def _runner_at(url: str, seconds: float) -> dict:
    store = open_store(url)
    try:
        overview = runner_overview(store, "default", now=T0 + timedelta(seconds=seconds))
    finally:
        store.close()
    (runner,) = overview["runners"]
    return {**runner, "overview": overview}


def test_a_runner_is_lost_once_silent_past_its_lease_and_a_running_lease_is_a_heartbeat(
    database_url: str, tmp_path: Path
) -> None:
    fill_queue(database_url, [{"vis": 0.5}]).close()
    clock = ManualClock()
    service = ExecutionService(
        open_store(database_url), "default", "r1", tmp_path, PollingWaiter(), clock=clock
    )
    service.announce("test-files", "cpu", ["inference", "batch_inference"], 30)
    assert _runner_at(database_url, 10)["status_text"] == "active (heartbeat 10 s ago; lease 30 s)"
    lost = _runner_at(database_url, 31)
    assert (lost["status"], lost["active"]) == ("lost", False)
    assert lost["status_text"] == "lost (no heartbeat for 31 s; lease 30 s)"
    assert lost["overview"]["lost"] == 1 and lost["overview"]["active"] == 0
    assert lost["last_heartbeat_at"] == T0.isoformat()

    clock.at(40)
    service.renew_session(30)
    assert _runner_at(database_url, 41)["status"] == "active"

    clock.at(50)
    claimed = service.claim_next(lambda _: True, 30, "test-files", "cpu")
    assert claimed is not None
    assert _runner_at(database_url, 79)["status_text"] == "active (heartbeat 29 s ago; lease 30 s)"
    assert _runner_at(database_url, 81)["status"] == "lost"
    clock.at(60)
    assert service.extend_lease(claimed, 30)
    assert _runner_at(database_url, 81)["status_text"] == "active (heartbeat 21 s ago; lease 30 s)"

    service.retire({})
    stopped = _runner_at(database_url, 3600)
    assert (stopped["status"], stopped["status_text"], stopped["active"]) == (
        "stopped",
        "stopped",
        False,
    )
    service.close()


def test_a_reaped_item_no_longer_keeps_its_runner_alive(sqlite_url: str, tmp_path: Path) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}]).close()
    clock = ManualClock()
    victim = ExecutionService(
        open_store(sqlite_url), "default", "victim", tmp_path, PollingWaiter(), clock=clock
    )
    victim.announce("test-files", "cpu", ["inference", "batch_inference"], 30)
    assert victim.claim_next(lambda _: True, 30, "test-files", "cpu") is not None
    reaper = ExecutionService(
        open_store(sqlite_url), "default", "reaper", tmp_path, PollingWaiter(), clock=clock
    )
    clock.at(31)
    assert reaper.reap_expired() == 1
    store = open_store(sqlite_url)
    (runner,) = runner_overview(store, "default", now=T0 + timedelta(seconds=31))["runners"]
    store.close()
    assert runner["status_text"] == "lost (no heartbeat for 31 s; lease 30 s)"
    victim.close()
    reaper.close()


def test_a_working_runner_heartbeats_through_its_lease_and_renews_its_session_when_idle(
    sqlite_url: str, tmp_path: Path
) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}]).close()
    gate = tmp_path / "batch-may-end"
    runner = build_runner(
        sqlite_url,
        backend=FileBackend(tmp_path / "out", gate=gate),
        artifacts_dir=tmp_path / "out",
        lease_seconds=0.6,
        poll_seconds=0.05,
    )
    stop = threading.Event()
    worker = threading.Thread(target=runner.run, kwargs={"stop_event": stop}, daemon=True)
    worker.start()
    try:
        wait_until(
            lambda: len(events_named(read_events(sqlite_url), "LeaseExtended")) >= 3,
            60,
            "three lease extensions of the running batch",
        )
        busy = read_events(sqlite_url)
        claimed_at = busy.index(events_named(busy, "ItemClaimed")[0])
        assert not events_named(busy[claimed_at:], "LeaseRenewed"), "heartbeats while leased"
        gate.touch()
        wait_until(
            lambda: len(events_named(read_events(sqlite_url), "LeaseRenewed")) >= 4,
            60,
            "session heartbeats while idle",
        )
    finally:
        stop.set()
        worker.join(60)
        runner.close()
    events = read_events(sqlite_url)
    finished = events.index(events_named(events, "Finished")[0])
    last_extension = events.index(events_named(events, "LeaseExtended")[-1])
    renewals = [events.index(e) for e in events_named(events, "LeaseRenewed")]
    assert any(last_extension < at < finished for at in renewals), "a gap when the batch ended"
    assert all(e.lease_seconds == 0.6 for e in events_named(events, "LeaseRenewed"))
    assert type(events[-1]).__qualname__ == "RunnerSession.Stopped"
