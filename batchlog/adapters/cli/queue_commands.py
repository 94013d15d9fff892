"""Queue commands: migrate, prompts, add, status, pause/resume, batch size, analyze, execute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from batchlog.adapters.cli.app import (
    DatabaseOption,
    JsonOption,
    QueueOption,
    app,
    console,
    print_json,
    service,
    user_errors,
)
from batchlog.adapters.migrations import migrate
from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.errors import ValidationError
from batchlog.domain.prompt import Prompt

prompts_app = typer.Typer(help="Register and list prompts.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@app.command("migrate")
def migrate_command(database_url: str | None = DatabaseOption) -> None:
    """Create every table (event store and read models) once, before processes start."""
    with user_errors():
        url = Settings.from_environment().with_database_url(database_url).database_url
        applied = migrate(url)
    console.print(f"Database ready ({len(applied)} new migration(s) applied).")


@prompts_app.command("add")
def prompts_add(
    text: str = typer.Argument(..., help="Prompt text"),
    input_video: str = typer.Option("", "--video", help="Input video file or frame folder"),
    depth: str | None = typer.Option(None, "--depth", help="Depth control input file"),
    seg: str | None = typer.Option(None, "--seg", help="Segmentation control input file"),
    negative_prompt: str = typer.Option("", "--negative", help="Negative prompt"),
    prompt_id: str | None = typer.Option(None, "--id", help="Use this prompt id"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Register a prompt and print its id."""
    inputs = {k: v for k, v in {"depth": depth, "seg": seg}.items() if v}
    with service(database_url, queue) as queue_service:
        pid = queue_service.create_prompt(text, input_video, inputs, negative_prompt, prompt_id)
    typer.echo(pid)


