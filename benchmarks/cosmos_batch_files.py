"""How much the cosmos-transfer backend adds per batch: writing spec, JSONL and weight maps.

Prints, for a few batch sizes at Cosmos-Transfer1's 704x1280 resolution with all four
controls, the time to write one batch's inputs and the bytes written, next to the time of
one upstream sample for scale (give it with --upstream-seconds-per-sample; default 300 s,
an order of magnitude for the 7B model on one GPU, not measured here).

    PYTHONPATH=. python benchmarks/cosmos_batch_files.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from batchlog.adapters.inference.cosmos_files import write_invocation
from batchlog.domain.jobs import ExecutionParameters
from batchlog.runner.backend import RunInput

PARAMETERS = ExecutionParameters(
    "cosmos-transfer1-7b", 35, 5.0, 70.0, 24, 1280, 704, 121, "medium", "medium", ""
)
CONTROLS = ("vis", "edge", "depth", "seg")


def runs(count: int) -> list[RunInput]:
    return [
        RunInput(
            f"run-{i}",
            "job",
            f"ps_{i}",
            f"prompt {i}",
            f"/videos/{i}.mp4",
            {"depth": f"/videos/{i}_depth.mp4", "seg": f"/videos/{i}_seg.mp4"},
            {"vis": 0.1 * (i % 10), "edge": 0.5, "depth": 0.25, "seg": 0.0},
            1,
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream-seconds-per-sample", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'batch':>5} {'write ms':>9} {'bytes':>10} {'share of upstream time':>24}")
    for size in (1, 4, 16):
        batch = runs(size)
        best = float("inf")
        written = 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as scratch:
                started = time.perf_counter()
                write_invocation(
                    Path(scratch) / "inv",
                    runs=batch,
                    controls=CONTROLS,
                    parameters=PARAMETERS,
                    seed=1,
                    batch_size=size,
                    num_gpus=1,
                    checkpoint_dir="/ckpt",
                    checkpoint_paths={},
                )
                best = min(best, time.perf_counter() - started)
                written = sum(p.stat().st_size for p in Path(scratch).rglob("*") if p.is_file())
        share = best / (args.upstream_seconds_per_sample * size)
        print(f"{size:>5} {best * 1000:>9.1f} {written:>10} {share:>24.2e}")


if __name__ == "__main__":
    main()
