"""Running queues for the demo: a warmed backend, an in-process runner, a progress bar.

The executed plan's queue, its repeat rounds (the same batches as `batch_inference` jobs) and
the one-run-per-invocation baseline (one `inference` job per run) all go through the same
runner code, each on a backend of its own that one unmeasured solo run has warmed, so no side
pays first-call costs and both run the backend the same way (in the runner's worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from batchlog.adapters.demo import records
from batchlog.adapters.queue_service import QueueService
from batchlog.domain.controls import ordered_controls
from batchlog.domain.jobs import Run
from batchlog.runner.backend import BatchInput, InferenceBackend, RunInput


class RunProgress:
    """A rich progress bar fed by the runner: runs done / total, current batch, elapsed, ETA."""

    def __init__(self, console: Console, total_runs: int, batch_names: Mapping[str, str]) -> None:
        self.total_runs = total_runs
        self.batch_names = batch_names
        self.progress = Progress(
            TextColumn("[bold]runs[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[current]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("runs", total=total_runs, current="starting")
        self.done = 0

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def update(self, report: Mapping[str, Any]) -> None:
        """Take one progress report of the runner (or of the baseline loop)."""
        event = str(report.get("event") or "")
        item = str(report.get("item_id") or "")
        name = self.batch_names.get(item, item)
        if "runs_done" in report:
            self.done = int(report["runs_done"])
        elif event == "finished":
            self.done += int(report.get("runs", 0))
        if event == "claimed":
            current = f"running {name} ({report.get('runs', '?')} runs)"
        elif event in {"finished", "refused", "released", "retry", "split", "dead-letter"}:
            current = f"{name} {event}"
        else:
            current = event
        self.progress.update(self.task, completed=min(self.done, self.total_runs), current=current)


def warmed_backend(
    service: QueueService, device: str, artifacts_dir: Path, run: Run
) -> InferenceBackend:
    """The torch reference backend, loaded and warmed by one unmeasured solo run."""
    from batchlog.adapters.inference import create_backend

    backend = create_backend("torch", device=device, artifacts_dir=artifacts_dir)
    backend.load()
    warmup_dir = artifacts_dir.parent / "warmup" / artifacts_dir.name
    backend.run_batch(solo_input(service, run, warmup_dir, "warmup"))
    return backend


def run_batched(
    database_url: str,
    queue_name: str,
    artifacts_dir: Path,
    backend: InferenceBackend,
    progress: RunProgress,
    runner_id: str = "demo-runner",
) -> tuple[dict[str, Any], float]:
    """Drain the queue with an in-process runner on this backend; its summary and wall seconds."""
    from batchlog.adapters.bootstrap import build_runner

    runner = build_runner(
        database_url,
        artifacts_dir=artifacts_dir,
        runner_id=runner_id,
        queue_name=queue_name,
        backend=backend,
    )
    started = time.perf_counter()
    try:
        summary = runner.run(until_idle=True, on_progress=progress.update)
    finally:
        runner.close()
    return dict(summary or {}), time.perf_counter() - started


def solo_input(service: QueueService, run: Run, artifacts_dir: Path, tag: str) -> BatchInput:
    """One run as its own invocation, computing only its own controls."""
    prompt = service.get_prompt(run.prompt_id)
    safe = run.run_id.replace(":", "_")
    return BatchInput(
        item_id=f"{tag}_{safe}",
        job_type="inference",
        parameters=run.parameters,
        controls=tuple(ordered_controls(run.controls)),
        runs=(
            RunInput(
                run_id=run.run_id,
                job_id=run.job_id,
                prompt_id=run.prompt_id,
                prompt_text=prompt.text,
                input_video=prompt.input_video,
                control_inputs=dict(prompt.control_inputs),
                weights=dict(run.weights),
                seed=run.seed,
            ),
        ),
        artifacts_dir=artifacts_dir,
    )


def one_run_jobs(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The baseline: one job per run, with exactly that run's prompt, weights, seed, parameters."""
    return [
        {
            "prompt_ids": [run.prompt_id],
            "job_type": "inference",
            "config": {
                **run.parameters.to_payload(),
                "weights": dict(run.weights),
                "seed": run.seed,
            },
        }
        for run in runs
    ]


def batch_jobs(batches: Sequence[Sequence[Run]]) -> list[dict[str, Any]]:
    """A repeat round: each batch again as one `batch_inference` job with the same runs."""
    return [
        {
            "prompt_ids": [run.prompt_id for run in runs],
            "job_type": "batch_inference",
            "config": {
                **runs[0].parameters.to_payload(),
                "weights_list": [dict(run.weights) for run in runs],
                "seeds": [run.seed for run in runs],
            },
        }
        for runs in batches
    ]


def drain_jobs(
    service: QueueService,
    queue_name: str,
    jobs: Sequence[Mapping[str, Any]],
    artifacts_dir: Path,
    device: str,
    console: Console,
    warmup_run: Run,
) -> list[float]:
    """Queue these jobs on their own queue, drain it, and return each job's measured seconds."""
    settings = service.settings
    with QueueService(
        settings.database_url, queue_name=queue_name, actor=service.actor, settings=settings
    ) as queue:
        job_ids = queue.add_jobs(jobs, submitter=f"{service.actor} (measurement)")
        backend = warmed_backend(service, device, artifacts_dir, warmup_run)
        total = sum(len(job["prompt_ids"]) for job in jobs)
        with RunProgress(console, total, {}) as progress:
            run_batched(
                settings.database_url, queue_name, artifacts_dir, backend, progress, queue_name
            )
        return list(records.finished_seconds(queue, job_ids).values())
