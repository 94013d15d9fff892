"""`batchlog runner` (a long-lived or draining runner with graceful shutdown) and `batchlog runners`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.table import Table

from batchlog.adapters.bootstrap import build_runner
from batchlog.adapters.cli.app import (
    DatabaseOption,
    JsonOption,
    QueueOption,
    app,
    console,
    error_console,
    print_json,
    user_errors,
)
from batchlog.adapters.runner_status import runner_overview
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import open_store


@app.command("runner")
def runner_command(
    backend: str = typer.Option(
        "torch", "--backend", help="torch, cosmos-transfer, or module:factory"
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto"),
    lease_seconds: float = typer.Option(30.0, "--lease-seconds", help="Lease of a claim"),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Attempts before dead-letter"),
    backoff_seconds: float = typer.Option(
        1.0, "--backoff-seconds", help="First retry delay (doubles per attempt)"
    ),
    grace_seconds: float = typer.Option(
        30.0, "--grace-seconds", help="On SIGTERM, wait this long for the batch, then release it"
    ),
    poll_seconds: float = typer.Option(1.0, "--poll-seconds", help="Longest wait between checks"),
    max_batch_seconds: float | None = typer.Option(
        None,
        "--max-batch-seconds",
        help="Abandon a batch running longer and record it failed (default: no limit)",
    ),
    artifacts: Path | None = typer.Option(
        None, "--artifacts", help="Output folder (default: data folder/artifacts)"
    ),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Drain mode: run everything runnable, then exit 0"
    ),
    runner_id: str | None = typer.Option(None, "--runner-id", help="Id recorded on claims"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Claim queued items in order, run them on the backend, and record every outcome."""
    with user_errors():
        runner = build_runner(
            database_url,
            backend_name=backend,
            device=device,
            artifacts_dir=artifacts,
            runner_id=runner_id,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            queue_name=queue,
            backoff_seconds=backoff_seconds,
            grace_seconds=grace_seconds,
            poll_seconds=poll_seconds,
            max_batch_seconds=max_batch_seconds,
        )
    stop = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            error_console.print(f"{name} again: releasing the current item now")
            runner.release_now()
            return
        error_console.print(f"{name}: no new claims; finishing the current batch or releasing it")
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with user_errors():
            summary = runner.run(until_idle=until_idle, stop_event=stop, on_progress=_report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runner.close()
    if as_json:
        print_json(summary)
    else:
        error_console.print(
            f"Runner {summary['runner_id']}: {summary['finished']} batch(es) finished, "
            f"{summary['succeeded_runs']} run(s) ok, {summary['failed_runs']} failed, "
            f"{summary['retried']} retried, {summary['split']} split, "
            f"{summary['dead_lettered']} dead-lettered, {summary['released']} released"
            + (f", {summary['abandoned']} abandoned (time limit)." if summary["abandoned"] else ".")
        )


def _report(progress: dict[str, Any]) -> None:
    event = progress.get("event")
    if event in {"claimed", "finished", "retry", "split", "dead-letter", "released", "refused"}:
        details = " ".join(f"{k}={v}" for k, v in progress.items() if k != "event")
        error_console.print(f"{event}: {details}", markup=False, highlight=False)


@app.command("runners")
def runners_command(
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """List runners (active, lost: no heartbeat within its lease, or stopped) and the items no
    active runner can take."""
    with user_errors():
        settings = Settings.from_environment().with_database_url(database_url)
        store = open_store(settings.database_url)
        try:
            overview = runner_overview(store, queue or settings.queue_name)
        finally:
            store.close()
    if as_json:
        print_json(overview)
        return
    table = Table("runner", "status", "backend", "device", "job types", "started")
    for runner in overview["runners"]:
        table.add_row(
            runner["runner_id"],
            runner["status_text"],
            runner["backend"],
            runner["device"],
            ", ".join(runner["job_types"]),
            runner["started_at"],
        )
    console.print(table)
    for item in overview["unrunnable"]:
        console.print(f"waiting: {item['id']} ({item['type']}): {item['reason']}")
