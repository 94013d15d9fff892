"""The cosmos-transfer backend driven by the real runner over a real queue (SQLite and PostgreSQL).

Jobs go in through QueueService, smart batching reorganizes them, a runner in drain mode
claims the batches and runs them through the stand-in transfer program; the outcomes are
read back from the event log.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.inference.cosmos_transfer import create_backend
from tests.fixtures.queues import events_named, fill_queue, read_events

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_cosmos_transfer.py"
TEMPLATE = [
    sys.executable,
    str(FAKE),
    "--controlnet_specs={spec}",
    "--batch_input_path={batch_jsonl}",
    "--video_save_folder={out_dir}",
    "--batch_size={batch_size}",
]


def drain(url: str, tmp_path: Path, *extra: str) -> dict:
    backend = create_backend(
        artifacts_dir=tmp_path / "out", command=[*TEMPLATE, *extra], checkpoint_dir="/ckpt"
    )
    runner = build_runner(
        url, backend=backend, artifacts_dir=tmp_path / "out", backoff_seconds=0.05
    )
    try:
        return runner.run(until_idle=True)
    finally:
        runner.close()


def received_lines(tmp_path: Path) -> dict[str, dict[str, float]]:
    """prompt text -> the weights the stand-in read for it, over every invocation."""
    found: dict[str, dict[str, float]] = {}
    for report in (tmp_path / "out" / "cosmos-transfer").glob(
        "*/invocation*/outputs/received.json"
    ):
        for line in json.loads(report.read_text())["lines"]:
            found[line["prompt"]] = line["weights"]
    return found


def test_a_mixed_smart_batch_runs_through_the_runner_with_each_runs_own_weights(
    database_url: str, tmp_path: Path
) -> None:
    fill_queue(database_url, [{"vis": 0.7}, {"edge": 0.4, "vis": 0.2}], mode="mixed").close()

    drain(database_url, tmp_path)

    events = read_events(database_url)
    succeeded = events_named(events, "RunSucceeded")
    assert len(succeeded) == 4 and not events_named(events, "RunFailed")
    for event in succeeded:
        assert hashlib.sha256(Path(event.output_path).read_bytes()).hexdigest() == event.sha256
    assert received_lines(tmp_path) == {
        "job 0 prompt 0": {"vis": 0.7, "edge": 0.0},
        "job 0 prompt 1": {"vis": 0.7, "edge": 0.0},
        "job 1 prompt 0": {"vis": 0.2, "edge": 0.4},
        "job 1 prompt 1": {"vis": 0.2, "edge": 0.4},
    }


def test_an_out_of_memory_exit_makes_the_runner_split_the_batch(
    sqlite_url: str, tmp_path: Path
) -> None:
    fill_queue(sqlite_url, [{"vis": 0.5}], prompts_per_job=4).close()

    drain(sqlite_url, tmp_path, "--oom-above=1")

    events = read_events(sqlite_url)
    splits = events_named(events, "ItemSplit")
    assert [s.reason for s in splits] == ["out-of-memory"] * 3
    assert [len(new["run_ids"]) for s in splits for new in s.new_jobs] == [2, 2, 1, 1, 1, 1]
    assert [f.out_of_memory for f in events_named(events, "Failed")] == [True] * 3
    assert len(events_named(events, "RunSucceeded")) == 4
