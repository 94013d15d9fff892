"""The workload shared by the batching benchmarks: media files, runs, batches, timing, the limit.

Eight distinct prompts, each with its own input video, depth image and seg video, and its own
seed. Strict mode: every run has the same control signature (vis + edge). Mixed mode: four
different signatures, so a batch computes the union of branches while a run alone computes only
its own.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from batchlog.domain.config import default_parameters
from batchlog.domain.controls import ordered_controls
from batchlog.domain.jobs import ExecutionParameters
from batchlog.runner.backend import BatchInput, RunInput

STRICT_WEIGHTS = [{"vis": 0.6, "edge": 0.4}]
MIXED_WEIGHTS = [
    {"vis": 0.6},
    {"vis": 0.5, "edge": 0.3},
    {"vis": 0.4, "depth": 0.5},
    {"edge": 0.5, "seg": 0.5},
]


@dataclass(frozen=True)
class Size:
    """A latent size of the benchmark: pixels, frames and denoising steps."""

    width: int
    height: int
    frames: int
    steps: int

    @classmethod
    def parse(cls, text: str) -> Size:
        """'32x32x4:4' -> width 32, height 32, 4 frames, 4 steps."""
        dims, _, steps = text.partition(":")
        width, height, frames = (int(part) for part in dims.split("x"))
        return cls(width, height, frames, int(steps or 4))

    @property
    def label(self) -> str:
        """How the size is printed."""
        return f"{self.width}x{self.height}x{self.frames} ({self.steps} steps)"

    def parameters(self) -> ExecutionParameters:
        """The execution parameters of this size (defaults otherwise)."""
        return replace(
            default_parameters(),
            width=self.width,
            height=self.height,
            frames=self.frames,
            num_steps=self.steps,
        )


def make_media(root: Path, count: int, size: Size) -> list[dict[str, str]]:
    """Per prompt: a distinct input mp4, depth png and seg mp4 (twice the size, to be resized)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    h, w = size.height * 2, size.width * 2
    media = []
    for index in range(count):
        yy, xx = np.mgrid[0:h, 0:w]
        frames = np.stack(
            [
                np.stack(
                    [
                        (xx * (index + 1) + yy * 2 + t * 5) % 256,
                        (yy * 3 + t) % 256,
                        (xx + yy) % 256,
                    ],
                    axis=-1,
                )
                for t in range(size.frames + 2)
            ]
        )
        noisy = (frames + rng.integers(0, 20, frames.shape)).clip(0, 255).astype(np.uint8)
        paths = {
            "input": str(root / f"input{index}.mp4"),
            "depth": str(root / f"depth{index}.png"),
            "seg": str(root / f"seg{index}.mp4"),
        }
        iio.imwrite(paths["input"], noisy, fps=8, codec="libx264")
        iio.imwrite(paths["depth"], noisy[0, :, :, 0])
        iio.imwrite(paths["seg"], (noisy // 64 * 64).astype(np.uint8), fps=8, codec="libx264")
        media.append(paths)
    return media


def make_runs(media: Sequence[dict[str, str]], mode: str) -> list[RunInput]:
    """One run per prompt; weights by mode (strict: one signature; mixed: four)."""
    table = STRICT_WEIGHTS if mode == "strict" else MIXED_WEIGHTS
    return [
        RunInput(
            run_id=f"job_bench_{index}:0",
            job_id=f"job_bench_{index}",
            prompt_id=f"ps_bench_{index}",
            prompt_text=f"a {['red', 'blue', 'green', 'white'][index % 4]} car, scene {index}",
            input_video=paths["input"],
            control_inputs={"depth": paths["depth"], "seg": paths["seg"]},
            weights=table[index % len(table)],
            seed=1000 + index,
        )
        for index, paths in enumerate(media)
    ]


def make_batch(runs: Sequence[RunInput], parameters: ExecutionParameters, out: Path) -> BatchInput:
    """One invocation of these runs (controls = the union of their signatures)."""
    controls = ordered_controls({c for r in runs for c, w in r.weights.items() if w > 0})
    return BatchInput(
        "item_bench", "batch_inference", parameters, tuple(controls), tuple(runs), out
    )


def physical_limit(batch_size: int, fixed: float, per_sample: float) -> float:
    """B(a+s)/(a+Bs): the best batched-vs-sequential ratio with fixed cost a, per-sample cost s."""
    fixed, per_sample = max(fixed, 0.0), max(per_sample, 1e-12)
    return batch_size * (fixed + per_sample) / (fixed + batch_size * per_sample)


def fit_costs(batched: dict[int, float]) -> tuple[float, float]:
    """(a, s) from the batched times at the smallest and the largest batch size."""
    lo, hi = min(batched), max(batched)
    per_sample = (batched[hi] - batched[lo]) / (hi - lo) if hi > lo else batched[lo]
    return batched[lo] - lo * per_sample, per_sample


@dataclass(frozen=True)
class Timing:
    """Wall seconds and CPU seconds (this process and its ffmpeg children) of one execution."""

    wall: float
    cpu: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


def timed(call: Callable[[], object]) -> Timing:
    """Run a call and measure it. CPU time is robust to other load on a shared machine."""
    before, started = _cpu_seconds(), time.perf_counter()
    call()
    wall = time.perf_counter() - started
    return Timing(wall, _cpu_seconds() - before)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (ffmpeg)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Measurement:
    """Repeated timings of sequential and batched execution of the first B runs."""

    batch_size: int
    sequential: list[Timing]
    batched: list[Timing]

    def median(self, way: str, clock: str) -> float:
        """Median seconds of one way (sequential, batched) on one clock (wall, cpu)."""
        return statistics.median(getattr(t, clock) for t in getattr(self, way))

    def ratio(self, clock: str = "wall") -> float:
        """Median sequential seconds over median batched seconds."""
        return self.median("sequential", clock) / self.median("batched", clock)


def measure_interleaved(
    batch_sizes: Sequence[int],
    repeats: int,
    sequential: Callable[[int], Timing],
    batched: Callable[[int], Timing],
) -> dict[int, Measurement]:
    """Time both ways for every B, interleaved (the order flips each repeat), repeats times."""
    results = {b: Measurement(b, [], []) for b in batch_sizes}
    for repeat in range(repeats):
        for b in batch_sizes:
            ways = [(results[b].sequential, sequential), (results[b].batched, batched)]
            for samples, run in ways if repeat % 2 == 0 else reversed(ways):
                samples.append(run(b))
    return results


def scratch_dir() -> Path:
    """A temporary folder for media and outputs."""
    return Path(tempfile.mkdtemp(prefix="batchlog-bench-"))
