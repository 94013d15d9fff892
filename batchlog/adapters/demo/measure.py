"""Estimated vs measured: each executed batch next to the same runs one at a time.

The baseline is **one run per invocation**: every run of the executed plan becomes its own job
(its own control set, its own seed) on a second queue, drained by the same runner code on a
warmed torch backend and timed by the backend exactly as the batches are (see `drain.py`). That
makes the per-batch comparison exact: a batch's baseline is the sum of its own runs' solo
seconds. Measurements are repeated in interleaved rounds and their medians compared. Estimates
for both sides come from the cost model with the coefficients the analysis used.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchlog.domain.batching import plan_smart_batches
from batchlog.domain.cost_model import CostCoefficients
from batchlog.domain.jobs import QueueItem, Run

BASELINE = (
    "one run per invocation: each run as its own job on a second queue, drained by the same "
    "runner code on a warmed backend of its own"
)


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
    measured_rounds: tuple[float, ...] = ()
    measured_unbatched_rounds: tuple[float, ...] = ()

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
    rounds: int = 1

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

    def total_figures(self) -> tuple[str, ...]:
        """The overall figures as table cells, in figure_cells' column order."""
        seconds = (
            self.total("estimated_seconds"),
            self.total("measured_seconds"),
            self.total("estimated_unbatched_seconds"),
            self.total("measured_unbatched_seconds"),
        )
        return _cells(seconds, self.estimated_speedup, self.measured_speedup)


def figure_cells(batch: BatchComparison) -> tuple[str, ...]:
    """One batch's figures as table cells: est s, meas s, est solo, meas solo, est x, meas x."""
    seconds = (
        batch.estimated_seconds,
        batch.measured_seconds,
        batch.estimated_unbatched_seconds,
        batch.measured_unbatched_seconds,
    )
    return _cells(seconds, batch.estimated_speedup, batch.measured_speedup)


def _cells(seconds: tuple[float, ...], estimated: float, measured: float) -> tuple[str, ...]:
    return (*(f"{value:.2f}" for value in seconds), f"{estimated:.2f}x", f"{measured:.2f}x")


def solo_estimates(runs: Sequence[Run], coefficients: CostCoefficients) -> dict[str, float]:
    """The planner's own estimate of each run as its own invocation, in the baseline's order.

    The runs are planned as one-run jobs with batch size 1, so every cost-model term the
    analysis uses (including any cost of changing the control set between invocations) applies
    to the baseline exactly as it does to the plan.
    """
    items = [
        QueueItem(f"solo_{index}", "inference", (run,), 50, (index, 0), "batchlog-demo")
        for index, run in enumerate(runs, start=1)
    ]
    plan = plan_smart_batches(items, "strict", 1, coefficients)
    if plan is None:
        return {}
    return {
        batch.runs[0].run_id: seconds
        for batch, seconds in zip(plan.batches, plan.batch_seconds, strict=True)
    }


def compare(
    plan_batches: Sequence[Mapping[str, Any]],
    batch_job_ids: Sequence[str],
    batch_runs: Mapping[str, Sequence[Run]],
    batched_rounds: Sequence[Mapping[str, float]],
    solo_rounds: Sequence[Mapping[str, float]],
    coefficients: CostCoefficients,
) -> Comparison:
    """Line up each planned batch with the median of its measured rounds, batched and solo."""
    solo = solo_estimates(
        [run for job_id in batch_job_ids for run in batch_runs[job_id]], coefficients
    )
    rows = []
    for index, (planned, job_id) in enumerate(zip(plan_batches, batch_job_ids, strict=True), 1):
        runs = batch_runs[job_id]
        batched = tuple(float(measured[job_id]) for measured in batched_rounds)
        solos = tuple(sum(float(measured[run.run_id]) for run in runs) for measured in solo_rounds)
        rows.append(
            BatchComparison(
                index=index,
                job_id=job_id,
                runs=len(runs),
                controls=list(planned["controls"]),
                num_steps=int(planned["parameters"]["num_steps"]),
                estimated_seconds=float(planned["estimated_seconds"]),
                measured_seconds=statistics.median(batched),
                estimated_unbatched_seconds=sum(solo[run.run_id] for run in runs),
                measured_unbatched_seconds=statistics.median(solos),
                measured_rounds=batched,
                measured_unbatched_rounds=solos,
            )
        )
    return Comparison(rows, BASELINE, rounds=len(batched_rounds))
