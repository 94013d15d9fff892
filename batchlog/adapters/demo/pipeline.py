"""The whole demo, start to finish: scenes → queue → plans → runner → baseline → report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich import box
from rich.console import Console
from rich.table import Table

from batchlog.adapters.demo import drain, measure, records
from batchlog.adapters.demo.drain import RunProgress
from batchlog.adapters.demo.measure import Comparison
from batchlog.adapters.demo.report import ReportData, write_report
from batchlog.adapters.demo.scenario import DemoSize, ScenarioRecord, run_scenario
from batchlog.adapters.demo.scenes import SceneFiles, sample_scenes, write_scene
from batchlog.adapters.migrations import migrate
from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.cost_model import default_coefficients
from batchlog.domain.jobs import Run


def redacted(url: str) -> str:
    """A database URL with its password hidden, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its report and what it measured."""

    report_path: Path
    comparison: Comparison
    timings: dict[str, float]
    queue_name: str
    database_url: str


def run_demo(
    database_url: str,
    folder: Path,
    size: DemoSize,
    device: str,
    console: Console,
    settings: Settings | None = None,
) -> DemoResult:
    """Run the demo into `folder` on the database at `database_url`."""
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    queue_name = f"demo-{stamp}"
    run_folder = folder / f"run-{stamp}"
    timings: dict[str, float] = {}
    migrate(database_url)
    scenes = [
        write_scene(
            spec,
            run_folder / "scenes",
            width=size.width,
            height=size.height,
            frames=size.frames,
            fps=size.fps,
        )
        for spec in sample_scenes(size.scenes)
    ]
    timings["scenes"] = time.perf_counter() - started
    console.print(
        f"Rendered {len(scenes)} scenes ({size.width}x{size.height}, {size.frames} frames) "
        f"with exact depth and segmentation into {run_folder / 'scenes'}"
    )
    coefficients = default_coefficients("torch")  # a fresh queue has no history to fit from
    with QueueService(
        database_url,
        queue_name=queue_name,
        actor="batchlog-demo",
        settings=settings,
        coefficients=lambda: coefficients,
    ) as service:
        record = run_scenario(service, scenes, size, console)
        batch_ids = list(record.reorganized["batch_job_ids"])
        batches = [record.batch_runs[job_id] for job_id in batch_ids]
        runs = [run for batch in batches for run in batch]
        names = {job_id: f"batch {i}" for i, job_id in enumerate(batch_ids, 1)}
        console.print(f"\n[bold]Running the reorganized queue[/bold] ({record.total_runs} runs):")
        backend = drain.warmed_backend(service, device, run_folder / "outputs", runs[0])
        with RunProgress(console, record.total_runs, names) as progress:
            summary, timings["runner"] = drain.run_batched(
                database_url, queue_name, run_folder / "outputs", backend, progress
            )
        item_ids = [job["id"] for job in record.status_after["queued_jobs"]]
        first = records.finished_seconds(service, item_ids)
        plan = service.get_plan_report(record.executed["analysis_id"])
        readback = Readback(first, records.outputs(service, item_ids), plan)
        began = time.perf_counter()
        batched_rounds, solo_rounds = _rounds(
            service, size.rounds, batches, batch_ids, first, run_folder, device, console
        )
        timings["measurement"] = time.perf_counter() - began
        comparison = measure.compare(
            record.executed["batches"],
            record.reorganized["batch_job_ids"],
            record.batch_runs,
            batched_rounds,
            solo_rounds,
            coefficients,
        )
        print_comparison(console, comparison)
        lineage_job = record.job_ids[0]
        report = write_report(
            _report_data(service, record, comparison, scenes, readback, lineage_job, size, summary),
            run_folder / "report.html",
        )
    timings["total"] = time.perf_counter() - started
    return DemoResult(report, comparison, timings, queue_name, database_url)


@dataclass(frozen=True)
class Readback:
    """What the runner recorded for the plan's queue: seconds per item, outcome per run."""

    seconds: dict[str, float]
    outputs: dict[str, dict[str, Any]]
    plan: dict[str, Any]


