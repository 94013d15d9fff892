"""Sample scenes: moving shapes rendered with numpy, with exact depth and segmentation maps.

The renderer knows each shape's depth and label, so the control inputs are exact (no
estimator): depth is written as 8-bit grayscale frames (near = bright, the far background = 0)
and segmentation as one flat colour per label. Control maps are PNG frame folders because a
lossy codec would blur label edges; the input video is an mp4 (or a PNG folder on request).
The float depth and integer labels are also saved as .npy for anyone checking exactness.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np

VideoFormat = Literal["mp4", "png"]
BACKGROUND_DEPTH = 1.0
SEG_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
)


@dataclass(frozen=True)
class Shape:
    """A flat-coloured shape moving across the frame at a depth that may drift over time."""

    kind: Literal["circle", "square", "triangle"]
    label: int
    color: tuple[int, int, int]
    size: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    depth: float
    depth_velocity: float = 0.0

    def at(self, t: float) -> tuple[float, float, float]:
        """Centre (x, y, in 0..1, bouncing off the edges) and depth at time t (frames)."""
        x = _bounce(self.start[0] + self.velocity[0] * t)
        y = _bounce(self.start[1] + self.velocity[1] * t)
        depth = float(np.clip(self.depth + self.depth_velocity * t, 0.05, 0.95))
        return x, y, depth


@dataclass(frozen=True)
class SceneSpec:
    """A named scene: its prompt text, background colours and shapes."""

    name: str
    text: str
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class SceneFiles:
    """Where a rendered scene's input video and control inputs were written."""

    name: str
    text: str
    input_video: Path
    depth: Path
    seg: Path
    thumbnail_frames: tuple[Path, ...]

    def thumbnails(self) -> list[tuple[str, Path]]:
        """(caption, frame) of the middle frame of the input, the depth and the segmentation."""
        kinds = ("input", "depth", "seg")
        return [
            (f"{self.name} {kind}", path)
            for kind, path in zip(kinds, self.thumbnail_frames, strict=True)
        ]


def _bounce(value: float) -> float:
    period = value % 2.0
    return period if period <= 1.0 else 2.0 - period


