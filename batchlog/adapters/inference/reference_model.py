"""The reference multi-control video denoiser: a small DiT with one ControlNet branch per control.

Shape of the computation follows Cosmos-Transfer at toy scale: video latents are cut into
space-time patch tokens, a stack of transformer blocks (self-attention over all tokens,
cross-attention to the prompt's text tokens, adaLN modulation by noise level and pooled text)
predicts the denoised latent, and each control (vis, edge, depth, seg) has its own branch —
copies of the first blocks fed with the control's hint — whose outputs are added to the main
stream after those blocks, each scaled by a per-sample weight tensor of shape [B]. The clean
latent is predicted as a control prior (the weighted blend of the controls' hint latents) plus
what the network adds. A branch whose weights are all zero is not computed; a sample with weight
0 gets exactly +0.0 from it.

Weights are initialized deterministically from a fixed seed (no download, about 1.6 M
parameters); every operation is per sample, so a sample's result does not depend on its batch.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from batchlog.adapters.inference.latent_codec import LATENT_CHANNELS
from batchlog.domain.controls import CONTROLS, ordered_controls

PAD, BOS = 0, 1
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class ReferenceModelConfig:
    """Sizes of the reference model; the defaults are the shipped model."""

    width: int = 64
    heads: int = 4
    depth: int = 4
    control_depth: int = 2
    text_width: int = 64
    vocab: int = 4096
    text_tokens: int = 32
    patch: int = 2
    mlp_ratio: int = 4
    seed: int = 20_260_101


def tokenize(text: str, config: ReferenceModelConfig) -> list[int]:
    """Hashed word tokens: BOS, then blake2b(word) mod vocab, truncated, padded to a fixed length."""
    ids = [BOS]
    for word in _WORD.findall(text.lower())[: config.text_tokens - 1]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        ids.append(2 + int.from_bytes(digest, "little") % (config.vocab - 2))
    return ids + [PAD] * (config.text_tokens - len(ids))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask=None):
    b, n, d = q.shape
    q = q.view(b, n, heads, d // heads).transpose(1, 2)
    k = k.view(b, k.shape[1], heads, d // heads).transpose(1, 2)
    v = v.view(b, v.shape[1], heads, d // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, d)


class TextEncoder(nn.Module):
    """Hashed token embeddings plus one transformer layer; returns tokens, mask and pooled vector."""

    def __init__(self, config: ReferenceModelConfig) -> None:
        super().__init__()
        d = config.text_width
        self.heads = config.heads
        self.embed = nn.Embedding(config.vocab, d)
        self.position = nn.Parameter(torch.zeros(config.text_tokens, d))
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
        )
        self.norm_out = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids [B, L] -> (tokens [B, L, d], key mask [B, 1, 1, L], pooled [B, d])."""
        keep = ids != PAD
        mask = keep[:, None, None, :]
        x = self.embed(ids) + self.position
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        x = x + self.proj(_attention(q, k, v, self.heads, mask))
        x = self.norm_out(x + self.mlp(self.norm2(x)))
        weights = keep.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return x, mask, pooled


class Block(nn.Module):
    """A DiT block: adaLN-modulated self-attention, cross-attention to text, and an MLP."""

    def __init__(self, config: ReferenceModelConfig) -> None:
        super().__init__()
        d = config.width
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(config.text_width, 2 * d)
        self.cross_proj = nn.Linear(d, d)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False)
        hidden = config.mlp_ratio * d
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d)
        )
        self.modulation = nn.Linear(d, 6 * d)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text: TextContext) -> torch.Tensor:
        """x [B, N, d], cond [B, d] -> x [B, N, d]."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (
            self.modulation(F.silu(cond)).unsqueeze(1).chunk(6, dim=-1)
        )
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        x = x + gate1 * self.proj(_attention(q, k, v, self.heads))
        k, v = self.cross_kv(text.tokens).chunk(2, dim=-1)
        x = x + self.cross_proj(
            _attention(self.cross_q(self.norm2(x)), k, v, self.heads, text.mask)
        )
        h = self.norm3(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


@dataclass(frozen=True)
class TextContext:
    """Encoded text of a (CFG-doubled) batch: tokens, key mask and pooled vectors."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


class ControlBranch(nn.Module):
    """A ControlNet-style branch: hint embedding, copies of the first blocks, output projections."""

    def __init__(self, config: ReferenceModelConfig) -> None:
        super().__init__()
        patch_dim = LATENT_CHANNELS * config.patch * config.patch
        self.hint_embed = nn.Linear(patch_dim, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.control_depth))
        self.outputs = nn.ModuleList(
            nn.Linear(config.width, config.width) for _ in range(config.control_depth)
        )

    def forward(
        self, tokens: torch.Tensor, hint: torch.Tensor, cond: torch.Tensor, text: TextContext
    ) -> list[torch.Tensor]:
        """The residual this control adds after each of the first `control_depth` main blocks."""
        h = tokens + hint
        residuals = []
        for block, output in zip(self.blocks, self.outputs, strict=True):
            h = block(h, cond, text)
            residuals.append(output(h))
        return residuals


