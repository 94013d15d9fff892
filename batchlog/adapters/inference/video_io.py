"""Reading inputs and writing output videos, one ffmpeg process per batch rather than per run.

Videos (mp4, gif, webm, ...) go through imageio-ffmpeg's bundled ffmpeg: all the files a batch
needs are decoded by one process (each scaled to the batch's size, first `frames` frames) and all
the batch's outputs are encoded by one process (the frames stacked into one tall stream that a
filter graph crops back into one mp4 per run). Starting ffmpeg costs ~20 ms, so this is the part of
a batch's fixed cost that batching amortizes most on a CPU. If the shared decode fails, each file
is decoded alone so that one unreadable input fails only its own runs. Images and folders of PNG
frames are read with imageio.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F

VIDEO_SUFFIXES = frozenset({".mp4", ".gif", ".webm", ".mov", ".mkv", ".avi", ".m4v"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
_TIMEOUT_S = 300


class InputError(Exception):
    """An input file is missing, of an unknown kind, or cannot be decoded."""


@dataclass(frozen=True)
class VideoSize:
    """Width, height and frame count that decoded inputs are brought to."""

    width: int
    height: int
    frames: int


def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _fit_frames(frames: np.ndarray, count: int, path: str) -> np.ndarray:
    """First `count` frames, padded by repeating the last one."""
    if frames.shape[0] == 0:
        raise InputError(f"input {path} has no frames")
    if frames.shape[0] < count:
        pad = np.repeat(frames[-1:], count - frames.shape[0], axis=0)
        frames = np.concatenate([frames, pad])
    return np.ascontiguousarray(frames[:count])


def _resize(frames: np.ndarray, size: VideoSize) -> np.ndarray:
    """uint8 [F, h, w, 3] -> uint8 [F, H, W, 3] (antialiased bilinear, in torch)."""
    if frames.shape[1:3] == (size.height, size.width):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, (size.height, size.width), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.shape[-1] == 4:
        image = image[..., :3]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype != np.uint8:
        scale = (
            255.0 / max(float(np.iinfo(image.dtype).max), 1.0)
            if image.dtype.kind in "ui"
            else 255.0
        )
        image = np.clip(image.astype(np.float64) * scale, 0, 255).astype(np.uint8)
    return image


def _read_images(paths: Sequence[Path], size: VideoSize, label: str) -> np.ndarray:
    try:
        frames = [_rgb(np.asarray(iio.imread(p))) for p in paths[: size.frames]]
    except Exception as error:
        raise InputError(f"cannot read image {label}: {error}") from error
    if not frames:
        raise InputError(f"folder {label} has no PNG frames")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise InputError(f"frames in {label} differ in size: {sorted(shapes)}")
    return _fit_frames(_resize(np.stack(frames), size), size.frames, label)


def _decode_command(paths: Sequence[str], size: VideoSize, out_dir: str) -> list[str]:
    command = [_ffmpeg(), "-nostdin", "-loglevel", "error"]
    for path in paths:
        command += ["-i", f"file:{os.path.abspath(path)}"]
    for index in range(len(paths)):
        command += [
            "-map", f"{index}:v:0",
            "-vf", f"scale={size.width}:{size.height}:flags=area",
            "-frames:v", str(size.frames),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", f"file:{out_dir}/{index}.raw",
        ]  # fmt: skip
    return command


def _decode_videos(paths: Sequence[str], size: VideoSize) -> dict[str, np.ndarray]:
    """Decode with one ffmpeg process; raise InputError naming ffmpeg's complaint."""
    with tempfile.TemporaryDirectory(prefix="batchlog-decode-") as out_dir:
        result = subprocess.run(
            _decode_command(paths, size, out_dir), capture_output=True, timeout=_TIMEOUT_S
        )
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            raise InputError(lines[-1] if lines else f"ffmpeg exited with {result.returncode}")
        decoded = {}
        for index, path in enumerate(paths):
            raw = np.fromfile(f"{out_dir}/{index}.raw", dtype=np.uint8)
            frames = raw.reshape(-1, size.height, size.width, 3)
            decoded[path] = _fit_frames(frames, size.frames, path)
        return decoded


