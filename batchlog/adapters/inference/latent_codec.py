"""A fixed video latent codec: 8x8 pixel patches projected onto their lowest DCT frequencies.

Real video diffusion models work in the latent space of a learned tokenizer. The reference model
needs the same shape of computation (pixels -> compact latents -> pixels) without a download, so
it uses an orthonormal DCT basis: each 8x8 patch of each colour keeps its 4x4 lowest frequencies
(48 latent channels, 8x smaller spatially, like the 8x8 spatial compression of video tokenizers).
Decoding is the exact transpose, so encoding then decoding is a smooth low-pass of the input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PATCH = 8
KEEP = 4
LATENT_CHANNELS = 3 * KEEP * KEEP


def _dct_matrix(n: int) -> torch.Tensor:
    rows = []
    for k in range(n):
        scale = math.sqrt(1.0 / n) if k == 0 else math.sqrt(2.0 / n)
        rows.append([scale * math.cos(math.pi * (i + 0.5) * k / n) for i in range(n)])
    return torch.tensor(rows, dtype=torch.float64)


def _basis() -> torch.Tensor:
    """[LATENT_CHANNELS, 3*PATCH*PATCH]: orthonormal rows, in pixel_unshuffle channel order."""
    dct = _dct_matrix(PATCH)[:KEEP]  # [KEEP, PATCH]
    per_colour = torch.einsum("ay,bx->abyx", dct, dct).reshape(KEEP * KEEP, PATCH * PATCH)
    basis = torch.zeros(LATENT_CHANNELS, 3 * PATCH * PATCH, dtype=torch.float64)
    for colour in range(3):
        rows = slice(colour * KEEP * KEEP, (colour + 1) * KEEP * KEEP)
        cols = slice(colour * PATCH * PATCH, (colour + 1) * PATCH * PATCH)
        basis[rows, cols] = per_colour
    return basis.float()


class LatentCodec(torch.nn.Module):
    """Encodes videos [B, 3, F, H, W] in [-1, 1] to latents [B, 48, F, H/8, W/8] and back."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", _basis(), persistent=False)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels to latents; H and W must be multiples of 8."""
        b, c, f, h, w = video.shape
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        patches = F.pixel_unshuffle(frames, PATCH)  # [BF, 3*16, h/4, w/4]
        latents = torch.einsum("kc,nchw->nkhw", self.basis.to(patches.dtype), patches)
        return latents.reshape(b, f, LATENT_CHANNELS, h // PATCH, w // PATCH).permute(0, 2, 1, 3, 4)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to pixels in [-1, 1] (clamped)."""
        b, k, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, k, h, w)
        patches = torch.einsum("kc,nkhw->nchw", self.basis.to(flat.dtype), flat)
        frames = F.pixel_shuffle(patches, PATCH)
        video = frames.reshape(b, f, 3, h * PATCH, w * PATCH).permute(0, 2, 1, 3, 4)
        return video.clamp(-1.0, 1.0)
