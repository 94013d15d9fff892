"""Smart Batching: regroup the runs of queued jobs into batches (pure functions).

Strict mode groups runs by (execution parameters, control signature); mixed mode groups by
execution parameters only and packs runs whose control sets overlap most. Batches keep queue
order: each batch is anchored at its earliest source job and takes the best priority of its
sources. A job's runs stay together where the batch size allows.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from batchlog.domain.controls import describe_controls, ordered_controls
from batchlog.domain.cost_model import (
    DEFAULT_COEFFICIENTS,
    CostCoefficients,
    memory_safe_batch_size,
    seconds_from_terms,
)
from batchlog.domain.jobs import ExecutionParameters, QueueItem, Run

Mode = Literal["strict", "mixed"]
MODES: tuple[Mode, ...] = ("strict", "mixed")
_OPEN_BATCHES_SEARCHED = 8
_BUCKET_DEPTH_SEARCHED = 4
_NO_HELP_THRESHOLD = 1.05


@dataclass(frozen=True)
class PlannedBatch:
    """One batch of a plan: its runs, the controls computed per sample, and its place."""

    runs: tuple[Run, ...]
    controls: frozenset[str]
    parameters: ExecutionParameters
    source_job_ids: tuple[str, ...]
    priority: int
    position: tuple[int, int]

    @property
    def size(self) -> int:
        """Number of runs."""
        return len(self.runs)

    def to_payload(self, estimated_seconds: float) -> dict[str, Any]:
        """The batch as recorded in an Analyzed event."""
        return {
            "run_ids": [run.run_id for run in self.runs],
            "source_job_ids": list(self.source_job_ids),
            "controls": ordered_controls(self.controls),
            "parameters": self.parameters.to_payload(),
            "priority": self.priority,
            "position": list(self.position),
            "estimated_seconds": estimated_seconds,
        }


@dataclass(frozen=True)
class SmartBatchPlan:
    """The result of an analysis: the batches in queue order and their efficiency."""

    mode: Mode
    batch_size: int
    batches: tuple[PlannedBatch, ...]
    efficiency: dict[str, Any]
    batch_seconds: tuple[float, ...]

    def batches_payload(self) -> list[dict[str, Any]]:
        """The batches as recorded in an Analyzed event."""
        return [
            batch.to_payload(seconds)
            for batch, seconds in zip(self.batches, self.batch_seconds, strict=True)
        ]


def filter_batchable_jobs(jobs: Iterable[QueueItem]) -> list[QueueItem]:
    """The queued inference and batch_inference jobs, in queue order."""
    return sorted(
        (job for job in jobs if job.batchable and job.status == "queued" and job.runs),
        key=lambda job: job.order_key,
    )


def group_runs_strict(jobs: Iterable[QueueItem], max_batch_size: int) -> list[PlannedBatch]:
    """Group runs with identical execution parameters and control signature."""
    groups: dict[tuple[ExecutionParameters, frozenset[str]], list[_Unit]] = defaultdict(list)
    for unit in _units(filter_batchable_jobs(jobs)):
        first = unit.runs[0].controls
        if all(run.controls == first for run in unit.runs):
            groups[(unit.parameters, first)].append(unit)
            continue
        by_signature: dict[frozenset[str], list[Run]] = defaultdict(list)
        for run in unit.runs:
            by_signature[run.controls].append(run)
        for signature, runs in by_signature.items():
            groups[(unit.parameters, signature)].append(
                _unit(unit.job, unit.parameters, tuple(runs))
            )
    built: list[_Building] = []
    serials = itertools.count()
    for (_, signature), units in groups.items():
        built.extend(_first_fit(units, _cap(max_batch_size, len(signature)), serials))
    return _finish(built)


def group_runs_mixed(jobs: Iterable[QueueItem], max_batch_size: int) -> list[PlannedBatch]:
    """Group runs with identical execution parameters, packing overlapping control sets together."""
    groups: dict[ExecutionParameters, list[_Unit]] = defaultdict(list)
    for unit in _units(filter_batchable_jobs(jobs)):
        groups[unit.parameters].append(unit)
    built: list[_Building] = []
    serials = itertools.count()
    for units in groups.values():
        built.extend(_pack_by_overlap(units, max_batch_size, serials))
    return _finish(built)


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
    batched_invocations = [(b.size, b.controls, b.parameters) for b in batches]
    as_is = _as_is_invocations(filter_batchable_jobs(original_jobs), max_batch_size)
    batched = sum(_sequence_estimates(batched_invocations, coefficients))
    unbatched = sum(_sequence_estimates(as_is, coefficients))
    source_jobs = {job_id for batch in batches for job_id in batch.source_job_ids}
    speedup = unbatched / batched if batched > 0 else 1.0
    return {
        "total_runs": sum(batch.size for batch in batches),
        "original_jobs": len(source_jobs),
        "total_batches": len(batches),
        "speedup": speedup,
        "mode": mode,
        "estimated_seconds_unbatched": unbatched,
        "estimated_seconds_batched": batched,
        "control_set_changes_unbatched": _changes(as_is),
        "control_set_changes_batched": _changes(batched_invocations),
        "basis": coefficients.basis_for({p for _, _, p in batched_invocations + as_is}),
    }


def plan_smart_batches(
    jobs: Sequence[QueueItem],
    mode: Mode,
    batch_size: int,
    coefficients: CostCoefficients = DEFAULT_COEFFICIENTS,
) -> SmartBatchPlan | None:
    """Analyze queued jobs in one mode; None when nothing is batchable."""
    grouping = group_runs_strict if mode == "strict" else group_runs_mixed
    with _collector_paused():
        jobs = filter_batchable_jobs(jobs)
        batches = grouping(jobs, batch_size)
        if not batches:
            return None
        efficiency = calculate_batch_efficiency(
            batches, jobs, mode, max_batch_size=batch_size, coefficients=coefficients
        )
        seconds = tuple(
            _sequence_estimates([(b.size, b.controls, b.parameters) for b in batches], coefficients)
        )
    return SmartBatchPlan(mode, batch_size, tuple(batches), efficiency, seconds)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a plan is built.

    A plan allocates a few objects per run and all of them survive, so the collector would
    rescan the whole queue several times for nothing (half the analysis time at 100k runs).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_preview(
    mode: str, batch_size: int, batches: Sequence[Mapping[str, Any]], efficiency: Mapping[str, Any]
) -> str:
    """The human-readable preview of an analysis, in the guide's format."""
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
    for index, batch in enumerate(batches, start=1):
        runs = len(batch["run_ids"])
        jobs = len(batch["source_job_ids"])
        lines.append(
            f"  Batch {index}: {_count(runs, 'run')} from {_count(jobs, 'job')} "
            f"({describe_controls(batch['controls'])})"
        )
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"


