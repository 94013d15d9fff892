"""The demo's self-contained HTML report: queue before/after, plan, chart, thumbnails, lineage.

Everything is inline (CSS, an SVG chart, base64 PNG thumbnails), so the file can be mailed or
opened from anywhere without the data folder.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from batchlog.adapters.demo.measure import Comparison, figure_cells

SERIES = (
    ("estimated_seconds", "estimated, batched", "#9ecae1"),
    ("measured_seconds", "measured, batched", "#08519c"),
    ("estimated_unbatched_seconds", "estimated, one run at a time", "#fdae6b"),
    ("measured_unbatched_seconds", "measured, one run at a time", "#d94801"),
)
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .5rem;
font-size:.9rem;text-align:left} th{background:#f3f3f3} td.num{text-align:right}
pre{background:#f7f7f7;padding:.75rem;overflow-x:auto} .thumbs{display:flex;flex-wrap:wrap;gap:.75rem}
figure{margin:0;font-size:.75rem;text-align:center;width:10rem} figure img{image-rendering:pixelated;
width:96px;height:96px} .muted{color:#666}
"""


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows."""

    title: str
    summary: list[tuple[str, str]]
    status_before: Mapping[str, Any]
    status_after: Mapping[str, Any]
    previews: Mapping[str, str]
    chosen_mode: str
    comparison: Comparison
    scenes: Sequence[tuple[str, Path]]
    outputs: Sequence[tuple[str, Path]]
    lineage_job: str
    lineage: Sequence[Mapping[str, Any]]


def write_report(data: ReportData, path: Path) -> Path:
    """Write the report as one HTML file and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data), encoding="utf-8")
    return path