def render(
    spec: SceneSpec, width: int, height: int, frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render RGB frames (uint8), exact depth (float32, 0 near .. 1 far) and labels (uint8)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = (xs + 0.5) / width
    ys = (ys + 0.5) / height
    rgb = np.empty((frames, height, width, 3), dtype=np.uint8)
    depth = np.full((frames, height, width), BACKGROUND_DEPTH, dtype=np.float32)
    labels = np.zeros((frames, height, width), dtype=np.uint8)
    horizon = ys < 0.55
    for t in range(frames):
        frame = np.where(horizon[..., None], np.array(spec.sky), np.array(spec.ground))
        frame = frame.astype(np.uint8)
        placed = sorted(((*shape.at(t), shape) for shape in spec.shapes), key=lambda p: -p[2])
        for x, y, z, shape in placed:  # far to near: nearer shapes occlude farther ones
            mask = _mask(shape, xs - x, ys - y)
            shade = 0.55 + 0.45 * (1.0 - z)  # nearer is brighter: a visible depth cue
            frame[mask] = (np.array(shape.color) * shade).astype(np.uint8)
            depth[t][mask] = z
            labels[t][mask] = shape.label
        rgb[t] = frame
    return rgb, depth, labels


def _mask(shape: Shape, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    half = shape.size / 2
    if shape.kind == "circle":
        return np.asarray(dx * dx + dy * dy <= half * half)
    if shape.kind == "square":
        return np.asarray((np.abs(dx) <= half) & (np.abs(dy) <= half))
    return np.asarray((dy <= half) & (dy >= -half) & (np.abs(dx) <= (dy + half) / 2))


def depth_frames(depth: np.ndarray) -> np.ndarray:
    """Depth as 8-bit grayscale RGB frames: near = bright, the far background = 0."""
    gray = np.round((1.0 - depth) * 255.0).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def seg_frames(labels: np.ndarray) -> np.ndarray:
    """Labels as flat palette colours (label 0, the background, is black)."""
    palette = np.array(SEG_PALETTE, dtype=np.uint8)
    return palette[labels % len(palette)]


def write_video(frames: np.ndarray, path: Path, fps: int, video_format: VideoFormat) -> Path:
    """Write frames as an mp4 file or a folder of PNG frames; return the path written."""
    if video_format == "mp4":
        path = path.with_suffix(".mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=8)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        iio.imwrite(path / f"{index:04d}.png", frame)
    return path


def write_scene(
    spec: SceneSpec,
    folder: Path,
    *,
    width: int,
    height: int,
    frames: int,
    fps: int,
    video_format: VideoFormat = "mp4",
) -> SceneFiles:
    """Render a scene and write its input video and exact control inputs under folder/name."""
    root = folder / spec.name
    rgb, depth, labels = render(spec, width, height, frames)
    video = write_video(rgb, root / "video", fps, video_format)
    depth_dir = write_video(depth_frames(depth), root / "depth", fps, "png")
    seg_dir = write_video(seg_frames(labels), root / "seg", fps, "png")
    np.save(root / "depth.npy", depth)
    np.save(root / "labels.npy", labels)
    legend = {str(s.label): s.kind for s in spec.shapes} | {"0": "background"}
    (root / "labels.json").write_text(json.dumps(legend, indent=2), encoding="utf-8")
    middle = f"{frames // 2:04d}.png"
    rgb_dir = root / "frames"
    rgb_dir.mkdir(parents=True, exist_ok=True)
    iio.imwrite(rgb_dir / middle, rgb[frames // 2])
    return SceneFiles(
        name=spec.name,
        text=spec.text,
        input_video=video,
        depth=depth_dir,
        seg=seg_dir,
        thumbnail_frames=(rgb_dir / middle, depth_dir / middle, seg_dir / middle),
    )


def sample_scenes(count: int) -> list[SceneSpec]:
    """`count` distinct scenes, deterministic (the same every run)."""
    rng = np.random.default_rng(20240611)
    kinds: Sequence[Literal["circle", "square", "triangle"]] = ("circle", "square", "triangle")
    subjects = (
        ("a red ball rolling past a blue box", (135, 185, 235), (90, 140, 80)),
        ("traffic cones and a drone over a parking lot", (170, 170, 190), (70, 70, 75)),
        ("balloons drifting over a green field", (120, 170, 240), (60, 150, 60)),
        ("boxes on a conveyor belt in a warehouse", (110, 100, 90), (150, 140, 120)),
        ("two robots crossing a desert at noon", (240, 210, 150), (200, 160, 100)),
        ("fish swimming in a shallow reef", (20, 90, 160), (200, 180, 120)),
        ("snowballs bouncing down a slope", (200, 215, 230), (240, 245, 250)),
        ("lanterns floating over a night harbour", (15, 20, 50), (30, 40, 70)),
    )
    scenes = []
    for index in range(count):
        text, sky, ground = subjects[index % len(subjects)]
        shapes = []
        for label in range(1, int(rng.integers(2, 5)) + 1):
            shapes.append(
                Shape(
                    kind=kinds[int(rng.integers(0, len(kinds)))],
                    label=label,
                    color=tuple(int(c) for c in rng.integers(40, 256, size=3)),  # type: ignore[arg-type]
                    size=float(rng.uniform(0.18, 0.4)),
                    start=(float(rng.uniform(0, 1)), float(rng.uniform(0.2, 0.9))),
                    velocity=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.04, 0.04))),
                    depth=float(rng.uniform(0.2, 0.85)),
                    depth_velocity=float(rng.uniform(-0.03, 0.03)),
                )
            )
        scenes.append(SceneSpec(f"scene_{index + 1:02d}", text, sky, ground, tuple(shapes)))
    return scenes
