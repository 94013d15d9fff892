"""The projection commands as a user runs them: real `batchlog` processes on a SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from batchlog.adapters.store import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BATCHLOG_DATA_DIR": str(tmp_path / "data"),
        "BATCHLOG_ACTOR": "operator",
        "COLUMNS": "250",
    }
    env.pop("BATCHLOG_DATABASE_URL", None)

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "batchlog", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done

    run("migrate")
    run.url = f"sqlite:///{tmp_path / 'data' / 'batchlog.sqlite3'}"  # type: ignore[attr-defined]
    return run


def test_history_export_queue_at_and_verify(cli):
    prompt = cli("prompts", "add", "a cat").stdout.strip()
    first = cli("add", prompt, "--weights", '{"vis": 0.5}').stdout.strip()
    cli("add", prompt, "--weights", '{"edge": 0.5}')
    lines = [json.loads(line) for line in cli("history", "--format", "jsonl").stdout.splitlines()]
    assert [row["event_type"] for row in lines] == [
        "PromptCreated",
        "Created",
        "JobAdded",
        "JobAdded",
    ]
    assert all({"position", "sequence", "timestamp", "topic", "payload"} <= set(r) for r in lines)
    since = json.loads(cli("history", "--since", "3", "--format", "json").stdout)
    assert [row["position"] for row in since] == [4]
    mine = json.loads(cli("history", "--job", first, "--format", "json").stdout)
    assert [row["event_type"] for row in mine] == ["JobAdded"]
    at_two = json.loads(cli("queue-at", "2", "--json").stdout)
    assert [job["id"] for job in at_two["queued_jobs"]] == [first]
    assert "allowed: table, jsonl, json" in cli("history", "--format", "xml", expect=1).stderr
    assert "Every rebuilt view equals its live view." in cli("replay", "--verify").stdout

    with sqlite3.connect(cli.url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE history_events SET summary = 'edited' WHERE position = 3")
    out = cli("replay", "--verify", expect=2).stdout
    assert "DIFF history_events [position=3]: differs in summary" in out


def test_a_stopped_view_is_named_and_an_operator_can_skip_the_event(cli):
    cli("prompts", "add", "a cat")
    store = open_store(cli.url)
    state = store.mapper.transcoder.encode({"timestamp": datetime.now(UTC)})
    store.recorder.insert_events(
        [StoredEvent(uuid.uuid4(), 1, "batchlog.queue:Queue.Frobnicated", state)]
    )
    store.close()
    failed = cli("projections", "run", "--once", expect=1)
    assert "queue stopped at event 2 (batchlog.queue:Queue.Frobnicated)" in failed.stderr
    status = {row["name"]: row for row in json.loads(cli("projections", "status", "--json").stdout)}
    assert status["queue"]["state"] == "stopped" and status["history"]["state"] == "current"
    assert "is not stopped" in cli("projections", "retry", "history", expect=1).stderr
    assert (
        "only the event it stopped on"
        in cli("projections", "skip", "queue", "--position", "1", "--reason", "x", expect=1).stderr
    )
    cli("projections", "skip", "queue", "--position", "2", "--reason", "written by a newer version")
    status = {row["name"]: row for row in json.loads(cli("projections", "status", "--json").stdout)}
    assert status["queue"]["state"] == "current"
    assert status["queue"]["skips"][0]["reason"] == "written by a newer version"
    assert status["queue"]["skips"][0]["actor"] == "operator"
    cli("replay", "--verify")


def test_projections_run_follows_the_log_in_its_own_process_until_sigterm(cli, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATCHLOG_DATA_DIR": str(tmp_path / "data")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "batchlog", "projections", "run", "--poll", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        prompt = cli("prompts", "add", "a cat").stdout.strip()
        cli("add", prompt, "--weights", '{"vis": 0.5}')
        db = sqlite3.connect(cli.url.removeprefix("sqlite:///"))
        deadline = time.monotonic() + 30
        rows: list[tuple[str, int]] = []
        while time.monotonic() < deadline:
            rows = db.execute("SELECT name, position FROM projection_tracking").fetchall()
            if rows and all(position == 3 for _, position in rows):
                break
            time.sleep(0.05)
        db.close()
        assert sorted(rows) == [("history", 3), ("queue", 3), ("stats", 3)]
        follower.send_signal(signal.SIGTERM)
        _, stderr = follower.communicate(timeout=30)
        assert follower.returncode == 0, stderr
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