@prompts_app.command("list")
def prompts_list(
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """List the registered prompts, oldest first."""
    with service(database_url, queue) as queue_service:
        prompts = registered_prompts(queue_service)
    if as_json:
        print_json(prompts)
        return
    table = Table("id", "text", "input video", "control inputs", "negative prompt")
    for prompt in prompts:
        inputs = ", ".join(f"{k}={v}" for k, v in prompt["control_inputs"].items())
        table.add_row(
            prompt["prompt_id"],
            prompt["text"],
            prompt["input_video"],
            inputs,
            prompt["negative_prompt"],
        )
    console.print(table)
    console.print(f"{len(prompts)} prompt(s).")


def registered_prompts(queue_service: QueueService, page: int = 500) -> list[dict[str, Any]]:
    """Every PromptCreated event of the store, read through the notification log."""
    listed = getattr(queue_service, "list_prompts", None)
    if callable(listed):
        return list(listed())
    store = queue_service.store
    prompts: list[dict[str, Any]] = []
    start: int | None = None
    while True:
        notifications = store.recorder.select_notifications(
            start, page, topics=[Prompt.Created.TOPIC], inclusive_of_start=start is None
        )
        for notification in notifications:
            created = store.mapper.to_domain_event(notification)
            prompts.append({name: getattr(created, name) for name in PROMPT_FIELDS})
        if len(notifications) < page:
            return prompts
        start = notifications[-1].id


PROMPT_FIELDS = ("prompt_id", "text", "input_video", "control_inputs", "negative_prompt", "actor")


@app.command("add")
def add_command(
    prompt_ids: list[str] = typer.Argument(None, help="Prompt ids of the job"),
    job_type: str = typer.Option(
        "inference", "--type", help="inference, batch_inference, upscale, enhancement"
    ),
    weights: str | None = typer.Option(
        None, "--weights", help='Control weights as JSON, e.g. {"vis": 0.5}'
    ),
    config: str | None = typer.Option(None, "--config", help="Whole job config as JSON"),
    priority: int = typer.Option(50, "--priority", help="0..100, higher runs first"),
    from_file: Path | None = typer.Option(None, "--file", help="JSON list or JSONL file of jobs"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Queue a job from flags, or many jobs from a JSON/JSONL file."""
    with user_errors():
        jobs = (
            _jobs_from_file(from_file)
            if from_file
            else [_job_from_flags(prompt_ids, job_type, weights, config, priority)]
        )
    with service(database_url, queue) as queue_service:
        ids = queue_service.add_jobs(jobs)
    if as_json:
        print_json({"job_ids": ids})
    else:
        for job_id in ids:
            typer.echo(job_id)


def _parse_json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(field, f"is not valid JSON ({error.msg})") from None


def _job_from_flags(
    prompt_ids: list[str] | None,
    job_type: str,
    weights: str | None,
    config: str | None,
    priority: int,
) -> dict[str, Any]:
    job_config = dict(_parse_json(config, "--config")) if config else {}
    if weights:
        job_config["weights"] = _parse_json(weights, "--weights")
    return {
        "prompt_ids": list(prompt_ids or []),
        "job_type": job_type,
        "config": job_config,
        "priority": priority,
    }


def _jobs_from_file(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ValidationError("--file", f"{path} does not exist")
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        jobs = _parse_json(text, "--file")
    else:
        jobs = [
            _parse_json(line, f"--file line {n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
        raise ValidationError(
            "--file", "must hold a JSON list of job objects, or one job object per line"
        )
    return jobs


@app.command("status")
def status_command(
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the queue: paused or running, batch size, queued and running items."""
    with service(database_url, queue) as queue_service:
        status = queue_service.get_queue_status()
    if as_json:
        print_json(status)
        return
    state = "paused" if status["paused"] else "running"
    console.print(
        f"Queue [bold]{status['queue']}[/bold]: {state}, batch size {status['batch_size']}, "
        f"{status['total_queued']} queued, {len(status['running'])} running, sequence {status['sequence']}"
    )
    table = Table(
        "pos", "id", "type", "runs", "controls", "steps", "priority", "status", "claimed by"
    )
    for job in [*status["running"], *status["queued_jobs"]]:
        table.add_row(
            str(job["position"] or "-"),
            job["id"],
            job["type"],
            str(job["runs"]),
            ", ".join(job["controls"]),
            str(job["parameters"].get("num_steps", "")),
            str(job["priority"]),
            job["status"],
            job.get("claimed_by", ""),
        )
    console.print(table)


@app.command("pause")
def pause_command(
    reason: str = typer.Option("", "--reason"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Pause the queue: runners take no new items."""
    with service(database_url, queue) as queue_service:
        queue_service.set_queue_paused(True, reason)
    console.print("Queue paused.")


@app.command("resume")
def resume_command(
    reason: str = typer.Option("", "--reason"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Resume the queue."""
    with service(database_url, queue) as queue_service:
        queue_service.set_queue_paused(False, reason)
    console.print("Queue resumed.")


@app.command("batch-size")
def batch_size_command(
    size: int = typer.Argument(..., help="Largest number of runs per batch"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Set the batch size."""
    with service(database_url, queue) as queue_service:
        queue_service.set_batch_size(size)
    console.print(f"Batch size set to {size}.")


@app.command("analyze")
def analyze_command(
    mixed: bool = typer.Option(
        False, "--mixed", help="Mixed mode: different controls in one batch"
    ),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Analyze the paused queue for smart batching and print the preview."""
    with service(database_url, queue) as queue_service:
        analysis = queue_service.analyze_queue_for_smart_batching(mix_controls=mixed)
    if as_json:
        print_json(analysis)
    elif analysis is None:
        console.print("No batchable jobs found.")
    else:
        typer.echo(analysis["preview"])
        typer.echo(
            f"\nAnalysis {analysis['analysis_id']} at sequence {analysis['sequence']}. Run `batchlog execute` to reorganize."
        )


@app.command("preview")
def preview_command(
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the preview of the latest analysis while it is fresh."""
    with service(database_url, queue) as queue_service:
        analysis = queue_service.get_analysis()
    if as_json:
        print_json(analysis)
    else:
        typer.echo(
            analysis["preview"] if analysis else "No fresh analysis. Run `batchlog analyze`."
        )


@app.command("execute")
def execute_command(
    analysis_id: str | None = typer.Option(
        None, "--analysis", help="Analysis id (default: the latest)"
    ),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Reorganize the queue by an analysis (nothing runs until the queue is resumed)."""
    with service(database_url, queue) as queue_service:
        result = queue_service.execute_smart_batches(analysis_id)
    if as_json:
        print_json(result)
    else:
        typer.echo(result["message"])


@app.command("cancel")
def cancel_command(
    job_id: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Cancel a queued job (it stays in history)."""
    with service(database_url, queue) as queue_service:
        queue_service.cancel_job(job_id, reason)
    console.print(f"Cancelled {job_id}.")
