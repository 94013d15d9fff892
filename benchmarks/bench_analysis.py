"""Smart-batching analysis time at 1k / 10k / 100k queued runs, and the staleness check.

For each size the queue (one run per job, a mix of control signatures) lives in PostgreSQL and
is analyzed through `QueueService.analyze_queue_for_smart_batching` in strict and in mixed mode,
interleaved: `analyze` is the whole call (plan + recording the Analyzed event with every batch),
`plan` the pure domain part. The staleness check is `execute_smart_batches` of an analysis made
stale by a job another process added; it must cost the same at 10 and at 100k jobs.
Goals: analysis of 100k runs <= 1 s; staleness check the same at both sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchlog import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.batching import plan_smart_batches
from batchlog.domain.errors import StaleAnalysisError
from benchmarks.common import (
    arguments,
    cpu_timed,
    fresh_database,
    interleaved,
    median,
    postgres_server,
    timed,
    write_result,
)

SIGNATURES = (
    {"vis": 0.5},
    {"vis": 0.5, "edge": 0.3},
    {"edge": 0.7},
    {"vis": 0.2, "edge": 0.2, "depth": 0.4},
    {"depth": 0.6, "seg": 0.3},
)
CHUNK = 2000


def grow(service: QueueService, prompts: list[str], target_jobs: int) -> None:
    """Add jobs (in bulk chunks) until the queue holds target_jobs queued jobs."""
    have = service.get_queue_status()["total_queued"]
    while have < target_jobs:
        count = min(CHUNK, target_jobs - have)
        service.add_jobs(
            [
                {
                    "prompt_ids": [prompts[(have + i) % len(prompts)]],
                    "config": {"weights": SIGNATURES[(have + i) % len(SIGNATURES)], "seed": i},
                }
                for i in range(count)
            ]
        )
        have += count


def make_prompts(service: QueueService) -> list[str]:
    return [
        service.create_prompt(f"prompt {i}", control_inputs={"depth": "d.mp4", "seg": "s.mp4"})
        for i in range(16)
    ]


def contenders(service: QueueService, jobs: list[Any], batch_size: int) -> dict[str, Any]:
    """The four timings taken at one size: the whole analyze call and the domain plan, per mode."""
    return {
        "analyze strict": lambda _: timed(
            lambda: service.analyze_queue_for_smart_batching(mix_controls=False)
        ),
        "analyze mixed": lambda _: timed(
            lambda: service.analyze_queue_for_smart_batching(mix_controls=True)
        ),
        "plan strict": lambda _: timed(lambda: plan_smart_batches(jobs, "strict", batch_size)),
        "plan mixed": lambda _: timed(lambda: plan_smart_batches(jobs, "mixed", batch_size)),
        # CPU seconds of this process: what the plan costs without the other tenants' load.
        "plan strict, CPU time": lambda _: cpu_timed(
            lambda: plan_smart_batches(jobs, "strict", batch_size)
        ),
        "plan mixed, CPU time": lambda _: cpu_timed(
            lambda: plan_smart_batches(jobs, "mixed", batch_size)
        ),
    }


def stale_check_seconds(service: QueueService, other: QueueService, prompt: str) -> float:
    """Seconds that execute takes to refuse an analysis made stale by another process."""
    service.analyze_queue_for_smart_batching()
    other.add_job([prompt], config={"weights": {"vis": 0.5}})

    def execute() -> None:
        try:
            service.execute_smart_batches()
        except StaleAnalysisError:
            return
        raise AssertionError("a stale analysis was executed")

    return timed(execute)


def main() -> None:
    """Run the analysis and staleness benchmark and write its JSON."""
    args = arguments(__doc__ or "")
    sizes = [100, 1_000] if args.quick else [1_000, 10_000, 100_000]
    repeats = 2 if args.quick else 5
    settings = Settings.from_environment({"BATCHLOG_ACTOR": "bench"})
    analysis: dict[str, Any] = {}
    staleness: dict[str, Any] = {}
    with postgres_server(args.postgres_url) as server, fresh_database(server) as url:
        big = QueueService(url, settings=settings, queue_name="big")
        big_other = QueueService(url, settings=settings, queue_name="big")
        small = QueueService(url, settings=settings, queue_name="small")
        small_other = QueueService(url, settings=settings, queue_name="small")
        try:
            prompts = make_prompts(big)
            for size in sizes:
                grow(big, prompts, size)
                big.set_queue_paused(True)
                queue = big.load_queue()
                jobs = queue.queued_in_order()
                runs = contenders(big, jobs, queue.batch_size)
                results = interleaved(runs, repeats)
                analysis[str(size)] = {
                    "runs": sum(len(job.runs) for job in jobs),
                    "seconds": results,
                    "median_seconds": {name: median(v) for name, v in results.items()},
                }
                big.set_queue_paused(False)
            # Staleness: the small queue (10 jobs) against the big one (largest size), interleaved.
            grow(small, prompts, 10)
            small.set_queue_paused(True)
            big.set_queue_paused(True)
            checks = interleaved(
                {
                    "10 jobs": lambda _: stale_check_seconds(small, small_other, prompts[0]),
                    f"{sizes[-1]} jobs": lambda _: stale_check_seconds(big, big_other, prompts[0]),
                },
                repeats,
            )
            staleness = {
                "seconds": checks,
                "median_seconds": {name: median(v) for name, v in checks.items()},
            }
        finally:
            for service in (big, big_other, small, small_other):
                service.close()
    largest = analysis[str(sizes[-1])]["median_seconds"]
    stale = staleness["median_seconds"]
    ratios = {
        f"stale check {sizes[-1]} / 10 jobs": stale[f"{sizes[-1]} jobs"] / stale["10 jobs"],
        f"analyze strict {sizes[-1]} / {sizes[0]} runs": largest["analyze strict"]
        / analysis[str(sizes[0])]["median_seconds"]["analyze strict"],
    }
    write_result(
        args.output,
        "analysis",
        {
            "sizes": sizes,
            "rounds": repeats,
            "unit": "seconds (median of interleaved rounds)",
            "analysis": analysis,
            "staleness": staleness,
            "ratios": ratios,
            "goals_met": {
                f"analysis of {sizes[-1]} runs <= 1 s": max(
                    largest["analyze strict"], largest["analyze mixed"]
                )
                <= 1.0,
                "staleness check within 2x at both sizes": ratios[
                    f"stale check {sizes[-1]} / 10 jobs"
                ]
                <= 2.0,
            },
        },
    )


if __name__ == "__main__":
    main()