@dataclass(frozen=True)
class _Unit:
    job: QueueItem
    parameters: ExecutionParameters
    runs: tuple[Run, ...]
    controls: frozenset[str]


def _unit(job: QueueItem, parameters: ExecutionParameters, runs: tuple[Run, ...]) -> _Unit:
    controls = (
        runs[0].controls if len(runs) == 1 else frozenset().union(*(r.controls for r in runs))
    )
    return _Unit(job, parameters, runs, controls)


class _Building:
    def __init__(self, parameters: ExecutionParameters, serial: int) -> None:
        self.parameters = parameters
        self.serial = serial
        self.runs: list[Run] = []
        self.jobs: list[QueueItem] = []
        self.job_ids: set[str] = set()
        self.controls: frozenset[str] = frozenset()

    def add(self, unit: _Unit) -> None:
        self.runs.extend(unit.runs)
        if unit.job.job_id not in self.job_ids:
            self.job_ids.add(unit.job.job_id)
            self.jobs.append(unit.job)
        self.controls = self.controls | unit.controls


def _units(jobs: Sequence[QueueItem]) -> list[_Unit]:
    # Equal parameters are interned to one object, so that every later comparison and dict
    # lookup of them is an identity check instead of an 11-field comparison.
    interned: dict[ExecutionParameters, ExecutionParameters] = {}
    units: list[_Unit] = []
    for job in jobs:
        first = job.runs[0].parameters
        if all(run.parameters is first or run.parameters == first for run in job.runs):
            units.append(_unit(job, interned.setdefault(first, first), job.runs))
            continue
        by_parameters: dict[ExecutionParameters, list[Run]] = defaultdict(list)
        for run in job.runs:
            by_parameters[run.parameters].append(run)
        units.extend(
            _unit(job, interned.setdefault(params, params), tuple(runs))
            for params, runs in by_parameters.items()
        )
    return units


@functools.lru_cache(maxsize=1024)
def _cap(max_batch_size: int, control_count: int) -> int:
    return max(1, min(max_batch_size, memory_safe_batch_size(control_count)))


def _chunks(unit: _Unit, size: int) -> list[_Unit]:
    if len(unit.runs) <= size:
        return [unit]
    return [
        _unit(unit.job, unit.parameters, unit.runs[i : i + size])
        for i in range(0, len(unit.runs), size)
    ]


