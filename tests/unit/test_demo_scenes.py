"""The demo's rendered scenes: control inputs are exact, and written losslessly."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from batchlog.adapters.demo.scenes import (
    BACKGROUND_DEPTH,
    SEG_PALETTE,
    SceneSpec,
    Shape,
    depth_frames,
    render,
    sample_scenes,
    seg_frames,
    write_scene,
)

NEAR = Shape("square", 1, (200, 0, 0), 0.3, (0.5, 0.5), (0.0, 0.0), depth=0.2)
FAR = Shape("circle", 2, (0, 200, 0), 0.5, (0.5, 0.5), (0.0, 0.0), depth=0.7)
SPEC = SceneSpec(
    "overlap", "a red box in front of a green ball", (0, 0, 255), (0, 90, 0), (FAR, NEAR)
)


def test_nearer_shape_occludes_the_farther_one_in_rgb_depth_and_labels() -> None:
    rgb, depth, labels = render(SPEC, 32, 32, 1)
    centre = (0, 16, 16)
    assert depth[centre] == np.float32(0.2)
    assert labels[centre] == 1
    assert rgb[centre][0] > 0 and rgb[centre][1] == 0


def test_depth_and_labels_are_exactly_the_shapes_values_everywhere() -> None:
    _, depth, labels = render(SPEC, 32, 32, 1)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.all(depth[labels == 0] == BACKGROUND_DEPTH)
    assert np.all(depth[labels == 1] == np.float32(0.2))
    assert np.all(depth[labels == 2] == np.float32(0.7))


def test_shapes_move_between_frames() -> None:
    moving = SceneSpec(
        "moving",
        "a ball",
        (0, 0, 0),
        (0, 0, 0),
        (Shape("circle", 1, (255, 255, 255), 0.2, (0.2, 0.5), (0.1, 0.0), 0.5),),
    )
    _, _, labels = render(moving, 32, 32, 4)
    centroids = [np.argwhere(labels[t] == 1)[:, 1].mean() for t in range(4)]
    assert centroids == sorted(centroids) and centroids[-1] > centroids[0] + 5


def test_written_control_frames_read_back_identical(tmp_path: Path) -> None:
    files = write_scene(SPEC, tmp_path, width=32, height=32, frames=3, fps=3)
    _, depth, labels = render(SPEC, 32, 32, 3)
    read_depth = np.stack([iio.imread(p) for p in sorted(files.depth.glob("*.png"))])
    read_seg = np.stack([iio.imread(p) for p in sorted(files.seg.glob("*.png"))])
    assert np.array_equal(read_depth, depth_frames(depth))
    assert np.array_equal(read_seg, seg_frames(labels))
    assert np.array_equal(np.load(files.depth.parent / "depth.npy"), depth)
    assert tuple(read_seg[0, 16, 16]) == SEG_PALETTE[1]


def test_input_video_is_an_mp4_with_every_frame(tmp_path: Path) -> None:
    files = write_scene(SPEC, tmp_path, width=32, height=32, frames=5, fps=5)
    assert files.input_video.suffix == ".mp4"
    assert iio.imread(files.input_video).shape == (5, 32, 32, 3)


def test_sample_scenes_are_deterministic_and_distinct() -> None:
    first, second = sample_scenes(6), sample_scenes(6)
    assert first == second
    assert len({scene.shapes for scene in first}) == 6
