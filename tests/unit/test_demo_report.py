"""The demo report renders every figure it is given, self-contained."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from batchlog.adapters.demo.measure import BatchComparison, Comparison
from batchlog.adapters.demo.report import ReportData, chart_svg, render_report, thumbnail_png

COMPARISON = Comparison(
    [
        BatchComparison(1, "batch_a", 4, ["vis", "edge"], 8, 5.0, 1.234, 20.0, 3.456),
        BatchComparison(2, "batch_b", 2, ["depth"], 4, 4.5, 0.777, 9.0, 0.999),
    ],
    "one run per invocation",
)
STATUS = {
    "sequence": 7,
    "queued_jobs": [
        {
            "position": 1,
            "id": "job_1",
            "type": "inference",
            "runs": 2,
            "controls": ["vis"],
            "parameters": {"num_steps": 8},
            "seeds": [1, 1],
            "source_job_ids": [],
            "submitter": "ana",
        }
    ],
}


def _data(tmp_path: Path) -> ReportData:
    video = tmp_path / "out.mp4"
    iio.imwrite(video, np.full((4, 16, 16, 3), 120, dtype=np.uint8), fps=4, macro_block_size=8)
    return ReportData(
        title="demo",
        summary=[("runs", "6")],
        status_before=STATUS,
        status_after=STATUS,
        previews={"strict": "⚡ Smart Batching Analysis (Strict Mode):", "mixed": "mixed <b>"},
        chosen_mode="mixed",
        comparison=COMPARISON,
        scenes=[],
        outputs=[("run 1", video)],
        lineage_job="job_1",
        lineage=[{"sequence": 3, "what": "added", "text": "added by ana"}],
    )


def test_report_holds_each_measured_figure_and_speedups(tmp_path: Path) -> None:
    page = render_report(_data(tmp_path))
    for figure in ("1.23", "3.46", "0.78", "1.00", "2.80x", "1.29x", "2.22x", "3.05x"):
        assert figure in page
    assert "mixed &lt;b&gt;" in page and "(executed)" in page


def test_report_is_self_contained(tmp_path: Path) -> None:
    page = render_report(_data(tmp_path))
    assert "<svg" in page and "data:image/png;base64," in page
    assert not re.search(r"(src|href)=['\"](https?:|/|file:)", page)


def test_chart_has_four_bars_per_batch() -> None:
    assert chart_svg(COMPARISON).count("<rect") == 4 * 2 + 4  # bars + legend swatches


def test_thumbnail_is_the_middle_frame_as_png(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        iio.imwrite(frames / f"{i:04d}.png", np.full((8, 8, 3), i * 100, dtype=np.uint8))
    decoded = iio.imread(base64.b64decode(thumbnail_png(frames, size=32)), extension=".png")
    assert decoded.shape == (32, 32, 3) and decoded[0, 0, 0] == 100
