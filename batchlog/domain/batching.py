"""Smart Batching: regroup the runs of queued jobs into batches (pure functions).

Strict mode groups runs by (execution parameters, control signature); mixed mode groups by
execution parameters only and packs runs whose control sets overlap most. Batches keep queue
order: each batch is anchored at its earliest source job and takes the best priority of its
sources. A job's runs stay together where the batch size allows.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from batchlog.domain.collector import collector_paused
from batchlog.domain.controls import describe_controls, ordered_controls
from batchlog.domain.cost_model import (
    DEFAULT_COEFFICIENTS,
    CostCoefficients,
    seconds_from_terms,
)
from batchlog.domain.jobs import BATCHABLE_JOB_TYPES, ExecutionParameters, QueueItem, Run
from batchlog.domain.packing import (
    Building,
    Unit,
    capped_batch_size,
    chunks,
    mixed_batches,
    strict_batches,
    units_of,
)
from batchlog.domain.plan_record import batch_run_counts

Mode = Literal["strict", "mixed"]
MODES: tuple[Mode, ...] = ("strict", "mixed")
_NO_HELP_THRESHOLD = 1.05
_ORDER_KEY = operator.attrgetter("order_key")


@dataclass(frozen=True)
class PlannedBatch:
    """One batch of a plan: its runs, the controls computed per sample, and its place.

    Where each run was queued: run_sources[j] indexes source_job_ids, run_indexes[j] is the
    run's index in that job's runs.
    """

    runs: tuple[Run, ...]
    controls: frozenset[str]
    parameters: ExecutionParameters
    source_job_ids: tuple[str, ...]
    priority: int
    position: tuple[int, int]
    run_sources: tuple[int, ...]
    run_indexes: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of runs."""
        return len(self.runs)


@dataclass(frozen=True)
class SmartBatchPlan:
    """The result of an analysis: the batches in queue order and their efficiency."""

    mode: Mode
    batch_size: int
    batches: tuple[PlannedBatch, ...]
    efficiency: dict[str, Any]
    batch_seconds: tuple[float, ...]

    def parameter_sets(self) -> list[ExecutionParameters]:
        """The distinct execution parameters of the batches, in order of first use."""
        return list(dict.fromkeys(self._parameters_by_id().values()))

    def parameter_sets_payload(self) -> list[dict[str, Any]]:
        """parameter_sets() as recorded in an Analyzed event."""
        return [parameters.to_payload() for parameters in self.parameter_sets()]

    def batches_payload(self) -> dict[str, list[Any]]:
        """The batches as an Analyzed event records them: columns (batchlog.domain.plan_record)
        that name parameter_sets() by index."""
        index = {parameters: i for i, parameters in enumerate(self.parameter_sets())}
        by_id = {key: index[parameters] for key, parameters in self._parameters_by_id().items()}
        batches = self.batches
        controls = {c: tuple(ordered_controls(c)) for c in {b.controls for b in batches}}
        return {
            "source_job_ids": [list(b.source_job_ids) for b in batches],
            "run_sources": [list(b.run_sources) for b in batches],
            "run_indexes": [list(b.run_indexes) for b in batches],
            "controls": [list(controls[b.controls]) for b in batches],
            "parameter_set": [by_id[id(b.parameters)] for b in batches],
            "priority": [b.priority for b in batches],
            "position": [list(b.position) for b in batches],
            "estimated_seconds": list(self.batch_seconds),
        }

    def _parameters_by_id(self) -> dict[int, ExecutionParameters]:
        # Batches of one plan share parameter objects: identity first, value equality after.
        return {id(batch.parameters): batch.parameters for batch in self.batches}


def filter_batchable_jobs(jobs: Iterable[QueueItem]) -> list[QueueItem]:
    """The queued inference and batch_inference jobs, in queue order."""
    return sorted(
        (
            job
            for job in jobs
            if job.job_type in BATCHABLE_JOB_TYPES and job.status == "queued" and job.runs
        ),
        key=_ORDER_KEY,
    )


def group_runs_strict(jobs: Iterable[QueueItem], max_batch_size: int) -> list[PlannedBatch]:
    """Group runs with identical execution parameters and control signature."""
    return _finish(strict_batches(units_of(filter_batchable_jobs(jobs)), max_batch_size))


def group_runs_mixed(jobs: Iterable[QueueItem], max_batch_size: int) -> list[PlannedBatch]:
    """Group runs with identical execution parameters, packing overlapping control sets together."""
    return _finish(mixed_batches(units_of(filter_batchable_jobs(jobs)), max_batch_size))


def calculate_batch_efficiency(
    batches: Sequence[PlannedBatch],
    original_jobs: Sequence[QueueItem],
    mode: str,
    *,
    max_batch_size: int | None = None,
    coefficients: CostCoefficients = DEFAULT_COEFFICIENTS,
) -> dict[str, Any]:
    """Efficiency of a plan from the cost model, against running the jobs as they stand.

    Both sides are priced by the same model, including the cost of each control-set change
    between consecutive invocations, so the speedup is exactly what the model predicts.
    """
    batched = _Priced([(b.size, b.controls, b.parameters) for b in batches], coefficients)
    as_is = _as_is_invocations(units_of(filter_batchable_jobs(original_jobs)), max_batch_size)
    return _efficiency(batches, batched, _Priced(as_is, coefficients), mode, coefficients)


