"""Projection commands: run/status/retry/skip, replay --verify, history, lineage, queue-at."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from batchlog.adapters.cli.app import (
    DatabaseOption,
    JsonOption,
    QueueOption,
    app,
    console,
    error_console,
    print_json,
    service,
    user_errors,
)
from batchlog.adapters.settings import Settings
from batchlog.adapters.views.host import ProjectionHost
from batchlog.adapters.views.replay import rebuild, verify
from batchlog.domain.errors import ValidationError
from batchlog.projections import PROJECTION_NAMES

projections_app = typer.Typer(
    help="Run and inspect the read views (queue, history, stats).", no_args_is_help=True
)
app.add_typer(projections_app, name="projections")

HISTORY_FORMATS = ("table", "jsonl", "json")
EXIT_DIFFERENT = 2


def _url(database_url: str | None) -> str:
    return Settings.from_environment().with_database_url(database_url).database_url


def _names(names: list[str] | None) -> list[str]:
    chosen = list(names or PROJECTION_NAMES)
    for name in chosen:
        if name not in PROJECTION_NAMES:
            raise ValidationError(
                "name", f"{name!r} is not a projection; allowed: {', '.join(PROJECTION_NAMES)}"
            )
    return chosen


@contextlib.contextmanager
def _host(database_url: str | None, names: list[str] | None = None) -> Iterator[ProjectionHost]:
    with user_errors():
        host = ProjectionHost(_url(database_url), _names(names))
        try:
            yield host
        finally:
            host.close()


@projections_app.command("run")
def run_command(
    names: list[str] = typer.Argument(None, help="Projections to run (default: all)"),
    once: bool = typer.Option(False, "--once", help="Catch up to the log head, then exit"),
    poll: float = typer.Option(
        0.2, "--poll", help="Poll interval in seconds (SQLite; PostgreSQL safety net)"
    ),
    database_url: str | None = DatabaseOption,
) -> None:
    """Apply the log to the views: catch up once, or follow it until SIGTERM/Ctrl-C."""
    with _host(database_url, names) as host:
        host.poll_interval = poll
        if once:
            with user_errors():
                applied = host.catch_up()
            console.print(f"Applied {applied} event(s).")
        else:
            stopping = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
            host.start()
            console.print(f"Following the log for {', '.join(_names(names))} (Ctrl-C to stop).")
            while not stopping.wait(0.5):
                pass
            host.stop()
        stopped = [row for row in host.status() if row["error"]]
    for row in stopped:
        error = row["error"]
        error_console.print(
            f"Error: projection {row['name']} stopped at event {error['position']} "
            f"({error['topic']}): {error['message']}",
            markup=False,
            highlight=False,
        )
    if stopped:
        raise typer.Exit(1)


@projections_app.command("status")
def status_command(
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Each view's position, lag behind the log head, last error and recorded skips."""
    with _host(database_url) as host, user_errors():
        report = host.status()
    if as_json:
        print_json(report)
        return
    table = Table("view", "position", "head", "lag", "state", "stopped at", "error", "skips")
    for row in report:
        error = row["error"] or {}
        table.add_row(
            row["name"],
            str(row["position"]),
            str(row["head"]),
            str(row["lag"]),
            row["state"],
            f"{error['position']} {error['topic']}" if error else "",
            error.get("message", ""),
            "; ".join(f"{s['position']}: {s['reason']} ({s['actor']})" for s in row["skips"]),
        )
    console.print(table)


