"""Estimate against measurement: the cost model fitted on the first half of measured batches
predicts the second half.

Batches of the torch reference backend (B in 1, 2, 4, 8; control sets vis, edge, vis+edge, in a
shuffled order so that some batches change the control set and some do not) are timed one after
another in one process, as a runner would run them. The first half (in time order) fits
a, b0, b1 and s by least squares (`batchlog.domain.cost_model.fit_bucket`); the second half is
predicted. Goal: median error within ±15% and the total within ±15%.
Without the torch backend in this checkout the result says "pending".
"""

from __future__ import annotations

import itertools
import random
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchlog.domain.cost_model import (
    DEFAULT_COEFFICIENTS_BY_BACKEND,
    BatchObservation,
    fit_bucket,
    seconds_from_terms,
)
from batchlog.domain.jobs import ExecutionParameters
from batchlog.runner.backend import BatchInput, RunInput
from benchmarks.common import arguments, write_result

CONTROL_SETS = (("vis",), ("edge",), ("vis", "edge"), ("vis", "edge", "depth"))
SIZES = (1, 2, 4, 8)
WITHIN = 0.15


def parameters(quick: bool) -> ExecutionParameters:
    """Small latents so the suite stays fast on a shared CPU."""
    return ExecutionParameters(
        model="reference",
        num_steps=2 if quick else 8,
        guidance=5.0,
        sigma_max=70.0,
        fps=24,
        width=32,
        height=32,
        frames=4 if quick else 8,
        blur_strength="medium",
        canny_threshold="medium",
        negative_prompt="",
    )


def make_media(folder: Path) -> dict[str, str]:
    """A small input video and a depth map, written once (the backend decodes them per batch)."""
    import imageio.v3 as iio
    import numpy as np

    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 255, 48)
    still = np.stack([np.add.outer(ramp, ramp) % 256] * 3, axis=-1)
    frames = np.stack([still + rng.integers(0, 30, (48, 48, 3)) for _ in range(8)]).clip(0, 255)
    video, depth = folder / "input.mp4", folder / "depth.png"
    iio.imwrite(video, frames.astype(np.uint8), fps=8, codec="libx264")
    iio.imwrite(depth, (rng.random((48, 48)) * 255).astype(np.uint8))
    return {"video": str(video), "depth": str(depth)}


def batch(
    index: int,
    size: int,
    controls: tuple[str, ...],
    params: ExecutionParameters,
    out: Path,
    media: dict[str, str],
) -> BatchInput:
    runs = tuple(
        RunInput(
            run_id=f"r{index}-{i}",
            job_id=f"j{index}",
            prompt_id=f"p{i}",
            prompt_text=f"a test scene {i}",
            input_video=media["video"],
            control_inputs={"depth": media["depth"]},
            weights={c: 0.5 for c in controls},
            seed=index * 100 + i,
        )
        for i in range(size)
    )
    return BatchInput(f"item{index}", "batch_inference", params, controls, runs, out)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def evaluate(observations: list[BatchObservation]) -> dict[str, Any]:
    """Fit on the first half (in time order), predict the second half."""
    half = len(observations) // 2
    fitted = fit_bucket(observations[:half], DEFAULT_COEFFICIENTS_BY_BACKEND["torch"])
    assert fitted is not None, "the first half has several batch sizes by construction"
    terms = (
        fitted.fixed_seconds,
        fitted.per_sample_seconds,
        fitted.per_control_seconds,
        fitted.switch_seconds,
    )
    held_out: list[dict[str, Any]] = []
    for o in observations[half:]:
        predicted = seconds_from_terms(
            terms, o.batch_size, o.controls_computed, o.control_set_changed
        )
        held_out.append(
            {
                "batch_size": o.batch_size,
                "controls_computed": o.controls_computed,
                "control_set_changed": o.control_set_changed,
                "measured_seconds": o.seconds,
                "predicted_seconds": predicted,
                "error": (predicted - o.seconds) / o.seconds,
            }
        )
    errors = [abs(h["error"]) for h in held_out]
    total_measured = sum(h["measured_seconds"] for h in held_out)
    total_predicted = sum(h["predicted_seconds"] for h in held_out)
    summary = {
        "fitted_on": half,
        "held_out": len(held_out),
        "median_abs_error": statistics.median(errors),
        "share_within_15pct": sum(e <= WITHIN for e in errors) / len(errors),
        "total_error": (total_predicted - total_measured) / total_measured,
        "a_seconds": fitted.fixed_seconds,
        "b0_seconds": fitted.per_sample_seconds,
        "b1_seconds": fitted.per_control_seconds,
        "s_seconds": fitted.switch_seconds,
        "fitted_terms": ", ".join(fitted.fitted_terms),
    }
    return {
        "summary": summary,
        "held_out": held_out,
        "goals_met": {
            "median error within ±15%": summary["median_abs_error"] <= WITHIN,
            "total within ±15%": abs(summary["total_error"]) <= WITHIN,
        },
    }


