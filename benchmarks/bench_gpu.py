"""Item 5 on a GPU: sequential against batched execution of the torch reference model on CUDA
in bf16, timed with CUDA events, with peak memory per batch size and the GPU's name.

For each latent size (one small, overhead-bound; one larger, compute-bound) and mode (strict: every
run has vis+edge; mixed: runs with vis, edge or vis+edge, computed as their union), and B in
1, 2, 4, 8: B runs one at a time, then the same B runs as one batch, interleaved over rounds.
Printed next to each measured speedup is the physical limit B(a+s)/(a+Bs), with a (fixed cost) and
s (per-sample cost) taken from the batched B=1 and B=8 medians. Without a CUDA device it writes
{"status": "pending"} and exits 0. Prepared for the device machine; a few minutes there.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchlog.domain.jobs import ExecutionParameters
from benchmarks.bench_estimates import batch, make_media
from benchmarks.common import arguments, write_result

SIZES = (1, 2, 4, 8)
LATENTS = {"small": (64, 64, 8, 8), "large": (256, 256, 16, 20)}  # width, height, frames, steps
MODES = {"strict": [("vis", "edge")], "mixed": [("vis",), ("edge",), ("vis", "edge")]}


def parameters(width: int, height: int, frames: int, steps: int) -> ExecutionParameters:
    return ExecutionParameters(
        "reference", steps, 5.0, 70.0, 24, width, height, frames, "medium", "medium", ""
    )


def main() -> None:
    """Measure on CUDA and write JSON (or say that no CUDA device was there)."""
    args = arguments(__doc__ or "")
    import torch

    if not torch.cuda.is_available():
        write_result(args.output, "gpu", {"status": "pending", "reason": "no CUDA device here"})
        return
    from batchlog.adapters.inference import create_backend

    out = Path(tempfile.mkdtemp(prefix="batchlog-bench-gpu-"))
    backend = create_backend("torch", device="cuda", artifacts_dir=out, dtype="bfloat16")
    backend.load()
    media = make_media(out)
    rounds = 2 if args.quick else 5
    counter = iter(range(10**9))

    def cuda_seconds(batch_input: Any) -> tuple[float, int]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        backend.run_batch(batch_input)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, int(torch.cuda.max_memory_allocated())

    results: dict[str, Any] = {}
    for latent, (width, height, frames, steps) in LATENTS.items():
        params = parameters(width, height, frames, steps)
        backend.run_batch(batch(next(counter), 2, ("vis", "edge"), params, out, media))  # warm-up
        for mode, control_sets in MODES.items():
            rows: dict[int, dict[str, Any]] = {}
            for size in SIZES:
                controls = [control_sets[i % len(control_sets)] for i in range(size)]
                union = tuple(c for c in ("vis", "edge") if any(c in cs for cs in controls))
                sequential, batched, peak = [], [], 0
                for _ in range(rounds):
                    sequential.append(
                        sum(
                            cuda_seconds(batch(next(counter), 1, cs, params, out, media))[0]
                            for cs in controls
                        )
                    )
                    seconds, peak = cuda_seconds(
                        batch(next(counter), size, union, params, out, media)
                    )
                    batched.append(seconds)
                rows[size] = {
                    "sequential_seconds": statistics.median(sequential),
                    "batched_seconds": statistics.median(batched),
                    "peak_memory_bytes": peak,
                }
            t1, t8 = rows[1]["batched_seconds"], rows[8]["batched_seconds"]
            per_sample = max((t8 - t1) / 7, 1e-9)
            fixed = max(t1 - per_sample, 0.0)
            for size, row in rows.items():
                row["speedup"] = row["sequential_seconds"] / row["batched_seconds"]
                row["physical_limit"] = size * (fixed + per_sample) / (fixed + size * per_sample)
            results[f"{latent} {mode}"] = {"parameters": params.to_payload(), "by_batch_size": rows}
    backend.close()
    write_result(
        args.output,
        "gpu",
        {
            "status": "measured",
            "gpu": torch.cuda.get_device_name(0),
            "dtype": "bfloat16",
            "timing": "CUDA events",
            "rounds": rounds,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