def _rounds(
    service: QueueService,
    rounds: int,
    batches: list[tuple[Run, ...]],
    batch_ids: list[str],
    first: dict[str, float],
    run_folder: Path,
    device: str,
    console: Console,
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Interleaved rounds of (batched, one at a time); round 1's batched is the plan's own run."""
    runs = [run for batch in batches for run in batch]
    batched_rounds = [{job_id: first[job_id] for job_id in batch_ids}]
    solo_rounds = []
    for number in range(1, rounds + 1):
        of = f"round {number}/{rounds}"
        if number > 1:
            queue = f"{service.queue_name}-repeat-{number}"
            console.print(f"\n[bold]Batched, {of}[/bold]: the same batches again ({queue}):")
            folder = run_folder / "repeat" / str(number)
            jobs = drain.batch_jobs(batches)
            seconds = drain.drain_jobs(service, queue, jobs, folder, device, console, runs[0])
            batched_rounds.append(dict(zip(batch_ids, seconds, strict=True)))
        queue = f"{service.queue_name}-baseline-{number}"
        console.print(f"\n[bold]One run per invocation, {of}[/bold] ({queue}):")
        folder = run_folder / "baseline" / str(number)
        jobs = drain.one_run_jobs(runs)
        seconds = drain.drain_jobs(service, queue, jobs, folder, device, console, runs[0])
        solo_rounds.append(dict(zip((run.run_id for run in runs), seconds, strict=True)))
    return batched_rounds, solo_rounds


def _short(controls: list[str]) -> str:
    return "+".join(control[0].upper() for control in controls)


def print_comparison(console: Console, comparison: Comparison) -> None:
    """Estimated vs measured, per batch and overall, side by side."""
    table = Table(
        "batch",
        "runs",
        "ctrl",
        "est s",
        "meas s",
        "est solo",
        "meas solo",
        "est x",
        "meas x",
        title="Smart Batching: estimated vs measured seconds and speedup"
        + (f" (measured: median of {comparison.rounds} rounds)" if comparison.rounds > 1 else ""),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for b in comparison.batches:
        table.add_row(
            str(b.index),
            str(b.runs),
            _short(b.controls),
            *measure.figure_cells(b),
        )
    c = comparison
    table.add_row(
        "all",
        str(sum(b.runs for b in c.batches)),
        "",
        *c.total_figures(),
        style="bold",
    )
    console.print(table)
    console.print(
        "controls: V vis, E edge, D depth, S seg. est = the analysis's cost model; meas = the "
        "backend's own timer, as the runner recorded it; solo = the batch's runs one at a time. "
        f"Baseline: {c.baseline}.",
        soft_wrap=True,
    )


def _report_data(
    service: QueueService,
    record: ScenarioRecord,
    comparison: Comparison,
    scenes: list[SceneFiles],
    readback: Readback,
    lineage_job: str,
    size: DemoSize,
    summary: dict[str, Any],
) -> ReportData:
    outputs, unbatched = _outputs(record, readback)
    c = comparison
    return ReportData(
        title=f"batchlog demo ({size.name}) — {service.queue_name}",
        summary=[
            ("database", redacted(service.settings.database_url)),
            ("jobs queued", str(len(record.job_ids))),
            ("runs", str(record.total_runs)),
            ("executed plan", f"{record.chosen_mode} ({record.executed['analysis_id']})"),
            ("reorganization", record.reorganized["message"]),
            ("measurement rounds (medians shown)", str(c.rounds)),
            ("measured batched seconds", f"{c.total('measured_seconds'):.2f}"),
            ("measured one-run-at-a-time seconds", f"{c.total('measured_unbatched_seconds'):.2f}"),
            ("measured speedup", f"{c.measured_speedup:.2f}x"),
            ("estimated speedup (same baseline)", f"{c.estimated_speedup:.2f}x"),
            ("estimate basis", str(record.executed["efficiency"]["basis"])),
            ("plan report (batchlog report)", _plan_line(readback.plan)),
            ("not batchable (ran as is, not compared)", unbatched or "-"),
            (
                "runner summary",
                ", ".join(f"{k}={v}" for k, v in summary.items() if k != "batches") or "-",
            ),
        ],
        status_before=service.queue_at(int(record.status_before["sequence"])),
        status_after=service.queue_at(int(record.status_after["sequence"])),
        previews={"strict": record.strict["preview"], "mixed": record.mixed["preview"]},
        chosen_mode=record.chosen_mode,
        comparison=comparison,
        scenes=[item for scene in scenes for item in scene.thumbnails()],
        outputs=outputs,
        lineage_job=lineage_job,
        lineage=records.lineage_steps(service, lineage_job),
    )


def _outputs(record: ScenarioRecord, readback: Readback) -> tuple[list[tuple[str, Path]], str]:
    """Every output file with a caption, and a line on the items that were not batched."""
    outputs = []
    for job_id in record.reorganized["batch_job_ids"]:
        for run in record.batch_runs[job_id]:
            output = readback.outputs.get(run.run_id)
            if output:
                caption = f"{run.run_id} ({'+'.join(sorted(run.controls))}, seed {run.seed})"
                outputs.append((caption, Path(output["output_path"])))
    others = [j for j in record.status_after["queued_jobs"] if j["id"] not in record.batch_runs]
    for job in others:
        for run_id in (f"{job['id']}:{i}" for i in range(int(job["runs"]))):
            if run_id in readback.outputs:
                path = Path(readback.outputs[run_id]["output_path"])
                outputs.append((f"{run_id} ({job['type']})", path))
    unbatched = ", ".join(
        f"{job['type']} {job['id']}: {readback.seconds[job['id']]:.2f} s" for job in others
    )
    return outputs, unbatched


def _plan_line(plan: dict[str, Any]) -> str:
    """The plan report's verdict on the estimate: total and median batch error, round 1."""
    if plan.get("estimate_error") is None:
        return f"{plan['measured_batches']} of {plan['total_batches']} batches measured"
    return (
        f"estimate error {plan['estimate_error']:+.0%} in total, median batch error "
        f"{plan['median_batch_error']:.0%} (round 1; + means the estimate was too high)"
    )
