"""A real `batchlog runner --backend cosmos-transfer` process, configured by environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import batchlog.adapters.bootstrap  # noqa: F401  (registers the event topics read_events resolves)
from tests.fixtures.queues import events_named, fill_queue, read_events

pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE = REPO_ROOT / "tests" / "fixtures" / "fake_cosmos_transfer.py"


def test_the_cli_runner_takes_its_cosmos_command_from_the_environment(
    sqlite_url: str, tmp_path: Path
) -> None:
    fill_queue(sqlite_url, [{"vis": 0.3}, {"vis": 0.6, "edge": 0.2}], mode="strict").close()
    template = [
        sys.executable, str(FAKE),
        "--controlnet_specs", "{spec}", "--batch_input_path", "{batch_jsonl}",
        "--video_save_folder", "{out_dir}", "--batch_size", "{batch_size}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "BATCHLOG_DATA_DIR": str(tmp_path / "data"),
        "BATCHLOG_COSMOS_COMMAND": json.dumps(template),
    }
    command = [
        sys.executable, "-m", "batchlog", "runner", "--backend", "cosmos-transfer",
        "--database-url", sqlite_url, "--artifacts", str(tmp_path / "artifacts"),
        "--until-idle", "--json", "--poll-seconds", "0.2",
    ]  # fmt: skip

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["succeeded_runs"] == 4 and summary["failed_runs"] == 0
    outputs = [e.output_path for e in events_named(read_events(sqlite_url), "RunSucceeded")]
    assert all(Path(p).is_file() and "cosmos-transfer" in p for p in outputs)
    reports = sorted((tmp_path / "artifacts" / "cosmos-transfer").glob("*/*/outputs/received.json"))
    weights = sorted(
        tuple(sorted(line["weights"].items()))
        for report in reports
        for line in json.loads(report.read_text())["lines"]
    )
    assert weights == [(("edge", 0.2), ("vis", 0.6))] * 2 + [(("vis", 0.3),)] * 2
