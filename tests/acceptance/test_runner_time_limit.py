"""Real runner processes with --max-batch-seconds: an overlong batch is abandoned and failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.acceptance.runner_processes import REPO_ROOT, RunnerProcesses, wait_until
from tests.fixtures.queues import events_named, fill_queue, read_events


def test_an_overlong_batch_is_recorded_failed_and_retried_by_another_runner(
    sqlite_url: str, processes: RunnerProcesses, tmp_path: Path
) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}])
    (job,) = service.get_queue_status()["queued_jobs"]
    limits = ("--max-batch-seconds", "0.5", "--max-attempts", "2", "--backoff-seconds", "0.1")
    never_ends = tmp_path / "slow-batch-may-end"
    slow = processes.start(sqlite_url, "slow", *limits, gate=never_ends)
    failures = wait_until(
        lambda: events_named(read_events(sqlite_url), "Execution.Failed"),
        60,
        "the overlong batch to be recorded as failed",
    )
    (failure,) = failures  # type: ignore[misc]
    assert "ran past the 0.5 s limit (--max-batch-seconds)" in failure.error
    assert failure.error.startswith("BatchTimeLimitError: ") and failure.retryable

    helper = processes.start(sqlite_url, "helper", "--until-idle")
    assert helper.wait(timeout=120) == 0, processes.log("helper")
    events = read_events(sqlite_url)
    (requeued,) = events_named(events, "ItemRequeued")
    assert (requeued.job_id, requeued.reason) == (job["id"], "failure")
    assert requeued.not_before is not None
    claims = events_named(events, "ItemClaimed")
    assert [(c.runner_id, c.attempt) for c in claims] == [("slow", 1), ("helper", 2)]
    (finished,) = events_named(events, "Finished")
    (retried,) = [s for s in events_named(events, "Execution.Started") if s.runner_id == "helper"]
    assert finished.originator_id == retried.originator_id

    assert slow.poll() is None, "the runner with the abandoned batch should still run"
    slow.send_signal(signal.SIGTERM)
    assert slow.wait(timeout=120) == 0, processes.log("slow")
    assert "1 abandoned (time limit)" in processes.log("slow")
    service.close()


def test_an_overlong_batch_on_its_last_attempt_is_dead_lettered_and_drain_mode_exits(
    sqlite_url: str, processes: RunnerProcesses, tmp_path: Path
) -> None:
    service = fill_queue(sqlite_url, [{"vis": 0.5}])
    (job,) = service.get_queue_status()["queued_jobs"]
    options = ("--until-idle", "--json", "--max-batch-seconds", "0.5", "--max-attempts", "1")
    drainer = processes.start(sqlite_url, "drainer", *options, gate=tmp_path / "never")
    assert drainer.wait(timeout=120) == 0, processes.log("drainer")
    log = processes.log("drainer")
    summary = json.loads(log[log.index("{") :])
    assert (summary["abandoned"], summary["dead_lettered"], summary["finished"]) == (1, 1, 0)
    (dead,) = events_named(read_events(sqlite_url), "ItemDeadLettered")
    assert (dead.job_id, dead.reason) == (job["id"], "failure")
    assert "--max-batch-seconds" in dead.error
    service.close()


def test_a_time_limit_that_is_not_positive_is_refused_naming_the_option(
    sqlite_url: str, tmp_path: Path
) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}]).close()
    before = len(read_events(sqlite_url))
    refused = subprocess.run(
        [sys.executable, "-m", "batchlog", "runner", "-d", sqlite_url, "--until-idle",
         "--backend", "tests.fixtures.backends:create_file_backend",
         "--max-batch-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "BATCHLOG_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "max_batch_seconds" in refused.stderr + refused.stdout
    assert len(read_events(sqlite_url)) == before