def render_report(data: ReportData) -> str:
    """The report as an HTML string."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(data.title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{e(data.title)}</h1>",
        _table(["", ""], data.summary),
        "<h2>Estimated vs measured</h2>",
        f"<p>Baseline: {e(data.comparison.baseline)}. Estimates: the analysis's cost model.</p>",
        comparison_table(data.comparison),
        chart_svg(data.comparison),
        "<h2>The queue before Smart Batching</h2>",
        "<p class='muted'>Rebuilt from the log by time travel (<code>queue_at</code>).</p>",
        queue_table(data.status_before),
        "<h2>The plans</h2>",
    ]
    for mode, preview in data.previews.items():
        chosen = " (executed)" if mode == data.chosen_mode else ""
        parts.append(f"<h3>{e(mode.title())}{chosen}</h3><pre>{e(preview)}</pre>")
    parts += [
        "<h2>The queue after Smart Batching (before the runner started)</h2>",
        "<p class='muted'>Rebuilt from the log by time travel (<code>queue_at</code>).</p>",
        queue_table(data.status_after),
        "<h2>Sample scenes: input, exact depth, exact segmentation</h2>",
        _thumbs(data.scenes),
        "<h2>Outputs</h2>",
        "<p class='muted'>The middle frame of each run's output video, as the runner wrote it. "
        "The reference model's weights are deterministic, not trained: the outputs show that "
        "every run really ran with its own controls, weights and seed, not image quality.</p>",
        _thumbs(data.outputs),
        f"<h2>Lineage of job {e(data.lineage_job)}</h2>",
        _table(
            ["sequence", "what", "details"],
            [
                (str(step.get("sequence") or ""), str(step["what"]), str(step["text"]))
                for step in data.lineage
            ],
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header) if any(header) else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def queue_table(status: Mapping[str, Any]) -> str:
    """The queued jobs of a status snapshot as a table."""
    rows = []
    for job in status["queued_jobs"]:
        params = job["parameters"]
        rows.append(
            (
                str(job["position"]),
                job["id"],
                job["type"],
                str(job["runs"]),
                ", ".join(job["controls"]) or "-",
                str(params.get("num_steps", "-")),
                ", ".join(str(s) for s in job["seeds"]) or "-",
                str(len(job["source_job_ids"])) if job["source_job_ids"] else "-",
                job["submitter"],
            )
        )
    header = ["pos", "id", "type", "runs", "controls", "steps", "seeds", "from jobs", "submitter"]
    return f"<p class='muted'>sequence {status['sequence']}</p>" + _table(header, rows)


def comparison_table(comparison: Comparison) -> str:
    """Per batch and overall: estimated vs measured seconds and speedups."""
    rows = []
    for b in comparison.batches:
        rows.append(
            (
                str(b.index),
                b.job_id,
                str(b.runs),
                ", ".join(b.controls),
                str(b.num_steps),
                *figure_cells(b),
            )
        )
    c = comparison
    rows.append(
        (
            "all",
            "",
            str(sum(b.runs for b in c.batches)),
            "",
            "",
            *c.total_figures(),
        )
    )
    header = [
        "batch",
        "job",
        "runs",
        "controls",
        "steps",
        "est. s",
        "measured s",
        "est. solo s",
        "measured solo s",
        "est. speedup",
        "measured speedup",
    ]
    table = _table(header, rows)
    if comparison.rounds > 1:
        raw = [
            (
                str(b.index),
                ", ".join(f"{x:.2f}" for x in b.measured_rounds),
                ", ".join(f"{x:.2f}" for x in b.measured_unbatched_rounds),
            )
            for b in comparison.batches
        ]
        table += (
            f"<p>Measured figures are medians of {comparison.rounds} interleaved rounds "
            "(batched, one at a time, batched, ...). Every round:</p>"
            + _table(["batch", "batched s per round", "one at a time s per round"], raw)
        )
    return table


def chart_svg(comparison: Comparison, width: int = 760, height: int = 320) -> str:
    """An inline SVG bar chart of estimated vs measured seconds per batch, values on the bars."""
    batches = comparison.batches
    top = max([getattr(b, key) for b in batches for key, _, _ in SERIES] + [1e-9]) * 1.15
    left, bottom, plot_h = 50, 60, height - 80
    group = (width - left - 10) / max(len(batches), 1)
    bar = group * 0.8 / len(SERIES)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"]
    for tick in range(5):
        value = top * tick / 4
        y = height - bottom - plot_h * tick / 4
        parts.append(
            f"<line x1='{left}' x2='{width - 10}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>"
            f"<text x='{left - 5}' y='{y + 4:.1f}' font-size='10' text-anchor='end'>"
            f"{value:.1f}s</text>"
        )
    for i, b in enumerate(batches):
        x0 = left + i * group + group * 0.1
        for j, (key, label, color) in enumerate(SERIES):
            value = float(getattr(b, key))
            h = plot_h * value / top
            x, y = x0 + j * bar, height - bottom - h
            parts.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar - 1:.1f}' height='{h:.1f}' "
                f"fill='{color}'><title>batch {b.index}, {label}: {value:.2f} s</title></rect>"
                f"<text x='{x + bar / 2:.1f}' y='{y - 2:.1f}' font-size='9' "
                f"text-anchor='middle'>{value:.2f}</text>"
            )
        parts.append(
            f"<text x='{x0 + group * 0.4:.1f}' y='{height - bottom + 14}' font-size='11' "
            f"text-anchor='middle'>batch {b.index} ({b.runs} runs)</text>"
        )
    for j, (_, label, color) in enumerate(SERIES):
        x = left + (j % 2) * 260
        y = height - 30 + (j // 2) * 16
        parts.append(
            f"<rect x='{x}' y='{y}' width='10' height='10' fill='{color}'/>"
            f"<text x='{x + 14}' y='{y + 9}' font-size='11'>{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def thumbnail_png(path: Path, size: int = 96) -> str:
    """The middle frame of a video (file or PNG folder) or an image, as a base64 PNG."""
    if path.is_dir():
        frames = sorted(path.glob("*.png"))
        frame = iio.imread(frames[len(frames) // 2])
    else:
        pixels = iio.imread(path)
        frame = pixels[len(pixels) // 2] if pixels.ndim == 4 else pixels
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    factor = max(1, size // max(frame.shape[0], frame.shape[1]))
    frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    encoded = iio.imwrite("<bytes>", frame[..., :3].astype(np.uint8), extension=".png")
    return base64.b64encode(encoded).decode("ascii")


def _thumbs(items: Iterable[tuple[str, Path]]) -> str:
    figures = []
    for caption, path in items:
        try:
            image = f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{thumbnail_png(path)}'>"
        except (OSError, ValueError, IndexError) as error:
            image = f"<span class='muted'>unreadable: {html.escape(str(error))}</span>"
        figures.append(f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return f"<div class='thumbs'>{''.join(figures)}</div>"
