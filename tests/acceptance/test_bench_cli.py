"""`batchlog bench --quick` and `batchlog report` as a user runs them: real processes, real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchlog import QueueService
from batchlog.adapters.settings import Settings
from tests.integration.test_calibration import record_execution

REPO_ROOT = Path(__file__).resolve().parents[2]


def batchlog(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "batchlog", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.postgres
def test_bench_quick_runs_end_to_end_and_writes_report_json_and_charts(
    postgres_server_url: str, tmp_path: Path
) -> None:
    done = batchlog(
        "bench",
        "--quick",
        "--postgres-url",
        postgres_server_url,
        "--output-dir",
        str(tmp_path),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    for heading in ("## 1. Enqueue", "## 2. Analysis and staleness check", "## 6. Estimate"):
        assert heading in report
    assert "No GPU figure exists yet" in report
    enqueue = json.loads((tmp_path / "enqueue.json").read_text(encoding="utf-8"))
    assert set(enqueue["ratios"]) == {
        "add_job / raw",
        "add_job / pgqueuer single",
        "add_jobs bulk / pgqueuer batch",
    }
    assert all(value > 0 for value in enqueue["medians"].values())
    analysis = json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))
    assert set(analysis["staleness"]["median_seconds"]) == {"10 jobs", "1000 jobs"}
    for chart in ("enqueue.png", "analysis.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_shows_estimated_and_measured_seconds(sqlite_url: str, settings: Settings) -> None:
    with QueueService(sqlite_url, settings=settings) as service:
        prompts = [service.create_prompt(f"prompt {i}") for i in range(3)]
        for prompt in prompts:
            service.add_job([prompt], config={"weights": {"vis": 0.5}})
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis is not None
        executed = service.execute_smart_batches()
        service.set_queue_paused(False)
        record_execution(service, executed["batch_job_ids"][0], 2.5)
    done = batchlog("report", "--database-url", sqlite_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["analysis_id"] == analysis["analysis_id"]
    assert report["measured_seconds_batched"] == pytest.approx(2.5)
    assert report["measured_speedup"] == pytest.approx(
        analysis["efficiency"]["estimated_seconds_unbatched"] / 2.5
    )
    table = batchlog("report", analysis["analysis_id"], "--database-url", sqlite_url)
    assert table.returncode == 0, table.stderr
    assert "2.50 s" in table.stdout
    assert "measured" in table.stdout
    every = batchlog("report", "--all", "--database-url", sqlite_url, "--json")
    assert [plan["analysis_id"] for plan in json.loads(every.stdout)] == [analysis["analysis_id"]]


def test_report_of_an_unknown_analysis_is_a_readable_error(sqlite_url: str) -> None:
    done = batchlog("report", "an_nothing", "--database-url", sqlite_url)
    assert done.returncode == 1
    assert "No analysis 'an_nothing'" in done.stderr