def plan_smart_batches(
    jobs: Iterable[QueueItem],
    mode: Mode,
    batch_size: int,
    coefficients: CostCoefficients = DEFAULT_COEFFICIENTS,
) -> SmartBatchPlan | None:
    """Analyze queued jobs in one mode; None when nothing is batchable.

    The same as grouping and then calculate_batch_efficiency, with the queue filtered and cut
    into units once and each batch priced once.
    """
    grouping = strict_batches if mode == "strict" else mixed_batches
    with collector_paused():
        units = units_of(filter_batchable_jobs(jobs))
        batches = _finish(grouping(units, batch_size))
        if not batches:
            return None
        batched = _Priced([(b.size, b.controls, b.parameters) for b in batches], coefficients)
        as_is = _Priced(_as_is_invocations(units, batch_size), coefficients)
        efficiency = _efficiency(batches, batched, as_is, mode, coefficients)
    return SmartBatchPlan(mode, batch_size, tuple(batches), efficiency, tuple(batched.seconds))


def render_preview(
    mode: str, batch_size: int, batches: Mapping[str, Any], efficiency: Mapping[str, Any]
) -> str:
    """The human-readable preview of an analysis, in the guide's format.

    batches: the columns an Analyzed event records (SmartBatchPlan.batches_payload()).
    """
    title = "Strict" if mode == "strict" else "Mixed"
    description = (
        "Strict (identical controls only, faster execution)"
        if mode == "strict"
        else "Mixed (different controls in one batch, fewer batches)"
    )
    speedup = float(efficiency["speedup"])
    speedup_line = f"- Estimated speedup: {speedup:.1f}x"
    if speedup < _NO_HELP_THRESHOLD:
        speedup_line += " — batching does not help at this size"
    lines = [
        f"⚡ Smart Batching Analysis ({title} Mode):",
        f"- {_count(efficiency['total_runs'], 'run')} from "
        f"{_count(efficiency['original_jobs'], 'job')} → "
        f"{_count(efficiency['total_batches'], 'batch')}",
        speedup_line,
        f"- Mode: {description}",
        f"- Batch size: {batch_size} runs/batch",
        f"- Estimate basis: {efficiency['basis']}",
        "",
        "Batch breakdown:",
    ]
    described: dict[tuple[int, int, tuple[str, ...]], str] = {}
    rows = zip(
        batch_run_counts(batches), batches["source_job_ids"], batches["controls"], strict=True
    )
    for index, (runs, sources, controls) in enumerate(rows, start=1):
        key = (runs, len(sources), tuple(controls))
        shown = described.get(key)
        if shown is None:
            shown = described[key] = (
                f"{_count(runs, 'run')} from {_count(key[1], 'job')} ({describe_controls(controls)})"
            )
        lines.append(f"  Batch {index}: {shown}")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"


def _finish(built: list[Building]) -> list[PlannedBatch]:
    ordered = sorted(built, key=lambda b: (b.first.order_key, b.serial))
    return [
        PlannedBatch(
            runs=tuple(batch.runs),
            controls=batch.controls,
            parameters=batch.parameters,
            source_job_ids=tuple(batch.jobs),
            priority=batch.priority,
            position=batch.first.position,
            run_sources=tuple(batch.run_sources),
            run_indexes=tuple(batch.run_indexes),
        )
        for batch in ordered
    ]


Invocation = tuple[int, frozenset[str], ExecutionParameters]


class _Priced:
    """Invocations run in this order: each one's seconds (a changed control set costs a
    switch) and how many control-set changes there are."""

    def __init__(self, invocations: Iterable[Invocation], coefficients: CostCoefficients) -> None:
        seconds: list[float] = []
        append = seconds.append
        changes = 0
        terms: dict[int, tuple[float, float, float, float]] = {}
        self.parameters: dict[int, ExecutionParameters] = {}
        memo: dict[tuple[int, int, int, bool], float] = {}
        last_controls: frozenset[str] | None = None
        last_parameters: ExecutionParameters | None = None
        for size, controls, parameters in invocations:
            changed = last_parameters is not None and (
                controls != last_controls
                or (parameters is not last_parameters and parameters != last_parameters)
            )
            changes += changed
            key = (id(parameters), size, len(controls), changed)
            found = memo.get(key)
            if found is None:
                found_terms = terms.get(id(parameters))
                if found_terms is None:
                    found_terms = terms[id(parameters)] = coefficients.terms_for(parameters)
                    self.parameters[id(parameters)] = parameters
                found = memo[key] = seconds_from_terms(found_terms, size, len(controls), changed)
            append(found)
            last_controls, last_parameters = controls, parameters
        self.seconds = seconds
        self.changes = changes


def _efficiency(
    batches: Sequence[PlannedBatch],
    batched: _Priced,
    as_is: _Priced,
    mode: str,
    coefficients: CostCoefficients,
) -> dict[str, Any]:
    batched_seconds = sum(batched.seconds)
    unbatched_seconds = sum(as_is.seconds)
    source_jobs = {job_id for batch in batches for job_id in batch.source_job_ids}
    speedup = unbatched_seconds / batched_seconds if batched_seconds > 0 else 1.0
    return {
        "total_runs": sum(batch.size for batch in batches),
        "original_jobs": len(source_jobs),
        "total_batches": len(batches),
        "speedup": speedup,
        "mode": mode,
        "estimated_seconds_unbatched": unbatched_seconds,
        "estimated_seconds_batched": batched_seconds,
        "control_set_changes_unbatched": as_is.changes,
        "control_set_changes_batched": batched.changes,
        "basis": coefficients.basis_for({**batched.parameters, **as_is.parameters}.values()),
    }


def _as_is_invocations(units: Sequence[Unit], max_batch_size: int | None) -> Iterator[Invocation]:
    """The invocations of running each job as it stands, in queue order."""
    for unit in units:
        if len(unit.runs) == 1:
            yield (1, unit.controls, unit.parameters)
            continue
        cap = capped_batch_size(max_batch_size or len(unit.runs), len(unit.controls))
        for chunk in chunks(unit, cap):
            yield (len(chunk.runs), chunk.controls, unit.parameters)
