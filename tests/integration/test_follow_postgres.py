"""Three writer processes append concurrently while a host follows the log by LISTEN/NOTIFY:
the views end with every event applied and none skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchlog.adapters.store import open_store
from batchlog.adapters.views import ProjectionHost
from batchlog.adapters.views.replay import verify
from batchlog.projections import PROJECTION_NAMES

ROOT = Path(__file__).resolve().parents[2]
JOBS_PER_WRITER = 30
WRITER = """
import sys
from batchlog import QueueService
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with QueueService(url, actor=name) as service:
    for index in range(count):
        prompt = service.create_prompt(f"{name} prompt {index}")
        service.add_job([prompt], config={"weights": {"vis": 0.5}})
"""


@pytest.mark.postgres
def test_three_writer_processes_and_a_follower_miss_no_event(postgres_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = open_store(postgres_url)
    host = ProjectionHost(postgres_url, poll_interval=0.05)
    second = ProjectionHost(postgres_url, poll_interval=0.05)  # a rival host of the same views
    writers: list[subprocess.Popen[bytes]] = []
    try:
        host.start()
        second.start()
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, postgres_url, f"writer{n}", str(JOBS_PER_WRITER)],
                env=env,
                stderr=subprocess.PIPE,
            )
            for n in range(3)
        ]
        for writer in writers:
            _, stderr = writer.communicate(timeout=180)
            assert writer.returncode == 0, stderr.decode()[-2000:]
        head = int(store.recorder.max_notification_id() or 0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(row["position"] >= head for row in host.status()):
                break
            time.sleep(0.1)
        assert host.following and host.last_error is None
        assert second.following and second.last_error is None
        assert [row["error"] for row in host.status()] == [None, None, None]

        stored = {n.id for n in store.recorder.select_notifications(start=1, limit=100_000)}
        projected = {
            int(row["position"]) for row in host.views.query("SELECT position FROM history_events")
        }
        assert projected == stored  # every event applied, none skipped, none twice
        jobs = host.views.query("SELECT submitter FROM queue_view_items WHERE status = 'queued'")
        assert sorted(row["submitter"] for row in jobs) == sorted(
            f"writer{n}" for n in range(3) for _ in range(JOBS_PER_WRITER)
        )
        host.stop()
        second.stop()
        assert verify(store, host.views, list(PROJECTION_NAMES)).ok
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait(10)
        host.close()
        second.close()
        store.close()
