"""Pure tests of runner liveness: lost once the last sign of life is older than the lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchlog.domain.runner_session import RunnerSession, runner_liveness

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_a_runner_heard_from_within_its_lease_is_active_with_the_age_and_threshold() -> None:
    liveness = runner_liveness(False, _ago(12), 30.0, NOW)
    assert liveness.status == "active"
    assert liveness.describe() == "active (heartbeat 12 s ago; lease 30 s)"


def test_a_runner_silent_for_longer_than_its_lease_is_lost_and_says_since_when() -> None:
    liveness = runner_liveness(False, _ago(47), 30.0, NOW)
    assert (liveness.status, liveness.silent_seconds) == ("lost", 47.0)
    assert liveness.describe() == "lost (no heartbeat for 47 s; lease 30 s)"


def test_lost_means_strictly_older_than_the_lease_like_the_reaper() -> None:
    assert runner_liveness(False, _ago(1.5), 1.5, NOW).status == "active"
    lost = runner_liveness(False, _ago(1.6), 1.5, NOW)
    assert lost.describe() == "lost (no heartbeat for 1.6 s; lease 1.5 s)"


def test_a_stopped_runner_is_stopped_however_old_its_last_heartbeat() -> None:
    liveness = runner_liveness(True, _ago(3600), 30.0, NOW)
    assert (liveness.status, liveness.describe()) == ("stopped", "stopped")


def test_a_session_without_heartbeats_stays_active_and_says_it_cannot_tell() -> None:
    liveness = runner_liveness(False, None, None, NOW)
    assert liveness.status == "active"
    assert "records no heartbeat" in liveness.describe()


def test_a_heartbeat_from_a_clock_ahead_of_the_reader_counts_as_just_now() -> None:
    liveness = runner_liveness(False, NOW + timedelta(seconds=2), 30.0, NOW)
    assert (liveness.status, liveness.silent_seconds) == ("active", 0.0)


def _session() -> RunnerSession:
    return RunnerSession(
        runner_id="r1",
        queue_name="q",
        backend="b",
        device="cpu",
        job_types=["inference"],
        started_at=NOW,
    )


def test_renewing_a_session_records_when_and_for_how_long() -> None:
    session = _session()
    session.renew(_ago(-5), 30)
    assert (session.renewed_at, session.lease_seconds) == (_ago(-5), 30.0)
    assert type(session.collect_events()[-1]) is RunnerSession.LeaseRenewed


def test_renewing_with_a_lease_that_is_not_positive_is_refused_and_records_nothing() -> None:
    session = _session()
    with pytest.raises(ValueError, match="lease_seconds"):
        session.renew(NOW, 0)
    assert [type(e) for e in session.collect_events()] == [RunnerSession.Started]


def test_a_stopped_session_records_no_more_heartbeats() -> None:
    session = _session()
    session.stop(NOW, {})
    session.renew(_ago(-1), 30)
    assert type(session.collect_events()[-1]) is RunnerSession.Stopped
    assert session.renewed_at is None