class ReferenceDenoiser(nn.Module):
    """The multi-control video DiT: predicts the raw network output F(x, sigma, text, controls)."""

    def __init__(self, config: ReferenceModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        patch_dim = LATENT_CHANNELS * config.patch * config.patch
        self.text_encoder = TextEncoder(config)
        self.x_embed = nn.Linear(patch_dim, d)
        self.sigma_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text_pool = nn.Linear(config.text_width, d)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.controls = nn.ModuleDict({name: ControlBranch(config) for name in CONTROLS})
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_modulation = nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, patch_dim)

    def encode_text(self, prompts: Sequence[str], device: torch.device) -> TextContext:
        """Encode prompts (one batch) into a TextContext."""
        ids = torch.tensor([tokenize(p, self.config) for p in prompts], device=device)
        tokens, mask, pooled = self.text_encoder(ids)
        return TextContext(tokens, mask, pooled)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, F, h, w] -> [B, F*ceil(h/p)*ceil(w/p), C*p*p] tokens (edges padded by replication)."""
        b, c, f, h, w = latents.shape
        p = self.config.patch
        if h % p or w % p:
            latents = F.pad(latents, (0, -w % p, 0, -h % p, 0, 0), mode="replicate")
            h, w = latents.shape[-2:]
        x = latents.reshape(b, c, f, h // p, p, w // p, p)
        return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, f * (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The inverse of patchify (padding cropped off)."""
        b, c, f, h, w = shape
        p = self.config.patch
        hp, wp = -(-h // p), -(-w // p)
        x = tokens.reshape(b, f, hp, wp, c, p, p)
        return x.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, c, f, hp * p, wp * p)[..., :h, :w]

    def embed_hints(self, hints: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Control hint latents [B, C, F, h, w] -> hint token embeddings, once per invocation."""
        embedded = {}
        for name, hint in hints.items():
            branch = self.controls[name]
            assert isinstance(branch, ControlBranch)
            embedded[name] = branch.hint_embed(self.patchify(hint))
        return embedded

    @staticmethod
    def prior(
        hint_latents: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor | None:
        """The control prior: sum of w_c * hint_c over controls, over max(1, sum of w_c), per sample.

        The denoiser predicts the clean latent as this prior plus what the network adds, so the
        output follows its controls as strongly as their weights say; a zero weight adds +0.0.
        """
        total: torch.Tensor | None = None
        weight_sum: torch.Tensor | None = None
        for name in ordered_controls(hint_latents):
            w = weights[name].to(hint_latents[name].dtype).view(-1, 1, 1, 1, 1)
            term = w * hint_latents[name]
            total = term if total is None else total + term
            weight_sum = w if weight_sum is None else weight_sum + w
        if total is None or weight_sum is None:
            return None
        return total / weight_sum.clamp(min=1.0)

    def forward(
        self,
        latents: torch.Tensor,
        c_noise: float,
        text: TextContext,
        hints: Mapping[str, torch.Tensor],
        weights: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """latents [B, C, F, h, w]; hints from embed_hints; weights[name] has shape [B]."""
        tokens = self.x_embed(self.patchify(latents)) + _positions(
            latents.shape[2:], self.config, latents.device, latents.dtype
        )
        sigma = self.sigma_mlp(_sinusoid(c_noise, self.config.width, latents.device, latents.dtype))
        cond = sigma + self.text_pool(text.pooled)
        injected: list[torch.Tensor | None] = [None] * self.config.control_depth
        for name in ordered_controls(hints):
            residuals = self.controls[name](tokens, hints[name], cond, text)
            scale = weights[name].to(tokens.dtype).view(-1, 1, 1)
            for i, residual in enumerate(residuals):
                scaled = scale * residual
                previous = injected[i]
                injected[i] = scaled if previous is None else previous + scaled
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, cond, text)
            extra = injected[i] if i < len(injected) else None
            if extra is not None:
                tokens = tokens + extra
        shift, scale = self.final_modulation(F.silu(cond)).unsqueeze(1).chunk(2, dim=-1)
        out = self.final(self.final_norm(tokens) * (1 + scale) + shift)
        return self.unpatchify(out, latents.shape)


def _sinusoid(value: float, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    half = width // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = value * 1000.0 * freqs
    emb = torch.cat([torch.cos(angles), torch.sin(angles)]).to(device=device, dtype=dtype)
    return emb.unsqueeze(0)


@lru_cache(maxsize=32)
def _positions_cpu(shape: tuple[int, int, int], width: int, patch: int) -> torch.Tensor:
    f, h, w = shape[0], -(-shape[1] // patch), -(-shape[2] // patch)
    third = (width // 6) * 2
    grids = torch.meshgrid(
        torch.arange(f, dtype=torch.float64),
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing="ij",
    )
    parts = []
    for grid in grids:
        freqs = torch.exp(
            -math.log(100.0) * torch.arange(third // 2, dtype=torch.float64) / (third // 2)
        )
        angles = grid.reshape(-1, 1) * freqs
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, width - emb.shape[1])).float()


def _positions(shape, config: ReferenceModelConfig, device, dtype) -> torch.Tensor:
    return _positions_cpu(tuple(shape), config.width, config.patch).to(device=device, dtype=dtype)


def build_reference_model(config: ReferenceModelConfig | None = None) -> ReferenceDenoiser:
    """The shipped model with weights drawn from the config's fixed seed (same on every machine)."""
    config = config or ReferenceModelConfig()
    model = ReferenceDenoiser(config)
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or name.endswith("position"):
                parameter.zero_()
            elif parameter.ndim == 1:
                parameter.fill_(1.0)
            elif "embed.weight" in name and "hint" not in name and "x_embed" not in name:
                parameter.normal_(0.0, 1.0, generator=generator)
            else:
                gain = 0.5 if ("modulation" in name or "outputs" in name) else 1.0
                gain = 0.2 if name.startswith("final.") else gain  # a small residual on the prior
                parameter.normal_(0.0, gain / math.sqrt(parameter.shape[1]), generator=generator)
    return model.eval()


def parameter_count(model: nn.Module) -> int:
    """How many parameters a model has."""
    return sum(p.numel() for p in model.parameters())


def fingerprint(model: nn.Module) -> str:
    """sha256 (first 16 hex) over the model's parameters: equal on every machine for one seed."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(parameter.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