def _first_fit(units: list[_Unit], cap: int, serials: Iterator[int]) -> list[_Building]:
    done: list[_Building] = []
    open_batches: list[_Building] = []
    for unit in units:
        for chunk in _chunks(unit, cap):
            target = next(
                (
                    b
                    for b in open_batches[-_OPEN_BATCHES_SEARCHED:]
                    if len(b.runs) + len(chunk.runs) <= cap
                ),
                None,
            )
            if target is None:
                target = _Building(chunk.parameters, next(serials))
                open_batches.append(target)
                done.append(target)
            target.add(chunk)
            if len(target.runs) >= cap:
                open_batches.remove(target)
    return done


def _pack_by_overlap(
    units: list[_Unit], max_batch_size: int, serials: Iterator[int]
) -> list[_Building]:
    pieces: list[_Unit] = []
    for unit in units:
        pieces.extend(_chunks(unit, _cap(max_batch_size, len(unit.controls))))
    buckets: dict[frozenset[str], deque[int]] = defaultdict(deque)
    for index, piece in enumerate(pieces):
        buckets[piece.controls].append(index)
    assigned = [False] * len(pieces)
    done: list[_Building] = []
    for seed_index, seed in enumerate(pieces):
        if assigned[seed_index]:
            continue
        batch = _Building(seed.parameters, next(serials))
        batch.add(seed)
        assigned[seed_index] = True
        while (choice := _best_fit(batch, pieces, buckets, assigned, max_batch_size)) is not None:
            batch.add(pieces[choice])
            assigned[choice] = True
        done.append(batch)
    return done


def _best_fit(
    batch: _Building,
    pieces: list[_Unit],
    buckets: dict[frozenset[str], deque[int]],
    assigned: list[bool],
    max_batch_size: int,
) -> int | None:
    best: tuple[float, int] | None = None
    for controls, queue in buckets.items():
        while queue and assigned[queue[0]]:
            queue.popleft()
        union = batch.controls | controls
        room = _cap(max_batch_size, len(union)) - len(batch.runs)
        if room <= 0:
            continue
        overlap = len(batch.controls & controls) / len(union) if union else 1.0
        for index in itertools.islice(queue, _BUCKET_DEPTH_SEARCHED):
            if not assigned[index] and len(pieces[index].runs) <= room:
                if best is None or (-overlap, index) < (-best[0], best[1]):
                    best = (overlap, index)
                break
    return None if best is None else best[1]


def _finish(built: list[_Building]) -> list[PlannedBatch]:
    ordered = sorted(built, key=lambda b: (min(job.order_key for job in b.jobs), b.serial))
    batches = []
    for batch in ordered:
        earliest = min(batch.jobs, key=lambda job: job.order_key)
        batches.append(
            PlannedBatch(
                runs=tuple(batch.runs),
                controls=batch.controls,
                parameters=batch.parameters,
                source_job_ids=tuple(job.job_id for job in batch.jobs),
                priority=max(job.priority for job in batch.jobs),
                position=earliest.position,
            )
        )
    return batches


Invocation = tuple[int, frozenset[str], ExecutionParameters]


def _sequence_estimates(
    invocations: Sequence[Invocation], coefficients: CostCoefficients
) -> list[float]:
    """Seconds of each invocation run in this order; a changed control set costs a switch."""
    estimates = []
    terms: dict[ExecutionParameters, tuple[float, float, float, float]] = {}
    previous: tuple[frozenset[str], ExecutionParameters] | None = None
    for size, controls, parameters in invocations:
        found = terms.get(parameters)
        if found is None:
            found = terms[parameters] = coefficients.terms_for(parameters)
        changed = previous is not None and previous != (controls, parameters)
        estimates.append(seconds_from_terms(found, size, len(controls), changed))
        previous = (controls, parameters)
    return estimates


def _changes(invocations: Sequence[Invocation]) -> int:
    return sum(1 for x, y in itertools.pairwise(invocations) if (x[1], x[2]) != (y[1], y[2]))


def _as_is_invocations(jobs: Sequence[QueueItem], max_batch_size: int | None) -> list[Invocation]:
    """The invocations of running each job as it stands, in queue order."""
    invocations: list[Invocation] = []
    for unit in _units(jobs):
        cap = _cap(max_batch_size or len(unit.runs), len(unit.controls))
        invocations.extend(
            (len(chunk.runs), chunk.controls, unit.parameters) for chunk in _chunks(unit, cap)
        )
    return invocations