def pending(reason: str, output: str | None) -> None:
    write_result(output, "estimates", {"status": "pending", "reason": reason})


def main() -> None:
    """Measure, fit on the first half, predict the second, write JSON."""
    args = arguments(__doc__ or "")
    try:
        from batchlog.adapters.inference import create_backend

        artifacts = Path(tempfile.mkdtemp(prefix="batchlog-bench-estimates-"))
        backend = create_backend("torch", device="cpu", artifacts_dir=artifacts, threads=1)
        backend.load()
        media = make_media(artifacts)
    except Exception as error:  # the backend is another part of the project
        pending(
            "the torch reference backend is not available in this checkout "
            f"({type(error).__name__}: {error}); measured batch timings are needed",
            args.output,
        )
        return
    params = parameters(args.quick)
    rounds = 2 if args.quick else 6
    rng = random.Random(11)
    # Blocks of two batches with one control set: the first of a block changes the control set,
    # the second does not, so the fit can tell the switch cost from the fixed cost.
    blocks = [
        (controls, sizes)
        for controls in (CONTROL_SETS[:3] if args.quick else CONTROL_SETS)
        for sizes in itertools.combinations(SIZES[:3] if args.quick else SIZES, 2)
        for _ in range(max(1, rounds // 2))
    ]
    rng.shuffle(blocks)
    plan = [
        (size, controls)
        for controls, sizes in blocks
        for size in rng.sample(list(sizes), len(sizes))
    ]
    observations: dict[str, list[BatchObservation]] = {"wall": [], "cpu": []}
    previous: tuple[str, ...] | None = None
    try:
        backend.run_batch(batch(-1, 1, CONTROL_SETS[0], params, artifacts, media))  # warm-up
        previous = CONTROL_SETS[0]
        for index, (size, controls) in enumerate(plan):
            cpu_before = cpu_seconds()
            outcome = backend.run_batch(batch(index, size, controls, params, artifacts, media))
            cpu = cpu_seconds() - cpu_before
            failed = [run.error for run in outcome.runs if not run.ok]
            if failed:
                raise RuntimeError(f"batch {index} failed: {failed[0]}")
            for clock, seconds in (("wall", outcome.seconds), ("cpu", cpu)):
                observations[clock].append(
                    BatchObservation(
                        "torch",
                        "cpu",
                        params.num_steps,
                        params.width,
                        params.height,
                        params.frames,
                        size,
                        len(controls),
                        seconds,
                        controls != previous,
                    )
                )
            previous = controls
    finally:
        backend.close()
    evaluated = {clock: evaluate(found) for clock, found in observations.items()}
    write_result(
        args.output,
        "estimates",
        {
            "status": "measured",
            "backend": "torch/cpu",
            "parameters": params.to_payload(),
            "clocks": {
                "wall": "the batch seconds the backend reports (what the runner records)",
                "cpu": "CPU seconds of this process and its ffmpeg children during the batch "
                "(not inflated by other tenants of a shared machine)",
            },
            "summary": {clock: result["summary"] for clock, result in evaluated.items()},
            "held_out": evaluated["cpu"]["held_out"],
            "held_out_wall": evaluated["wall"]["held_out"],
            "goals_met": {
                f"{clock}: {goal}": met
                for clock, result in evaluated.items()
                for goal, met in result["goals_met"].items()
            },
        },
    )


if __name__ == "__main__":
    main()
