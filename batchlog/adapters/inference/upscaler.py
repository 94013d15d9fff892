"""The reference spatial upscaler: bicubic interpolation plus a small deterministic refinement.

The refinement is a residual added to the interpolated frames, scaled by `upscale_weight`: a
depthwise sharpening filter (identity minus a 3x3 Gaussian, i.e. an unsharp mask) and a two-layer
convolutional detail network whose weights come from a fixed seed, as the upscalers of video
pipelines refine an interpolated frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

UPSCALER_SEED = 20_260_102


class ReferenceUpscaler(nn.Module):
    """Upscales frames [N, 3, H, W] in [0, 1] by an integer factor."""

    def __init__(self, hidden: int = 16, seed: int = UPSCALER_SEED) -> None:
        super().__init__()
        self.sharpen = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        self.detail = nn.Sequential(
            nn.Conv2d(3, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 3, 3, padding=1)
        )
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            gauss = torch.tensor([1.0, 2.0, 1.0])
            gauss = torch.outer(gauss, gauss) / 16.0
            identity = torch.zeros(3, 3)
            identity[1, 1] = 1.0
            self.sharpen.weight.copy_((identity - gauss).expand(3, 1, 3, 3))
            for layer in (self.detail[0], self.detail[2]):
                assert isinstance(layer, nn.Conv2d)
                fan_in = layer.weight[0].numel()
                layer.weight.normal_(0.0, 0.1 / math.sqrt(fan_in), generator=generator)
                assert layer.bias is not None
                layer.bias.zero_()
        self.eval()

    def forward(self, frames: torch.Tensor, scale: int, weight: float) -> torch.Tensor:
        """frames [N, 3, H, W] -> [N, 3, scale*H, scale*W], clamped to [0, 1]."""
        up = F.interpolate(frames, scale_factor=scale, mode="bicubic", align_corners=False)
        up = up.clamp(0.0, 1.0)
        residual = self.sharpen(up) + self.detail(up * 2.0 - 1.0)
        return (up + weight * residual).clamp(0.0, 1.0)