def load_inputs(paths: Sequence[str], size: VideoSize) -> dict[str, np.ndarray | InputError]:
    """Each distinct path -> uint8 frames [F, H, W, 3], or the InputError that it raised."""
    results: dict[str, np.ndarray | InputError] = {}
    videos = []
    for path in dict.fromkeys(paths):
        target = Path(path)
        if not path or not target.exists():
            results[path] = InputError(f"input file {path!r} does not exist")
        elif target.is_dir():
            frames = sorted(target.glob("*.png"))
            try:
                results[path] = _read_images(frames, size, path)
            except InputError as error:
                results[path] = error
        elif target.suffix.lower() in IMAGE_SUFFIXES:
            try:
                image = _read_images([target], size, path)
                results[path] = np.ascontiguousarray(np.repeat(image[:1], size.frames, axis=0))
            except InputError as error:
                results[path] = error
        elif target.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        else:
            allowed = ", ".join(sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))
            results[path] = InputError(
                f"input {path} has an unknown kind; allowed: {allowed}, or a folder of PNG frames"
            )
    if videos:
        try:
            results.update(_decode_videos(videos, size))
        except (InputError, OSError, ValueError):
            for path in videos:  # find out which file is at fault
                try:
                    results.update(_decode_videos([path], size))
                except (InputError, OSError, ValueError) as error:
                    results[path] = InputError(f"cannot decode {path}: {error}")
    return results


def read_native(path: str, max_frames: int = 1024) -> tuple[np.ndarray, float]:
    """A video (or PNG folder, or image) at its own size: uint8 [F, H, W, 3] and its fps."""
    target = Path(path)
    if not target.exists():
        raise InputError(f"input file {path!r} does not exist")
    if target.is_dir() or target.suffix.lower() in IMAGE_SUFFIXES:
        first = sorted(target.glob("*.png"))[:1] if target.is_dir() else [target]
        if not first:
            raise InputError(f"folder {path} has no PNG frames")
        h, w = _rgb(np.asarray(iio.imread(first[0]))).shape[:2]
        files = sorted(target.glob("*.png")) if target.is_dir() else [target]
        return _read_images(files, VideoSize(w, h, min(len(files), max_frames)), path), 24.0
    try:
        reader = imageio_ffmpeg.read_frames(f"file:{target.resolve()}")
        meta = reader.__next__()
        w, h = meta["size"]
        frames = []
        for raw in reader:
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
            if len(frames) >= max_frames:
                break
        reader.close()
    except (OSError, RuntimeError, StopIteration) as error:
        raise InputError(f"cannot decode {path}: {error}") from error
    stacked = np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)
    return _fit_frames(stacked, len(frames) or 1, path), float(meta.get("fps") or 24.0)


def write_videos(videos: Mapping[Path, np.ndarray], fps: float) -> None:
    """Write uint8 [F, H, W, 3] videos of one shape as H.264 mp4s with one ffmpeg process."""
    shapes = {v.shape for v in videos.values()}
    if len(shapes) != 1:
        for path, video in videos.items():
            write_videos({path: video}, fps)
        return
    (_frames, height, width, _), count = shapes.pop(), len(videos)
    graph = f"[0:v]split={count}" + "".join(f"[s{i}]" for i in range(count)) + ";"
    graph += ";".join(f"[s{i}]crop={width}:{height}:0:{i * height}[o{i}]" for i in range(count))
    command = [
        _ffmpeg(), "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{count * height}", "-r", f"{fps}", "-i", "pipe:0",
        "-filter_complex", graph,
    ]  # fmt: skip
    temporary = []
    for index, path in enumerate(videos):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial.mp4")
        temporary.append((partial, path))
        command += [
            "-map", f"[o{index}]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
            "-pix_fmt", "yuv420p", "-threads", "1", "-fflags", "+bitexact",
            "-flags:v", "+bitexact", "-y", f"file:{partial}",
        ]  # fmt: skip
    stream = np.concatenate(list(videos.values()), axis=1)  # [F, count*H, W, 3]
    result = subprocess.run(
        command, input=stream.tobytes(), capture_output=True, timeout=_TIMEOUT_S
    )
    if result.returncode != 0:
        for partial, _ in temporary:
            partial.unlink(missing_ok=True)
        raise OSError(
            f"ffmpeg could not write the outputs: {result.stderr.decode(errors='replace')[-500:]}"
        )
    for partial, path in temporary:
        os.replace(partial, path)
