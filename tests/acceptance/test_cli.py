"""The real `batchlog` command, run in subprocesses against a temporary data folder.

Every command is `sys.executable -m batchlog ...` with PYTHONPATH set to this checkout and
BATCHLOG_DATA_DIR pointing at the test's folder (the embedded SQLite default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.browser import free_port, write_scene

ROOT = Path(__file__).resolve().parents[2]
STALE = "Error: Analysis is stale - queue has changed. Please re-analyze."


class Cli:
    """Runs batchlog commands in a child process with a private data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("BATCHLOG_")
        }
        self.env.update(
            PYTHONPATH=str(ROOT),
            BATCHLOG_DATA_DIR=str(data_dir),
            BATCHLOG_ACTOR="cli-test",
            GRADIO_ANALYTICS_ENABLED="False",
            COLUMNS="200",
        )

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "batchlog", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, f"{args}: {done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail with one readable line and no traceback."""
        done = self.run(*args, ok=False)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path / "data")
    runner.run("migrate")
    return runner


@pytest.fixture
def prompt_ids(cli: Cli) -> list[str]:
    texts = ["a red ball rolls", "a blue cube spins", "a green ring drifts"]
    return [
        cli.run(
            "prompts", "add", text, "--video", "scene.mp4", "--depth", "depth.mp4"
        ).stdout.strip()
        for text in texts
    ]


def test_the_guides_workflow_runs_end_to_end(
    cli: Cli, prompt_ids: list[str], tmp_path: Path
) -> None:
    first = cli.run(
        "add", prompt_ids[0], prompt_ids[1], "--weights", '{"vis": 0.5, "edge": 0.3, "depth": 0.2}'
    ).stdout.strip()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "\n".join(
            json.dumps({"prompt_ids": [pid], "config": {"weights": weights}})
            for pid, weights in [
                (prompt_ids[2], {"vis": 0.3, "edge": 0.5, "depth": 0.2}),
                (prompt_ids[0], {"vis": 0.6, "depth": 0.4}),
            ]
        ),
        encoding="utf-8",
    )
    more = cli.json("add", "--file", str(jobs))["job_ids"]
    status = cli.json("status")
    assert [job["id"] for job in status["queued_jobs"]] == [first, *more]

    assert "Queue paused." in cli.run("pause").stdout
    cli.run("batch-size", "4")
    strict = cli.run("analyze").stdout
    assert "⚡ Smart Batching Analysis (Strict Mode):" in strict
    assert "- 4 runs from 3 jobs → 2 batches" in strict
    assert "  Batch 1: 3 runs from 2 jobs (vis, edge, depth)" in strict
    mixed = cli.json("analyze", "--mixed")
    assert mixed["mode"] == "mixed" and mixed["efficiency"]["total_runs"] == 4
    assert "(Mixed Mode)" in cli.run("preview").stdout
    strict_again = cli.json("analyze")
    assert cli.json("preview")["analysis_id"] == strict_again["analysis_id"]

    result = cli.run("execute")
    assert result.stdout.strip() == "Queue reorganized successfully. 3 jobs → 2 batches"
    after = cli.json("status")
    assert [job["type"] for job in after["queued_jobs"]] == ["batch_inference"] * 2
    assert sorted(j for job in after["queued_jobs"] for j in job["source_job_ids"]) == sorted(
        [first, *more]
    )
    assert "Queue resumed." in cli.run("resume").stdout
    assert cli.json("status")["paused"] is False

    lineage = cli.json("lineage", first)
    assert lineage["merged_into"] in {job["id"] for job in after["queued_jobs"]}
    before_execute = cli.json("queue-at", str(strict_again["sequence"]))
    assert [job["id"] for job in before_execute["queued_jobs"]] == [first, *more]


def test_a_stale_execute_exits_non_zero_with_the_guides_message(
    tmp_path: Path, database_url: str
) -> None:
    cli = Cli(tmp_path / "data")
    cli.env["BATCHLOG_DATABASE_URL"] = database_url
    prompt_ids = [cli.run("prompts", "add", text).stdout.strip() for text in ("one", "two")]
    cli.run("add", prompt_ids[0], "--weights", '{"vis": 0.5}')
    cli.run("pause")
    analysis = cli.json("analyze")
    cli.run("add", prompt_ids[1], "--weights", '{"vis": 0.5}')
    before = cli.json("status")

    line = cli.fails("execute", "--analysis", analysis["analysis_id"])

    assert line == STALE
    assert cli.fails("execute") == STALE
    assert cli.json("status") == before


