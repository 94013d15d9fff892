"""The demo's queue story: register the scenes, queue a realistic mix, pause, analyze, execute.

Strict and mixed analyses are both recorded and printed; the plan with the lower estimated
batched seconds is executed. A second analysis makes the first stale (the queue's head moved),
so when the first one wins it is re-analyzed in that mode before executing, and the refusal of
the stale one is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from batchlog.adapters.demo.scenes import SceneFiles
from batchlog.adapters.queue_service import QueueService
from batchlog.domain.errors import StaleAnalysisError
from batchlog.domain.jobs import Run

SUBMITTERS = ("ana@studio", "ben@studio", "pipeline-nightly")


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: scenes, video size, step counts and how many of the jobs to queue."""

    name: str
    scenes: int
    width: int
    height: int
    frames: int
    fps: int
    steps: tuple[int, int]
    jobs: int
    batch_size: int
    rounds: int


FULL = DemoSize(
    "full",
    scenes=8,
    width=64,
    height=64,
    frames=8,
    fps=8,
    steps=(4, 8),
    jobs=13,
    batch_size=8,
    rounds=5,
)
QUICK = DemoSize(
    "quick",
    scenes=4,
    width=32,
    height=32,
    frames=4,
    fps=4,
    steps=(2, 3),
    jobs=7,
    batch_size=4,
    rounds=1,
)


@dataclass(frozen=True)
class ScenarioRecord:
    """What the scenario did: the jobs, both analyses, the executed one, the queue before/after."""

    job_ids: list[str]
    prompt_ids: list[str]
    status_before: dict[str, Any]
    strict: dict[str, Any]
    mixed: dict[str, Any]
    chosen_mode: str
    executed: dict[str, Any]
    reorganized: dict[str, Any]
    status_after: dict[str, Any]
    batch_runs: dict[str, tuple[Run, ...]]

    @property
    def total_runs(self) -> int:
        """Runs in the reorganized queue (batches plus the jobs that keep their place)."""
        return sum(int(job["runs"]) for job in self.status_after["queued_jobs"])


def job_mix(prompt_ids: Sequence[str], size: DemoSize) -> list[dict[str, Any]]:
    """The demo's jobs: several control sets and weights, a few seeds and step counts, an upscale."""
    p = list(prompt_ids)

    def at(i: int) -> str:
        return p[i % len(p)]

    low, high = size.steps
    video = {"width": size.width, "height": size.height, "frames": size.frames, "fps": size.fps}

    def job(
        prompts: list[int], weights: dict[str, float], steps: int, seed: int, **extra: Any
    ) -> dict[str, Any]:
        config = {"weights": weights, "num_steps": steps, "seed": seed, **video, **extra}
        return {"prompt_ids": [at(i) for i in prompts], "job_type": "inference", "config": config}

    jobs = [
        job([0, 1], {"vis": 0.6, "edge": 0.4}, high, 11),
        job([2], {"vis": 0.5, "edge": 0.5}, high, 12),
        job([3, 0], {"depth": 0.7, "vis": 0.3}, high, 13),
        {
            "prompt_ids": [at(0), at(2), at(3)],
            "job_type": "batch_inference",
            "config": {
                "weights_list": [
                    {"vis": 0.5, "edge": 0.3, "depth": 0.2},
                    {"vis": 0.3, "edge": 0.5, "depth": 0.2},
                    {"vis": 0.6, "depth": 0.4},
                ],
                "seeds": [1, 2, 3],
                "num_steps": high,
                **video,
            },
        },
        {"prompt_ids": [at(0)], "job_type": "upscale", "config": {"scale": 2}},
        job([1, 2], {"seg": 0.6, "depth": 0.4}, high, 14),
        job([3], {"vis": 0.8, "edge": 0.2}, low, 21),
        job([4, 5], {"vis": 0.5, "edge": 0.5}, low, 22, seeds=[22, 23]),
        job([6], {"depth": 0.5, "seg": 0.5}, high, 15),
        job([7, 4], {"vis": 0.4, "edge": 0.0, "depth": 0.6}, high, 16),
        job([0, 1, 2], {"vis": 1.0}, low, 31),
        job([5, 6, 7], {"vis": 0.6, "edge": 0.4}, high, 17),
        job([3, 5], {"vis": 0.7, "seg": 0.3}, low, 18),
    ]
    return jobs[: size.jobs]


