"""Denoising: EDM preconditioning, the Karras noise schedule, Euler steps, classifier-free guidance."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch

from batchlog.adapters.inference.reference_model import ReferenceDenoiser, TextContext

SIGMA_DATA = 0.5
SIGMA_MIN = 0.002
RHO = 7.0


def karras_sigmas(num_steps: int, sigma_max: float) -> list[float]:
    """num_steps noise levels from sigma_max down to SIGMA_MIN, then 0."""
    if num_steps == 1:
        return [sigma_max, 0.0]
    lo, hi = SIGMA_MIN ** (1 / RHO), sigma_max ** (1 / RHO)
    sigmas = [(hi + i / (num_steps - 1) * (lo - hi)) ** RHO for i in range(num_steps)]
    return [*sigmas, 0.0]


def _cat_text(cond: TextContext, uncond: TextContext) -> TextContext:
    return TextContext(
        torch.cat([cond.tokens, uncond.tokens]),
        torch.cat([cond.mask, uncond.mask]),
        torch.cat([cond.pooled, uncond.pooled]),
    )


def denoise(
    model: ReferenceDenoiser,
    noise: torch.Tensor,
    sigmas: list[float],
    cond: TextContext,
    uncond: TextContext,
    hints: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    guidance: float,
    prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the sampler from unit noise [B, C, F, h, w]; returns clean latents (float32).

    The sampler's state stays in float32 whatever the model's dtype (bf16 on GPUs). Conditional and unconditional halves run as one forward of 2B samples; controls apply to both
    (as in Cosmos-Transfer), the unconditional half sees the negative prompt. With a prior (the
    controls' blend), EDM preconditioning is applied around it: D(x) = prior + c_skip (x - prior)
    + c_out F((x - prior) c_in), and sampling starts at prior + sigma_max * noise.
    """
    b = noise.shape[0]
    text = _cat_text(cond, uncond)
    hints2 = {name: torch.cat([h, h]) for name, h in hints.items()}
    weights2 = {name: torch.cat([w, w]) for name, w in weights.items()}
    dtype = next(model.parameters()).dtype
    mean = torch.zeros_like(noise, dtype=torch.float32) if prior is None else prior.float()
    x = mean + noise.float() * sigmas[0]
    for sigma, sigma_next in itertools.pairwise(sigmas):
        c_in = 1.0 / math.sqrt(sigma**2 + SIGMA_DATA**2)
        c_skip = SIGMA_DATA**2 / (sigma**2 + SIGMA_DATA**2)
        c_out = sigma * SIGMA_DATA / math.sqrt(sigma**2 + SIGMA_DATA**2)
        deviation = x - mean
        model_input = (torch.cat([deviation, deviation]) * c_in).to(dtype)
        raw = model(model_input, math.log(sigma) / 4.0, text, hints2, weights2).float()
        raw_cond, raw_uncond = raw[:b], raw[b:]
        guided = raw_uncond + guidance * (raw_cond - raw_uncond)
        denoised = mean + c_skip * deviation + c_out * guided
        x = x + (sigma_next - sigma) * ((x - denoised) / sigma)
    return x