def test_a_validation_error_exits_with_one_line_naming_the_field_and_appends_nothing(
    cli: Cli, prompt_ids: list[str]
) -> None:
    before = cli.json("status")["sequence"]
    line = cli.fails("add", prompt_ids[0], "--weights", '{"vis": 2}')
    assert line == "Error: config.weights: weight of 'vis' in weights is 2; allowed: 0 to 1"
    assert "allowed: inference, batch_inference" in cli.fails("add", prompt_ids[0], "--type", "x")
    assert "is not valid JSON" in cli.fails("add", prompt_ids[0], "--weights", "{vis")
    assert "allowed: 1 to 64" in cli.fails("batch-size", "0")
    assert cli.json("status")["sequence"] == before


def test_unknown_ids_and_missing_analysis_are_one_line_errors(cli: Cli) -> None:
    assert "job_nope" in cli.fails("cancel", "job_nope")
    assert "unknown prompt id 'ps_nope'" in cli.fails("add", "ps_nope", "--weights", '{"vis": 1}')
    cli.run("pause")
    assert (
        cli.fails("execute")
        == "Error: No analysis available. Run analyze_queue_for_smart_batching first."
    )


def test_read_commands_print_json_for_scripts(cli: Cli, prompt_ids: list[str]) -> None:
    job = cli.json("add", prompt_ids[0], "--weights", '{"vis": 0.5}', "--priority", "70")[
        "job_ids"
    ][0]
    status = cli.json("status")
    assert status["queue"] == "default" and status["total_queued"] == 1
    (queued,) = status["queued_jobs"]
    assert (queued["id"], queued["priority"], queued["controls"]) == (job, 70, ["vis"])
    prompts = cli.json("prompts", "list")
    assert [p["prompt_id"] for p in prompts] == prompt_ids
    assert prompts[0]["control_inputs"] == {"depth": "depth.mp4"}
    assert cli.json("preview") is None
    listed = cli.run("prompts", "list").stdout
    assert all(pid in listed for pid in prompt_ids)


def test_ui_refuses_a_network_address_without_credentials(cli: Cli) -> None:
    line = cli.fails("ui", "--host", "0.0.0.0", "--port", str(free_port()))
    assert "without credentials" in line and "--auth" in line and "BATCHLOG_UI_AUTH" in line
    assert "user:password" in cli.fails("ui", "--host", "0.0.0.0", "--auth", "nopassword")
    assert "allowed: 1 to 65535" in cli.fails("ui", "--port", "70000")
    assert "allowed: 0.2 to 3600" in cli.fails("ui", "--refresh", "0")


def _wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"batchlog ui exited: {process.communicate()[1]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _login(base: str, user: str, password: str) -> int:
    body = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(f"{base}login", data=body, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_ui_serves_on_loopback_and_checks_credentials_when_given(cli: Cli) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "batchlog", "ui", "--port", str(port), "--auth", "ana:s3cret"],
        env=cli.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/"
        page = _wait_for_http(base, process)
        assert "<html" in page.lower()
        assert _login(base, "ana", "wrong") >= 400
        assert _login(base, "ana", "s3cret") == 200
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.terminate()
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def test_ui_with_runner_runs_the_queue_and_stops_cleanly_on_sigterm(
    cli: Cli, tmp_path: Path
) -> None:
    scene = write_scene(tmp_path / "scene.mp4")
    prompt = cli.run("prompts", "add", "a square drifts", "--video", str(scene)).stdout.strip()
    small = '{"weights": {"vis": 0.5}, "num_steps": 2, "width": 16, "height": 16, "frames": 2}'
    job = cli.run("add", prompt, "--config", small).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "batchlog", "ui", "--port", str(port), "--with-runner"],
        env=cli.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/", process)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status = cli.json("status")
            if not status["queued_jobs"] and not status["running"]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the hosted runner did not take {job}: {status}")
        outputs = list((tmp_path / "data" / "artifacts").rglob("*.mp4"))
        assert outputs, "the hosted runner wrote no output video"
        base = f"http://127.0.0.1:{port}/gradio_api/file="
        assert _status(base + str(outputs[0])) == 200
        assert _status(base + str(tmp_path / "data" / "batchlog.sqlite3")) >= 400
    finally:
        code, err = _stop(process)
    assert code == 0, err
    runners = cli.json("runners")["runners"]
    assert len(runners) == 1 and runners[0]["active"] is False
