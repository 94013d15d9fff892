"""`batchlog demo --quick` end to end in a real process: real SQLite, real runner, real torch."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchlog.adapters.queue_service import QueueService
from batchlog.domain.execution import Execution, execution_aggregate_id
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.queue import Queue

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.torch


def _run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BATCHLOG_DATA_DIR": str(data_dir / "unused-default"),
        "COLUMNS": "100",
    }
    env.pop("BATCHLOG_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "batchlog", "demo", "--quick", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _plan_executions(
    service: QueueService,
) -> tuple[list[Execution.Finished], list[Execution.RunSucceeded]]:
    """What the plan's batch jobs recorded, read from the log directly (not via the demo)."""
    events = list(service.store.events.get(queue_aggregate_id(service.queue_name)))
    (reorganized,) = [e for e in events if isinstance(e, Queue.Reorganized)]
    batch_ids = {job["job_id"] for job in reorganized.new_jobs}
    finished, succeeded = [], []
    for claim in (e for e in events if isinstance(e, Queue.ItemClaimed)):
        if claim.job_id in batch_ids:
            stream = service.store.events.get(
                execution_aggregate_id(claim.job_id, claim.claim_token)
            )
            for event in stream:
                if isinstance(event, Execution.Finished):
                    finished.append(event)
                elif isinstance(event, Execution.RunSucceeded):
                    succeeded.append(event)
    assert len(finished) == len(batch_ids)
    return finished, succeeded


def test_quick_demo_runs_end_to_end_and_reports_measured_figures(tmp_path: Path) -> None:
    result = _run_demo(tmp_path / "data")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Smart Batching Analysis (Strict Mode)" in out
    assert "Smart Batching Analysis (Mixed Mode)" in out
    assert "Queue reorganized successfully" in out

    match = re.search(r"Report: (\S+report\.html)", out)
    assert match, out[-2000:]
    report = Path(match.group(1))
    assert report.is_file() and report.is_relative_to(tmp_path / "data")
    page = report.read_text(encoding="utf-8")

    # The overall measured figures printed on the console are the ones in the report.
    total = re.search(
        r"^\s*all\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)x",
        out,
        re.M,
    )
    assert total, out[-3000:]
    runs, est, measured, est_solo, measured_solo, est_x, measured_x = total.groups()
    assert float(measured) > 0 and float(measured_solo) > 0
    for figure in (est, measured, est_solo, measured_solo, f"{measured_x}x", f"{est_x}x"):
        assert figure in page
    m, s, x = float(measured), float(measured_solo), float(measured_x)
    assert (s - 0.005) / (m + 0.005) - 0.005 <= x <= (s + 0.005) / (m - 0.005) + 0.005

    # The measured batched seconds are what the runner recorded in the event log.
    queue = re.search(r"Queue (demo-\S+) in (sqlite:\S+)", out)
    assert queue, out[-2000:]
    with QueueService(queue.group(2), queue_name=queue.group(1)) as service:
        status = service.get_queue_status()
        finished, succeeded = _plan_executions(service)
    assert status["total_queued"] == 0 and not status["running"]
    assert abs(sum(f.seconds for f in finished) - m) <= 0.005 * len(finished) + 1e-9
    assert len(succeeded) == int(runs)
    for run in succeeded:
        output = Path(run.output_path)
        assert output.is_relative_to(report.parent / "outputs")
        assert hashlib.sha256(output.read_bytes()).hexdigest() == run.sha256
    assert "<svg" in page and "data:image/png;base64," in page
    assert "Lineage of job" in page and "merged into" in page
    assert (tmp_path / "data" / "batchlog.sqlite3").is_file()
    assert not (tmp_path / "data" / "unused-default").exists()
