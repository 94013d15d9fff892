"""`batchlog demo --quick` end to end in a real process: real SQLite, real runner, real torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchlog.adapters.demo import records
from batchlog.adapters.queue_service import QueueService
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


def _batch_job_ids(service: QueueService) -> list[str]:
    events = service.store.events.get(queue_aggregate_id(service.queue_name))
    reorganized = [e for e in events if isinstance(e, Queue.Reorganized)]
    assert len(reorganized) == 1
    return [job["job_id"] for job in reorganized[0].new_jobs]


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
        batch_ids = _batch_job_ids(service)
        recorded = records.executions(service, batch_ids)
    assert status["total_queued"] == 0 and not status["running"]
    assert {r.state for r in recorded.values()} == {"finished"}
    assert abs(sum(r.seconds or 0.0 for r in recorded.values()) - float(measured)) <= 0.01 * len(
        batch_ids
    )
    assert sum(len(r.outputs) for r in recorded.values()) == int(runs)
    assert "<svg" in page and "data:image/png;base64," in page
    assert "Lineage of job" in page and "merged into" in page

    # Every output thumbnailed in the report is a real file the runner wrote.
    outputs = list((report.parent / "outputs").rglob("*.*"))
    assert len([p for p in outputs if p.is_file()]) >= int(runs)
    assert (tmp_path / "data" / "batchlog.sqlite3").is_file()
    assert not (tmp_path / "data" / "unused-default").exists()
