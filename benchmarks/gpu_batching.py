"""The batching benchmark on a GPU: CUDA, bf16, CUDA-event timing, peak memory per batch size.

Prepared to run in a few minutes on a lent GPU machine:

    PYTHONPATH=. python benchmarks/gpu_batching.py --json "$OUT/gpu_batching.json"

It prints the GPU's name, then for each size and mode (strict, mixed) and each B: sequential
(B invocations of one run) vs batched (one invocation of B runs) end to end through
TorchBackend.run_batch, the model-only time of the batched invocation (backend.generate: inputs
and denoising, no output encoding), the ratio next to the physical limit B(a+s)/(a+Bs), and the
peak CUDA memory of the batch. A float32 batch-invariance check (batched vs solo, max abs
difference) is recorded too. `--dry-run` runs the same code on the CPU at tiny sizes (float32,
perf_counter timing) to check the script without a GPU. `--budget-s` stops measuring (and says
so) before the device's time runs out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batching_workload import (
    Size,
    fit_costs,
    make_batch,
    make_media,
    make_runs,
    physical_limit,
    scratch_dir,
)

from batchlog.adapters.inference.torch_backend import TorchBackend


def timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Seconds of a call: CUDA events on a GPU, perf_counter on the CPU."""

    def cuda_time(call: Callable[[], object]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0

    def cpu_time(call: Callable[[], object]) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    return cuda_time if device.type == "cuda" else cpu_time


def invariance_check(device: str, root: Path, size: Size) -> float:
    """Max abs difference, float32 on this device, between 4 runs batched and each run alone."""
    backend = TorchBackend(device=device, dtype="float32")
    runs = make_runs(make_media(root / "invariance", 4, size), "mixed")
    batch = backend.generate(make_batch(runs, size.parameters(), root / "out"))
    worst = 0.0
    for run in runs:
        solo = backend.generate(make_batch([run], size.parameters(), root / "out"))
        worst = max(worst, float((batch.videos[run.run_id] - solo.videos[run.run_id]).abs().max()))
    backend.close()
    return worst


def bench(
    backend: TorchBackend,
    size: Size,
    mode: str,
    batch_sizes: list[int],
    repeats: int,
    deadline: float,
) -> dict:
    """One size and mode; stops early (marked) when the deadline passes."""
    root = scratch_dir()
    runs = make_runs(make_media(root, max(batch_sizes), size), mode)
    parameters = size.parameters()
    measure = timer(backend.device)

    def execute(batch_runs, model_only: bool = False) -> tuple[float, int | None]:
        batch = make_batch(batch_runs, parameters, root / "out")
        peak: list[int | None] = [None]

        def call() -> None:
            if model_only:
                backend.generate(batch)
            else:
                outcome = backend.run_batch(batch)
                if not all(r.ok for r in outcome.runs):
                    raise RuntimeError(
                        f"run failed: {next(r.error for r in outcome.runs if not r.ok)}"
                    )
                peak[0] = outcome.peak_memory_bytes

        return measure(call), peak[0]

    execute(runs[:1])
    execute(runs[: max(batch_sizes)])
    samples: dict[int, dict[str, list]] = {
        b: {"sequential": [], "batched": [], "model": [], "peak": []} for b in batch_sizes
    }
    complete = True
    for repeat in range(repeats):
        for b in batch_sizes:
            if time.monotonic() > deadline:
                complete = False
                break
            ways = ["sequential", "batched"] if repeat % 2 == 0 else ["batched", "sequential"]
            for way in ways:
                if way == "sequential":
                    samples[b]["sequential"].append(sum(execute([run])[0] for run in runs[:b]))
                else:
                    seconds, peak = execute(runs[:b])
                    samples[b]["batched"].append(seconds)
                    samples[b]["peak"].append(peak)
            samples[b]["model"].append(execute(runs[:b], model_only=True)[0])
    measured = {b: s for b, s in samples.items() if s["batched"] and s["sequential"]}
    medians = {b: statistics.median(s["batched"]) for b, s in measured.items()}
    fixed, per_sample = fit_costs(medians) if len(medians) > 1 else (0.0, 0.0)
    rows = []
    for b, s in measured.items():
        peaks = [p for p in s["peak"] if p is not None]
        rows.append(
            {
                "batch_size": b,
                "sequential_s": statistics.median(s["sequential"]),
                "batched_s": medians[b],
                "model_only_batched_s": statistics.median(s["model"]),
                "ratio": statistics.median(s["sequential"]) / medians[b],
                "limit": physical_limit(b, fixed, per_sample),
                "peak_memory_bytes": max(peaks) if peaks else None,
                "repeats": len(s["batched"]),
            }
        )
    return {"size": size.label, "mode": mode, "dtype": str(backend.dtype), "fixed_s": fixed,
            "per_sample_s": per_sample, "complete": complete, "rows": rows}  # fmt: skip


def print_record(record: dict) -> None:
    """One table per size and mode."""
    print(f"\n{record['size']}, {record['mode']}, {record['dtype']}: a = {record['fixed_s'] * 1e3:.1f} ms, "
          f"s = {record['per_sample_s'] * 1e3:.1f} ms" + ("" if record["complete"] else "  (stopped early: budget)"))  # fmt: skip
    print(
        f"{'B':>3} {'sequential':>11} {'batched':>10} {'model':>10} {'ratio':>6} {'limit':>6} {'peak MiB':>9}"
    )
    for row in record["rows"]:
        peak = row["peak_memory_bytes"]
        print(
            f"{row['batch_size']:>3} {row['sequential_s'] * 1e3:>9.1f}ms {row['batched_s'] * 1e3:>8.1f}ms "
            f"{row['model_only_batched_s'] * 1e3:>8.1f}ms {row['ratio']:>5.2f}x {row['limit']:>5.2f}x "
            f"{'-' if peak is None else f'{peak / 2**20:.1f}':>9}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the GPU benchmark (or its CPU dry run) and print and save the records."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU, float32, tiny sizes: check the script"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--sizes", default="64x64x8:8,256x256x16:8")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="stop measuring after this long"
    )
    parser.add_argument(
        "--json", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_batching.json"
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.dtype, args.sizes, args.batch_sizes, args.repeats = (
            "cpu",
            "float32",
            "32x32x4:2",
            "1,2,4",
            1,
        )
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("no CUDA device visible to torch; use --dry-run to check the script on the CPU")
        return 2
    deadline = time.monotonic() + args.budget_s
    backend = TorchBackend(device=args.device, dtype=args.dtype)
    backend.load()
    machine = {
        "device": str(backend.device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    if backend.device.type == "cuda":
        props = torch.cuda.get_device_properties(backend.device)
        machine |= {"gpu": props.name, "gpu_memory_bytes": props.total_memory}
    print(
        f"GPU: {machine.get('gpu', 'none (dry run on the CPU)')}; torch {machine['torch']}, CUDA {machine['cuda']}"
    )
    root = scratch_dir()
    worst = invariance_check(args.device, root, Size.parse(args.sizes.split(",")[0]))
    print(
        f"batch invariance on {machine['device']} in float32: max abs difference batched vs solo = {worst:.2e}"
    )
    records = []
    sizes = [Size.parse(s) for s in args.sizes.split(",")]
    for size in sizes:
        for mode in ("strict", "mixed"):
            record = bench(
                backend,
                size,
                mode,
                [int(b) for b in args.batch_sizes.split(",")],
                args.repeats,
                deadline,
            )
            print_record(record)
            records.append(record)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"machine": machine, "invariance_max_abs_diff": worst, "records": records}, indent=2
        )
    )
    print(f"\nwrote {args.json}")
    backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
