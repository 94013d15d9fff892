"""Starting and stopping real `batchlog runner` processes for acceptance tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from batchlog import QueueService

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_BACKENDS = {
    "files": "tests.fixtures.backends:create_file_backend",
    "torch": "tests.fixtures.backends:create_delayed_torch_backend",
    "torch-cli": "torch",
}


class RunnerProcesses:
    """Starts runner processes and kills whatever is left of them at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        url: str,
        runner_id: str,
        *options: str,
        delay: float = 0.0,
        gate: Path | None = None,
        backend: str = "files",
    ) -> subprocess.Popen[bytes]:
        """A runner process on the test backend, logging to tmp_path/<runner_id>.log.

        With a gate, each batch ends only once that file exists, so a test can act while the
        runner holds an item without racing the batch's end.
        """
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "BATCHLOG_DATA_DIR": str(self.tmp_path / "data"),
            "BATCHLOG_TEST_BACKEND_DELAY": str(delay),
            "BATCHLOG_TEST_BACKEND_GATE": str(gate or ""),
        }
        log = (self.tmp_path / f"{runner_id}.log").open("wb")
        command = [
            sys.executable, "-m", "batchlog", "runner",
            "--backend", TEST_BACKENDS[backend],
            "--database-url", url,
            "--runner-id", runner_id,
            "--artifacts", str(self.tmp_path / "artifacts"),
            "--poll-seconds", "0.2",
            *options,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.started.append(process)
        return process

    def log(self, runner_id: str) -> str:
        """What a runner printed."""
        return (self.tmp_path / f"{runner_id}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """Kill every started process that still runs, and reap it."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll a condition every 50 ms; fail the test with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def listed_runners(url: str) -> dict[str, dict]:
    """What `batchlog runners --json` lists, by runner id."""
    listed = subprocess.run(
        [sys.executable, "-m", "batchlog", "runners", "--json", "-d", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=True,
    )
    return {runner["runner_id"]: runner for runner in json.loads(listed.stdout)["runners"]}


def running_item_of(service: QueueService, runner_id: str) -> dict | None:
    """The item a runner holds now, per the queue, or None."""
    for item in service.get_queue_status()["running"]:
        if item.get("claimed_by") == runner_id:
            return item
    return None
