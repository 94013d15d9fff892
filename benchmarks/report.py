"""The benchmark report: a markdown page with PNG charts (matplotlib, Agg) from the JSON results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NO_GPU = (
    "No GPU figure exists yet: every number on this page was measured on CPU only. "
    "The prepared GPU script (`benchmarks/gpu_batching.py`: item 5 on CUDA in bf16 with "
    "CUDA-event timing and peak memory) has not been run on a GPU machine."
)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _bar_chart(path: Path, labels: list[str], values: list[float], title: str, unit: str) -> None:
    figure, axes = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.2))
    axes.barh(labels, values, color="#4C72B0")
    axes.set_xlabel(unit)
    axes.set_title(title)
    axes.invert_yaxis()
    for index, value in enumerate(values):
        axes.text(value, index, f" {value:,.0f}" if value >= 10 else f" {value:.3g}", va="center")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _enqueue(result: dict[str, Any], out: Path) -> list[str]:
    medians = result["medians"]
    _bar_chart(
        out / "enqueue.png",
        list(medians),
        list(medians.values()),
        "Enqueue throughput on PostgreSQL (median)",
        "jobs per second",
    )
    lines = [
        "## 1. Enqueue",
        "",
        f"{result['jobs_per_round']} jobs per round, {result['rounds']} interleaved rounds, "
        "each contender in its own database on the same server.",
        "",
        "| contender | jobs/s (median) |",
        "|---|---|",
        *(f"| {name} | {value:,.0f} |" for name, value in medians.items()),
        "",
        "| ratio | value |",
        "|---|---|",
        *(f"| {name} | {value:.2f}x |" for name, value in result["ratios"].items()),
        *(
            f"| {name}, median of the per-round ratios | {value:.2f}x |"
            for name, value in result.get("median_ratio_within_a_round", {}).items()
        ),
        "",
        "| goal (on the ratio of medians) | met |",
        "|---|---|",
        *(f"| {name} | {_fmt(met)} |" for name, met in result["goals_met"].items()),
        "",
        "![enqueue](enqueue.png)",
        "",
    ]
    return lines


def _analysis(result: dict[str, Any], out: Path) -> list[str]:
    sizes = [int(s) for s in result["analysis"]]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = list(next(iter(result["analysis"].values()))["median_seconds"])
    for name in names:
        axes.plot(
            sizes,
            [result["analysis"][str(s)]["median_seconds"][name] for s in sizes],
            marker="o",
            label=name,
        )
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="goal: 1 s")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("queued runs")
    axes.set_ylabel("seconds (median)")
    axes.set_title("Smart-batching analysis time")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "analysis.png", dpi=110)
    plt.close(figure)
    stale = result["staleness"]["median_seconds"]
    lines = [
        "## 2. Analysis and staleness check",
        "",
        "`analyze` is the whole `analyze_queue_for_smart_batching` call on PostgreSQL (plan and "
        "the recorded Analyzed event); `plan` is the pure domain part.",
        "",
        "| runs | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for size in sizes:
        row = result["analysis"][str(size)]["median_seconds"]
        lines.append(f"| {size:,} | " + " | ".join(f"{row[n]:.3f} s" for n in names) + " |")
    lines += [
        "",
        "Staleness check (execute of an analysis made stale by another process's add):",
        "",
        "| queue | seconds (median) |",
        "|---|---|",
        *(f"| {name} | {value * 1000:.2f} ms |" for name, value in stale.items()),
        "",
        "| ratio | value |",
        "|---|---|",
        *(f"| {name} | {value:.2f}x |" for name, value in result["ratios"].items()),
        "",
        "| goal | met |",
        "|---|---|",
        *(f"| {name} | {_fmt(met)} |" for name, met in result["goals_met"].items()),
        "",
        "![analysis](analysis.png)",
        "",
    ]
    return lines


def _estimates(result: dict[str, Any], out: Path) -> list[str]:
    lines = ["## 6. Estimate against measurement", ""]
    if result.get("status") != "measured":
        return [*lines, f"Pending: {result.get('reason', 'not measured')}", ""]
    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    tops = []
    for key, label in (("held_out", "CPU time"), ("held_out_wall", "wall clock")):
        pairs = result.get(key, [])
        measured = [p["measured_seconds"] for p in pairs]
        predicted = [p["predicted_seconds"] for p in pairs]
        axes.scatter(measured, predicted, s=16, label=label)
        tops += measured + predicted
    top = max(tops) * 1.05
    axes.plot([0, top], [0, top], color="grey", linewidth=1)
    axes.plot([0, top], [0, top * 1.15], color="grey", linestyle="--", linewidth=1)
    axes.plot([0, top], [0, top * 0.85], color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel("measured seconds")
    axes.set_ylabel("predicted seconds (fitted on the first half)")
    axes.set_title("Cost model on held-out batches (±15%)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "estimates.png", dpi=110)
    plt.close(figure)
    summaries = result["summary"]
    if "fitted_on" in summaries:  # a result from before the two clocks
        summaries = {"wall": summaries}
    clocks = list(summaries)
    names = list(next(iter(summaries.values())))
    params = result.get("parameters", {})
    return [
        *lines,
        f"Backend {result['backend']}, {params.get('num_steps')} steps at "
        f"{params.get('width')}x{params.get('height')}x{params.get('frames')}; batches of "
        "B in 1, 2, 4, 8 and four control sets, two per control set in a row (shuffled), "
        "timed one after another; fitted on the first half in time order, the second half "
        "predicted.",
        "",
        "| figure | " + " | ".join(clocks) + " |",
        "|---|" + "---|" * len(clocks),
        *(
            f"| {name} | " + " | ".join(_fmt(summaries[c][name]) for c in clocks) + " |"
            for name in names
        ),
        "",
        "| goal | met |",
        "|---|---|",
        *(f"| {name} | {_fmt(met)} |" for name, met in result["goals_met"].items()),
        "",
        *(
            [f"Clocks: {'; '.join(f'{k}: {v}' for k, v in result['clocks'].items())}.", ""]
            if "clocks" in result
            else []
        ),
        "![estimates](estimates.png)",
        "",
    ]


def _batching(result: dict[str, Any]) -> list[str]:
    lines = [
        "| latent size | mode | B | wall ratio | limit | CPU ratio | CPU limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in result["records"]:
        for row in record["rows"]:
            lines.append(
                f"| {record['size']} | {record['mode']} | {row['batch_size']} | "
                f"{row['wall_ratio']:.2f}x | {row['wall_limit']:.2f}x | "
                f"{row['cpu_ratio']:.2f}x | {row['cpu_limit']:.2f}x |"
            )
    return [
        "Sequential (B invocations of one run) against batched (one invocation of B runs), "
        "medians of interleaved repeats; the limit is B(a+s)/(a+Bs). Measured by the torch "
        "backend's script, see docs/torch-backend.md.",
        "",
        *lines,
        "",
    ]


def _external(name: str, result: dict[str, Any]) -> list[str]:
    title = result.get("title", name)
    lines = [f"## {title}", ""]
    if result.get("status") == "absent":
        return [*lines, f"Pending: `{result['script']}` is not in this checkout yet.", ""]
    if result.get("status") == "failed":
        return [
            *lines,
            f"`{result['script']}` failed (`{result.get('command', '')}`):",
            "",
            "```",
            result["output"],
            "```",
            "",
        ]
    if "command" in result:
        lines += [f"Reproduce: `{result['command']}`", ""]
    if result.get("status") in {"pending", "skipped"}:
        word = result["status"].capitalize()
        return [*lines, f"{word}: {result.get('reason', 'not measured')}.", ""]
    if result.get("status") == "printed":
        return [*lines, "```", result["output"], "```", ""]
    if name == "batching" and "records" in result:
        return [*lines, *_batching(result)]
    body = {k: v for k, v in result.items() if k not in {"machine", "title", "script", "command"}}
    return [*lines, "```json", json.dumps(body, indent=2, default=str)[:6000], "```", ""]


def render(results: dict[str, dict[str, Any]], out: Path, command: str) -> Path:
    """Write report.md (and its charts) for the results of one `batchlog bench` run."""
    out.mkdir(parents=True, exist_ok=True)
    machine: dict[str, Any] = next((r["machine"] for r in results.values() if "machine" in r), {})
    lines = [
        "# batchlog benchmarks",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Measured on: {machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs, "
        f"Python {machine.get('python', '?')}, commit {machine.get('commit', '?')}, "
        f"load average at start {machine.get('load_average_at_start', '?')}. "
        "The machine was shared with other work: absolute times are noisy; the ratios, "
        "measured side by side in one run, are what counts.",
        "",
        f"**GPU:** {NO_GPU}",
        "",
    ]
    for name, result in results.items():
        if name == "enqueue" and "medians" in result:
            section = _enqueue(result, out)
        elif name == "analysis" and "analysis" in result:
            section = _analysis(result, out)
        elif name == "estimates" and result.get("status") in {"measured", "pending"}:
            section = _estimates(result, out)
        else:
            lines += _external(name, result)
            continue
        if "command" in result:
            section[2:2] = [f"Reproduce: `{result['command']}`", ""]
        lines += section
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
