"""Pure tests of the runner's domain pieces: split, settle, refusal, and the failure policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.errors import ClaimSupersededError, QueueNotPausedError
from batchlog.domain.execution import Execution
from batchlog.domain.queue import Queue
from batchlog.runner.backend import BackendError, BackendOutOfMemoryError
from batchlog.runner.loop import backoff_delay, decide_failure

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROMPTS = {f"p{i}": PromptFacts(f"p{i}", "", {}) for i in range(8)}


def _queue_with(*runs_per_job: int) -> Queue:
    queue = Queue(name="unit")
    start = 0
    for index, runs in enumerate(runs_per_job):
        ids = [f"p{start + n}" for n in range(runs)]
        start += runs
        job = validate_job(f"job_{index}", ids, "inference", {"weights": {"vis": 0.5}}, 50, PROMPTS)
        queue.add_job(f"job_{index}", job, "tester")
    return queue


def _claim(queue: Queue, job_id: str, token: str = "t1") -> None:
    queue.claim(job_id, "r1", token, NOW, NOW + timedelta(seconds=30))


def test_split_replaces_the_item_by_two_halves_at_its_place_in_order() -> None:
    queue = _queue_with(3, 1)
    _claim(queue, "job_0")
    new_jobs = queue.split_item("job_0", "t1", "out-of-memory", ["half_a", "half_b"])
    assert [len(new["run_ids"]) for new in new_jobs] == [2, 1]
    assert [i.job_id for i in queue.queued_in_order()] == ["half_a", "half_b", "job_1"]
    assert {i.job_type for i in queue.queued_in_order()[:2]} == {"batch_inference"}
    assert "job_0" not in queue.items


def test_split_needs_the_current_token_and_two_runs() -> None:
    queue = _queue_with(2, 1)
    _claim(queue, "job_0")
    with pytest.raises(ClaimSupersededError):
        queue.split_item("job_0", "other", "out-of-memory", ["a", "b"])
    _claim(queue, "job_1", "t2")
    with pytest.raises(ValueError, match="one run"):
        queue.split_item("job_1", "t2", "out-of-memory", ["a", "b"])


def test_split_state_survives_replay_from_its_events() -> None:
    queue = _queue_with(4)
    _claim(queue, "job_0")
    queue.split_item("job_0", "t1", "out-of-memory", ["a", "b"])
    events = queue.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert [i.job_id for i in replayed.queued_in_order()] == ["a", "b"]


def test_settle_removes_claimed_items_and_is_refused_while_paused() -> None:
    queue = _queue_with(1, 1)
    _claim(queue, "job_0")
    assert queue.settle(["job_0", "job_1", "nope"], actor="r1") == ["job_0"]
    assert list(queue.items) == ["job_1"]
    queue.set_paused(True, "t", "")
    with pytest.raises(QueueNotPausedError):
        queue.settle(["job_1"], actor="r1")


def test_only_an_ended_execution_records_a_refused_result() -> None:
    execution = Execution(
        queue_name="unit", item_id="job_0", claim_token="t1", runner_id="r1", attempt=1,
        backend="b", device="cpu", run_ids=["job_0:0"], controls=["vis"], parameters={},
        lease_expires_at=NOW,
    )  # fmt: skip
    with pytest.raises(ValueError):
        execution.refuse("r1", "late", [], NOW)
    execution.supersede("lease expired")
    execution.refuse("r1", "late", [{"run_id": "job_0:0"}], NOW)
    assert execution.refusals == [{"reason": "late", "state": "superseded"}]
    with pytest.raises(ClaimSupersededError):
        execution.record_run_succeeded("job_0:0", "p0", "x", "y", 1.0)


def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    assert [backoff_delay(a, 1.5, 10) for a in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 10]


@pytest.mark.parametrize(
    ("error", "runs", "attempt", "expected"),
    [
        (BackendOutOfMemoryError("oom"), 4, 3, ("split", True, True)),
        (BackendOutOfMemoryError("oom"), 1, 1, ("retry", True, True)),
        (BackendOutOfMemoryError("oom"), 1, 3, ("dead-letter", True, True)),
        (BackendError("flaky"), 2, 2, ("retry", True, False)),
        (BackendError("flaky"), 2, 3, ("dead-letter", True, False)),
        (BackendError("bad input", retryable=False), 2, 1, ("dead-letter", False, False)),
        (RuntimeError("unexpected"), 2, 1, ("retry", True, False)),
    ],
)
def test_failure_policy(error: BaseException, runs: int, attempt: int, expected: tuple) -> None:
    assert decide_failure(error, runs, attempt, max_attempts=3) == expected
