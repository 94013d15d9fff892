"""Sequential (B=1 each) vs batched execution of the same runs on the torch reference model.

For each latent size and mode (strict, mixed) and B in {1, 2, 4, 8}: the first B runs executed
one invocation each, and the same B runs executed as one batch, through TorchBackend.run_batch
(inputs decoded, controls computed, denoised, outputs encoded and hashed — what a runner sees).
Medians over interleaved repeats. Next to each ratio: the physical limit B(a+s)/(a+Bs), with a
(fixed cost per invocation) and s (cost per sample) estimated from the batched B=1 and B=max
timings, and where the time of a batch goes (inputs, model, outputs).

    PYTHONPATH=. python benchmarks/bench_batching.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batching_workload import (
    Size,
    Timing,
    fit_costs,
    make_batch,
    make_media,
    make_runs,
    measure_interleaved,
    physical_limit,
    scratch_dir,
    timed,
)

from batchlog.adapters.inference.torch_backend import TorchBackend

FULL_SIZES = "32x32x4:4,128x128x8:8"
QUICK_SIZES = "32x32x4:2,48x48x8:2"


def bench_size(
    backend: TorchBackend, size: Size, mode: str, batch_sizes: list[int], repeats: int
) -> dict:
    """Measure one size and mode; returns a JSON-ready record."""
    root = scratch_dir()
    runs = make_runs(make_media(root, max(batch_sizes), size), mode)
    parameters = size.parameters()
    phases: dict[int, list[dict[str, float]]] = {b: [] for b in batch_sizes}

    def execute(batch_runs) -> Timing:
        outcomes = []
        timing = timed(
            lambda: outcomes.append(
                backend.run_batch(make_batch(batch_runs, parameters, root / "out"))
            )
        )
        failed = [r.error for r in outcomes[0].runs if not r.ok]
        if failed:
            raise RuntimeError(f"benchmark run failed: {failed[0]}")
        return timing

    def sequential(b: int) -> Timing:
        return sum((execute([run]) for run in runs[1:b]), execute(runs[:1]))

    def batched(b: int) -> Timing:
        timing = execute(runs[:b])
        phases[b].append(dict(backend.last_timings))
        return timing

    execute(runs[:1])  # warm-up: first-call allocations, ffmpeg in the page cache
    execute(runs[: max(batch_sizes)])
    results = measure_interleaved(batch_sizes, repeats, sequential, batched)
    record = {"size": size.label, "mode": mode, "rows": []}
    for clock in ("wall", "cpu"):
        fixed, per_sample = fit_costs({b: m.median("batched", clock) for b, m in results.items()})
        record[f"{clock}_fixed_s"], record[f"{clock}_per_sample_s"] = fixed, per_sample
    for b, m in results.items():
        row: dict = {"batch_size": b}
        for clock in ("wall", "cpu"):
            row[f"{clock}_sequential_s"] = m.median("sequential", clock)
            row[f"{clock}_batched_s"] = m.median("batched", clock)
            row[f"{clock}_ratio"] = m.ratio(clock)
            row[f"{clock}_limit"] = physical_limit(
                b, record[f"{clock}_fixed_s"], record[f"{clock}_per_sample_s"]
            )
        row["batched_phases_s"] = {
            k: statistics.median(p[k] for p in phases[b]) for k in ("inputs", "model", "outputs")
        }
        row["samples"] = {
            "sequential": [vars(t) for t in m.sequential],
            "batched": [vars(t) for t in m.batched],
        }
        record["rows"].append(row)
    return record


def print_record(record: dict) -> None:
    """One table per size and mode: wall-clock and CPU-time ratios, each next to its limit."""
    print(
        f"\n{record['size']}, {record['mode']}: wall a = {record['wall_fixed_s'] * 1e3:.1f} ms, "
        f"s = {record['wall_per_sample_s'] * 1e3:.1f} ms; cpu a = {record['cpu_fixed_s'] * 1e3:.1f} ms, "
        f"s = {record['cpu_per_sample_s'] * 1e3:.1f} ms"
    )
    print(
        f"{'B':>3} {'sequential':>11} {'batched':>9} {'ratio':>6} {'limit':>6} | {'cpu ratio':>9} {'limit':>6}"
        "   batched phases: inputs / model / outputs"
    )
    for row in record["rows"]:
        p = row["batched_phases_s"]
        print(
            f"{row['batch_size']:>3} {row['wall_sequential_s'] * 1e3:>9.1f}ms {row['wall_batched_s'] * 1e3:>7.1f}ms "
            f"{row['wall_ratio']:>5.2f}x {row['wall_limit']:>5.2f}x | {row['cpu_ratio']:>8.2f}x {row['cpu_limit']:>5.2f}x"
            f"   {p['inputs'] * 1e3:.1f} / {p['model'] * 1e3:.1f} / {p['outputs'] * 1e3:.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps, one repeat")
    parser.add_argument("--sizes", help=f"comma list WxHxF:steps (default {FULL_SIZES})")
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 5; quick 1)")
    parser.add_argument("--modes", default="strict,mixed")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: stable on a shared CPU)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args(argv)
    sizes = [
        Size.parse(s)
        for s in (args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)).split(",")
    ]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    repeats = args.repeats or (1 if args.quick else 5)
    torch.set_num_threads(args.threads)
    backend = TorchBackend(device=args.device)
    backend.load()
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(backend.device),
        "load_average_at_start": os.getloadavg(),
    }
    print(
        f"torch reference model on {machine['device']}, {machine['torch_threads']} thread(s), {machine['cpus']} CPUs, "
        f"load average {machine['load_average_at_start'][0]:.1f}; medians of {repeats} interleaved repeats"
    )
    records = []
    for size in sizes:
        for mode in args.modes.split(","):
            record = bench_size(backend, size, mode, batch_sizes, repeats)
            print_record(record)
            records.append(record)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"machine": machine, "repeats": repeats, "records": records}, indent=2)
        )
    backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
