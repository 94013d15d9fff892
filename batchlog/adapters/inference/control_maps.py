"""The computed controls: `vis` (a Gaussian blur of the input) and `edge` (a Canny edge map).

Both work on a batch of videos [B, 3, F, H, W] with values in [0, 1], frame by frame, in torch, so
they run on the backend's device and every sample is processed independently of the others.
Blur sigmas scale with resolution; Canny thresholds are the Cosmos-Transfer presets on the 0-255
scale of OpenCV's Sobel gradient magnitudes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLUR_SIGMA_PX = {"very_low": 0.5, "low": 1.0, "medium": 1.5, "high": 2.5, "very_high": 4.0}
CANNY_THRESHOLDS = {
    "very_low": (20.0, 50.0),
    "low": (50.0, 100.0),
    "medium": (100.0, 200.0),
    "high": (200.0, 300.0),
    "very_high": (300.0, 400.0),
}


def _frames(video: torch.Tensor) -> torch.Tensor:
    b, c, f, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def _video(frames: torch.Tensor, b: int) -> torch.Tensor:
    n, c, h, w = frames.shape
    return frames.reshape(b, n // b, c, h, w).permute(0, 2, 1, 3, 4)


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(device=device, dtype=dtype)


def _separable_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    c = frames.shape[1]
    kernel = _gaussian_kernel(sigma, frames.device, frames.dtype)
    r = kernel.numel() // 2
    horizontal = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(F.pad(frames, (r, r, 0, 0), mode="replicate"), horizontal, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), vertical, groups=c)


def _level(table: dict, level: str, field: str):
    try:
        return table[level]
    except KeyError:
        raise ValueError(f"{field} is {level!r}; allowed: {', '.join(table)}") from None


def blur_strength_sigma(level: str, height: int, width: int) -> float:
    """The blur sigma in pixels for a blur_strength level at this resolution."""
    return _level(BLUR_SIGMA_PX, level, "blur_strength") * max(1.0, min(height, width) / 128.0)


def vis_map(video: torch.Tensor, blur_strength: str) -> torch.Tensor:
    """The `vis` control: the input blurred at blur_strength; [B, 3, F, H, W] in [0, 1]."""
    sigma = blur_strength_sigma(blur_strength, video.shape[-2], video.shape[-1])
    return _video(_separable_blur(_frames(video), sigma), video.shape[0])


def edge_map(video: torch.Tensor, canny_threshold: str) -> torch.Tensor:
    """The `edge` control: Canny edges (white on black) at canny_threshold; [B, 3, F, H, W]."""
    low, high = _level(CANNY_THRESHOLDS, canny_threshold, "canny_threshold")
    frames = _frames(video)
    weights = torch.tensor([0.299, 0.587, 0.114], device=frames.device, dtype=frames.dtype)
    gray = (frames * weights.view(1, 3, 1, 1)).sum(1, keepdim=True) * 255.0
    gray = _separable_blur(gray, 1.4)
    sobel = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
        device=frames.device,
        dtype=frames.dtype,
    )
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, sobel.t().reshape(1, 1, 3, 3))
    magnitude = torch.sqrt(gx**2 + gy**2)
    thin = magnitude * _is_local_maximum(magnitude, gx, gy)
    strong, weak = thin >= high, thin >= low
    for _ in range(
        gray.shape[-1] + gray.shape[-2]
    ):  # hysteresis: grow strong edges along weak ones
        grown = weak & (F.max_pool2d(strong.to(gray.dtype), 3, stride=1, padding=1) > 0)
        if torch.equal(grown, strong):
            break
        strong = grown
    edges = strong.to(frames.dtype).expand(-1, 3, -1, -1)
    return _video(edges, video.shape[0])


def _is_local_maximum(magnitude: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Non-maximum suppression along the gradient direction, quantized to 0/45/90/135 degrees."""
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    padded = F.pad(magnitude, (1, 1, 1, 1))
    h, w = magnitude.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    neighbours = {
        0: (shifted(0, 1), shifted(0, -1)),
        45: (shifted(1, 1), shifted(-1, -1)),
        90: (shifted(1, 0), shifted(-1, 0)),
        135: (shifted(1, -1), shifted(-1, 1)),
    }
    sector = (((angle + 22.5) // 45.0) % 4 * 45).to(torch.int64)
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for direction, (a, b) in neighbours.items():
        keep |= (sector == direction) & (magnitude >= a) & (magnitude >= b)
    return keep.to(magnitude.dtype)