def register_prompts(service: QueueService, scenes: Sequence[SceneFiles]) -> list[str]:
    """Register one prompt per rendered scene, with its exact depth and segmentation inputs."""
    return [
        service.create_prompt(
            scene.text,
            str(scene.input_video),
            {"depth": str(scene.depth), "seg": str(scene.seg)},
            negative_prompt="blurry, low quality",
        )
        for scene in scenes
    ]


def run_scenario(
    service: QueueService, scenes: Sequence[SceneFiles], size: DemoSize, console: Console
) -> ScenarioRecord:
    """Queue the mix, pause, analyze in both modes, execute the better plan, resume."""
    prompt_ids = register_prompts(service, scenes)
    service.set_batch_size(size.batch_size)
    job_ids = []
    for index, spec in enumerate(job_mix(prompt_ids, size)):
        submitter = SUBMITTERS[index % len(SUBMITTERS)]
        job_ids += service.add_jobs([spec], submitter=submitter)
    service.set_queue_paused(True, reason="demo: review batching before the runners start")
    before = service.get_queue_status()
    console.print(
        f"Queued {len(job_ids)} jobs ({sum(j['runs'] for j in before['queued_jobs'])} runs) "
        f"from {len(prompt_ids)} prompts; queue paused at sequence {before['sequence']}."
    )
    strict = _analyze(service, False, console)
    mixed = _analyze(service, True, console)
    chosen = _better(strict, mixed)
    console.print(
        f"\nChoosing [bold]{chosen}[/bold] mode: estimated batched seconds "
        f"strict {_batched(strict):.1f} s vs mixed {_batched(mixed):.1f} s."
    )
    executed = mixed if chosen == "mixed" else strict
    if chosen == "strict":
        try:
            service.execute_smart_batches(strict["analysis_id"])
        except StaleAnalysisError as error:
            console.print(f"Executing the first (strict) analysis is refused: {error}")
        executed = service.analyze_queue_for_smart_batching(mix_controls=False) or strict
        console.print(f"Re-analyzed in strict mode: {executed['analysis_id']}.")
    reorganized = service.execute_smart_batches(executed["analysis_id"])
    console.print(f"{reorganized['message']} (nothing has run yet).")
    after = service.get_queue_status()
    items = service.load_queue().items
    batch_runs = {job_id: items[job_id].runs for job_id in reorganized["batch_job_ids"]}
    service.set_queue_paused(False, reason="demo: run the reorganized queue")
    console.print("Queue resumed.")
    return ScenarioRecord(
        job_ids=job_ids,
        prompt_ids=prompt_ids,
        status_before=before,
        strict=strict,
        mixed=mixed,
        chosen_mode=chosen,
        executed=executed,
        reorganized=reorganized,
        status_after=after,
        batch_runs=batch_runs,
    )


def _analyze(service: QueueService, mixed: bool, console: Console) -> dict[str, Any]:
    analysis = service.analyze_queue_for_smart_batching(mix_controls=mixed)
    if analysis is None:
        raise RuntimeError("the demo queue has no batchable jobs")
    console.print()
    console.print(analysis["preview"], markup=False, highlight=False, soft_wrap=True)
    return analysis


def _batched(analysis: dict[str, Any]) -> float:
    return float(analysis["efficiency"]["estimated_seconds_batched"])


def _better(strict: dict[str, Any], mixed: dict[str, Any]) -> str:
    """The mode whose plan has the lower estimated batched seconds (strict on a tie)."""
    return "mixed" if _batched(mixed) < _batched(strict) else "strict"
