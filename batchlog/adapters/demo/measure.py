"""Measurement: the reorganized queue run by a real runner, then the same runs one at a time.

The baseline is **one run per invocation**: every run of the executed plan is given to the
same torch backend alone (its own control set, its own seed), in a warm process, and timed by
the backend exactly as the runner's batches are. That makes the per-batch comparison exact:
a batch's baseline is the sum of its own runs' solo seconds. Estimates for both sides come
from the cost model with the coefficients the analysis used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

from batchlog.adapters.queue_service import QueueService
from batchlog.domain.controls import ordered_controls
from batchlog.domain.cost_model import CostCoefficients, batch_seconds
from batchlog.domain.jobs import Run
from batchlog.runner.backend import BatchInput, InferenceBackend, RunInput


@dataclass(frozen=True)
class BatchComparison:
    """One executed batch: estimated and measured seconds, batched and one run at a time."""

    index: int
    job_id: str
    runs: int
    controls: list[str]
    num_steps: int
    estimated_seconds: float
    measured_seconds: float
    estimated_unbatched_seconds: float
    measured_unbatched_seconds: float

    @property
    def estimated_speedup(self) -> float:
        """Cost-model speedup of this batch over its runs one at a time."""
        return self.estimated_unbatched_seconds / self.estimated_seconds

    @property
    def measured_speedup(self) -> float:
        """Measured speedup of this batch over its runs one at a time."""
        return self.measured_unbatched_seconds / self.measured_seconds


@dataclass(frozen=True)
class Comparison:
    """Every executed batch and the totals."""

    batches: list[BatchComparison]
    baseline: str

    def total(self, name: str) -> float:
        """Sum of one BatchComparison field over all batches."""
        return float(sum(getattr(batch, name) for batch in self.batches))

    @property
    def estimated_speedup(self) -> float:
        """Overall cost-model speedup."""
        return self.total("estimated_unbatched_seconds") / self.total("estimated_seconds")

    @property
    def measured_speedup(self) -> float:
        """Overall measured speedup."""
        return self.total("measured_unbatched_seconds") / self.total("measured_seconds")


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
) -> tuple[dict[str, Any], float]:
    """Drain the queue with an in-process runner on this backend; its summary and wall seconds."""
    from batchlog.adapters.bootstrap import build_runner

    runner = build_runner(
        database_url,
        artifacts_dir=artifacts_dir,
        runner_id="demo-runner",
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


def run_baseline(
    service: QueueService,
    runs: Sequence[Run],
    backend: InferenceBackend,
    artifacts_dir: Path,
    on_run: Callable[[int], None],
) -> dict[str, float]:
    """Measured seconds of each run given to the (warmed) backend alone."""
    seconds = {}
    for done, run in enumerate(runs, start=1):
        outcome = backend.run_batch(solo_input(service, run, artifacts_dir, "solo"))
        failed = [r.error for r in outcome.runs if not r.ok]
        if failed:
            raise RuntimeError(f"baseline run {run.run_id} failed: {failed[0]}")
        seconds[run.run_id] = outcome.seconds
        on_run(done)
    return seconds


def compare(
    plan_batches: Sequence[Mapping[str, Any]],
    batch_job_ids: Sequence[str],
    batch_runs: Mapping[str, Sequence[Run]],
    measured_batch_seconds: Mapping[str, float],
    solo_seconds: Mapping[str, float],
    coefficients: CostCoefficients,
) -> Comparison:
    """Line up each planned batch with its measured time and its runs' solo times."""
    rows = []
    for index, (planned, job_id) in enumerate(zip(plan_batches, batch_job_ids, strict=True), 1):
        runs = batch_runs[job_id]
        rows.append(
            BatchComparison(
                index=index,
                job_id=job_id,
                runs=len(runs),
                controls=list(planned["controls"]),
                num_steps=int(planned["parameters"]["num_steps"]),
                estimated_seconds=float(planned["estimated_seconds"]),
                measured_seconds=float(measured_batch_seconds[job_id]),
                estimated_unbatched_seconds=sum(
                    batch_seconds(coefficients, 1, len(run.controls), run.parameters)
                    for run in runs
                ),
                measured_unbatched_seconds=sum(solo_seconds[run.run_id] for run in runs),
            )
        )
    return Comparison(rows, "one run per invocation (each run alone, same warm backend)")