@projections_app.command("retry")
def retry_command(
    name: str = typer.Argument(..., help="The stopped projection"),
    database_url: str | None = DatabaseOption,
) -> None:
    """Clear a stopped projection's error so it tries the failed event again."""
    with _host(database_url, [name]) as host, user_errors():
        if not host.views.clear_error(name):
            raise ValidationError("name", f"projection {name!r} is not stopped")
        host.catch_up()
        report = {row["name"]: row for row in host.status()}[name]
    if report["error"]:
        error = report["error"]
        error_console.print(
            f"Error: {name} stopped again at event {error['position']} ({error['topic']}): "
            f"{error['message']}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"{name} resumed; now at position {report['position']} of {report['head']}.")


@projections_app.command("skip")
def skip_command(
    name: str = typer.Argument(..., help="The stopped projection"),
    position: int = typer.Option(
        ..., "--position", help="Global position of the event it stopped on"
    ),
    reason: str = typer.Option(..., "--reason", help="Why skipping is right (recorded)"),
    database_url: str | None = DatabaseOption,
) -> None:
    """Skip the one event a projection stopped on; the skip is recorded and shown in status."""
    with _host(database_url, [name]) as host, user_errors():
        if not reason.strip():
            raise ValidationError("--reason", "must say why the event is skipped")
        skipped = host.views.skip(name, position, reason, Settings.from_environment().actor)
        host.catch_up()
    console.print(f"Skipped event {position} ({skipped['topic']}) in {name}: {reason}")


@app.command("replay")
def replay_command(
    names: list[str] = typer.Argument(None, help="Views to rebuild (default: all)"),
    check: bool = typer.Option(False, "--verify", help="Compare the rebuild with the live views"),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        min=1,
        help="Processes rebuilding views side by side (default: chosen by the log's length, at "
        "most one per view and per CPU; 1: all in this process)",
    ),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Rebuild views from the log into scratch tables; with --verify, report every difference."""
    with _host(database_url, names) as host, user_errors():
        host.catch_up()
        chosen = _names(names)
        if check:
            report = verify(host.store, host.views, chosen, jobs=jobs)
            rebuilt, differences = report.rebuild, report.differences
        else:
            targets = {n: int(host.views.tracking()[n]["position"]) for n in chosen}
            rebuilt, differences = rebuild(host.database_url, targets, jobs), []
    rate = rebuilt.events / rebuilt.seconds if rebuilt.seconds else 0.0
    if as_json:
        print_json(
            {
                "targets": rebuilt.targets,
                "events": rebuilt.events,
                "rows": rebuilt.rows,
                "seconds": rebuilt.seconds,
                "verified": check,
                "differences": differences,
            }
        )
    else:
        console.print(
            f"Rebuilt {', '.join(rebuilt.targets)} from {rebuilt.events} events "
            f"({rebuilt.rows} rows) in {rebuilt.seconds:.2f}s ({rate:,.0f} events/s)."
        )
        for difference in differences:
            _print_difference(difference)
        if check and not differences:
            console.print("Every rebuilt view equals its live view.")
    if differences:
        raise typer.Exit(EXIT_DIFFERENT)


def _print_difference(difference: dict[str, Any]) -> None:
    key = ", ".join(f"{k}={v}" for k, v in difference["key"].items())
    if difference["live"] is None:
        problem = "missing from the live view"
    elif difference["rebuilt"] is None:
        problem = "in the live view but not in the rebuild"
    else:
        columns = difference["columns"]
        problem = "differs in " + ", ".join(
            f"{c} (live {difference['live'][c]!r}, rebuilt {difference['rebuilt'][c]!r})"
            for c in columns
        )
    typer.echo(f"DIFF {difference['table']} [{key}]: {problem}")


@app.command("history")
def history_command(
    job: str | None = typer.Option(None, "--job", help="Only events that touched this job"),
    since: int | None = typer.Option(
        None, "--since", help="Only events after this global position"
    ),
    limit: int = typer.Option(1000, "--limit", help="At most this many events"),
    output: str = typer.Option("table", "--format", help="table, jsonl or json"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """The audit history: every event with its position, sequence, time, topic and payload."""
    with user_errors():
        if output not in HISTORY_FORMATS:
            raise ValidationError(
                "--format", f"{output!r} is not allowed; allowed: {', '.join(HISTORY_FORMATS)}"
            )
    with service(database_url, queue) as queue_service:
        rows = queue_service.history(job_id=job, since=since, limit=limit)
    if output == "jsonl":
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    elif output == "json":
        print_json(rows)
    else:
        table = Table("pos", "seq", "time", "event", "actor", "summary")
        for row in rows:
            table.add_row(
                str(row["position"]),
                str(row["sequence"]),
                row["timestamp"][:23],
                row["event_type"],
                row["actor"],
                row["summary"],
            )
        console.print(table)


@app.command("lineage")
def lineage_command(
    job_id: str = typer.Argument(..., help="A job or batch job id"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Where a job came from and went: merges, claims, each run's outcome and checksum."""
    with service(database_url, queue) as queue_service:
        lineage = queue_service.lineage(job_id)
    if as_json:
        print_json(lineage)
        return
    console.print(f"[bold]{job_id}[/bold]: {lineage['status']}")
    if lineage["merged_into_all"]:
        console.print(f"merged into {', '.join(lineage['merged_into_all'])}")
    if lineage["source_job_ids"]:
        console.print(f"made from {', '.join(lineage['source_job_ids'])}")
    for row in lineage["events"]:
        typer.echo(f"  {row['position']:>6} {row['event_type']:<16} {row['summary']}")
    runs = Table("run", "prompt", "from job", "batch job", "status", "output", "sha256")
    for run in lineage["runs"]:
        runs.add_row(
            run["run_id"],
            run["prompt_id"],
            run["source_job_id"],
            run["batch_job_id"] or "",
            run["status"],
            run["output_path"] or "",
            (run["sha256"] or "")[:16],
        )
    console.print(runs)


@app.command("queue-at")
def queue_at_command(
    sequence: int = typer.Argument(..., help="Queue sequence number"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """The queue exactly as it was right after a sequence number (time travel)."""
    with service(database_url, queue) as queue_service:
        status = queue_service.queue_at(sequence)
    if as_json:
        print_json(status)
        return
    state = "paused" if status["paused"] else "running"
    console.print(
        f"Queue [bold]{status['queue']}[/bold] at sequence {status['sequence']}: {state}, "
        f"batch size {status['batch_size']}, {status['total_queued']} queued, "
        f"{len(status['running'])} running"
    )
    table = Table("pos", "id", "type", "runs", "controls", "priority", "status", "claimed by")
    for job in [*status["running"], *status["queued_jobs"]]:
        table.add_row(
            str(job["position"] or "-"),
            job["id"],
            job["type"],
            str(job["runs"]),
            ", ".join(job["controls"]),
            str(job["priority"]),
            job["status"],
            job.get("claimed_by", ""),
        )
    console.print(table)
