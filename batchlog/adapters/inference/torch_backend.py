"""The torch reference backend: runs inference, batch_inference and upscale items for real.

A batch is one invocation: its input videos are decoded by one ffmpeg process, the `vis` and
`edge` controls are computed from them in torch, `depth` and `seg` come from the runs' control
input files, every run draws its noise from its own generator seeded with its own seed, the
reference denoiser runs `num_steps` guided steps over the whole batch, and the outputs are encoded
by one ffmpeg process into one mp4 per run. A run whose input is missing or unreadable fails alone;
the others go on. See docs/torch-backend.md.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from batchlog.adapters.inference.control_maps import edge_map, vis_map
from batchlog.adapters.inference.latent_codec import LATENT_CHANNELS, PATCH, LatentCodec
from batchlog.adapters.inference.reference_model import (
    ReferenceDenoiser,
    ReferenceModelConfig,
    TextContext,
    build_reference_model,
)
from batchlog.adapters.inference.sampler import denoise, karras_sigmas
from batchlog.adapters.inference.upscaler import ReferenceUpscaler
from batchlog.adapters.inference.video_io import (
    InputError,
    VideoSize,
    load_inputs,
    read_native,
    write_videos,
)
from batchlog.domain.controls import CONTROLS, ordered_controls
from batchlog.domain.errors import ValidationError
from batchlog.runner.backend import (
    BackendError,
    BackendOutOfMemoryError,
    BatchInput,
    BatchOutcome,
    RunInput,
    RunOutcome,
)

SUPPORTED_JOB_TYPES = frozenset({"inference", "batch_inference", "upscale"})
COMPUTED_CONTROLS = frozenset({"vis", "edge"})
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)


def resolve_device(device: str) -> torch.device:
    """cpu, cuda, cuda:N or auto (CUDA when available, else CPU) -> a torch device with an index."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or re.fullmatch(r"cuda:\d+", device):
        if not torch.cuda.is_available():
            raise ValidationError(
                "device", f"{device!r} asked, but torch sees no CUDA device; use cpu or auto"
            )
        index = int(device[5:] or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise ValidationError(
                "device", f"{device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device("cuda", index)
    raise ValidationError("device", f"{device!r} is unknown; allowed: cpu, cuda, cuda:N, auto")


def output_path(artifacts_dir: Path, run: RunInput, suffix: str = "") -> Path:
    """Where a run's output video goes: named by job id and run id."""
    return (
        artifacts_dir
        / f"{_UNSAFE.sub('_', run.job_id)}__{_UNSAFE.sub('_', run.run_id)}{suffix}.mp4"
    )


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Generation:
    """What a batch produced before anything is written: frames and fps per run, errors per run."""

    videos: dict[str, torch.Tensor]  # run_id -> float32 [F, H, W, 3] in [0, 1], on the CPU
    fps: dict[str, float]
    errors: dict[str, str]
    suffix: str = ""


class TorchBackend:
    """The reference backend: the compact multi-control denoiser and the upscaler, in torch."""

    name = "torch"

    def __init__(
        self,
        device: str = "cpu",
        artifacts_dir: str | Path | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        model_config: ReferenceModelConfig | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValidationError("dtype", f"{dtype!r} is unknown; allowed: {', '.join(DTYPES)}")
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self.threads = threads
        self.model_config = model_config or ReferenceModelConfig()
        self._model: ReferenceDenoiser | None = None
        self._codec: LatentCodec | None = None
        self._upscaler: ReferenceUpscaler | None = None
        self.last_timings: dict[str, float] = {}

    def supports(self, job_type: str) -> bool:
        """inference, batch_inference and upscale; not enhancement (no prompt upsampler here)."""
        return job_type in SUPPORTED_JOB_TYPES

    def load(self) -> None:
        """Build the model from its fixed seed and move it to the device (once per process)."""
        if self._model is not None:
            return
        if self.threads:
            torch.set_num_threads(self.threads)
        self._model = build_reference_model(self.model_config).to(self.device, self.dtype)
        self._codec = LatentCodec().to(self.device)
        self._upscaler = ReferenceUpscaler().to(self.device, self.dtype)
        self._warm_up()

    @torch.inference_mode()
    def _warm_up(self) -> None:
        """One tiny forward with every branch, so one-time kernel set-up is paid in load()."""
        assert self._model is not None
        latents = torch.zeros(2, LATENT_CHANNELS, 1, 2, 2, device=self.device, dtype=self.dtype)
        text = self._model.encode_text(["", ""], self.device)
        hints = self._model.embed_hints({c: latents for c in CONTROLS})
        self._model(
            latents, 0.0, text, hints, {c: torch.ones(2, device=self.device) for c in CONTROLS}
        )

    def close(self) -> None:
        """Drop the models and, on CUDA, the cached device memory."""
        self._model = self._codec = self._upscaler = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def model(self) -> ReferenceDenoiser:
        """The loaded denoiser (loads it on first use)."""
        self.load()
        assert self._model is not None
        return self._model

    def run_batch(self, batch: BatchInput) -> BatchOutcome:
        """Execute one batch and write one video per successful run into batch.artifacts_dir."""
        if not self.supports(batch.job_type):
            raise BackendError(
                f"the torch backend cannot run {batch.job_type!r} items", retryable=False
            )
        self.load()
        started = time.perf_counter()
        self.last_timings = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            generation = (
                self.upscale(batch) if batch.job_type == "upscale" else self.generate(batch)
            )
            written = self._write(batch, generation)
        except (BackendError, BackendOutOfMemoryError):
            raise
        except _OOM_ERRORS as error:
            torch.cuda.empty_cache()
            raise BackendOutOfMemoryError(
                f"{len(batch.runs)} runs did not fit on {self.device}: {error}"
            ) from error
        except RuntimeError as error:
            if "can't allocate memory" in str(error):  # the CPU allocator's out-of-memory
                raise BackendOutOfMemoryError(
                    f"{len(batch.runs)} runs did not fit in memory: {error}"
                ) from error
            raise BackendError(f"the torch backend failed: {error}") from error
        seconds = time.perf_counter() - started
        share = seconds / max(1, len(batch.runs))
        outcomes = []
        for run in batch.runs:
            if run.run_id in written:
                path = written[run.run_id]
                outcomes.append(RunOutcome(run.run_id, True, share, str(path), sha256_of(path)))
            else:
                outcomes.append(
                    RunOutcome(run.run_id, False, 0.0, error=generation.errors[run.run_id])
                )
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        return BatchOutcome(tuple(outcomes), seconds, str(self.device), peak)

    def _write(self, batch: BatchInput, generation: Generation) -> dict[str, Path]:
        runs = {run.run_id: run for run in batch.runs}
        groups: dict[tuple[Any, ...], dict[Path, np.ndarray]] = {}
        paths = {}
        for run_id, video in generation.videos.items():
            path = output_path(batch.artifacts_dir, runs[run_id], generation.suffix)
            frames = (video * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
            groups.setdefault((frames.shape, generation.fps[run_id]), {})[path] = frames
            paths[run_id] = path
        started = time.perf_counter()
        try:
            for (_, fps), videos in groups.items():
                write_videos(videos, fps)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BackendError(
                f"writing outputs to {batch.artifacts_dir} failed: {error}"
            ) from error
        self.last_timings["outputs"] = time.perf_counter() - started
        return paths

    @torch.inference_mode()
    def generate(self, batch: BatchInput) -> Generation:
        """Denoise every runnable run of an inference batch; nothing is written."""
        params = batch.parameters
        if params.width % PATCH or params.height % PATCH:
            raise BackendError(f"width and height must be multiples of {PATCH}", retryable=False)
        size = VideoSize(params.width, params.height, params.frames)
        controls = ordered_controls(
            set(batch.controls) | {c for run in batch.runs for c, w in run.weights.items() if w > 0}
        )
        errors: dict[str, str] = {}
        needed: dict[str, dict[str, str]] = {}
        for run in batch.runs:
            problem, paths = _inputs_needed(run)
            if problem:
                errors[run.run_id] = problem
            else:
                needed[run.run_id] = paths
        started = time.perf_counter()
        decoded = load_inputs([p for paths in needed.values() for p in paths.values()], size)
        self.last_timings["inputs"] = time.perf_counter() - started
        ok: list[RunInput] = []
        for run in batch.runs:
            if run.run_id in errors:
                continue
            failures = [
                decoded[p]
                for p in needed[run.run_id].values()
                if isinstance(decoded[p], InputError)
            ]
            if failures:
                errors[run.run_id] = f"run {run.run_id}: {failures[0]}"
            else:
                ok.append(run)
        if not ok:
            return Generation({}, {}, errors)
        started = time.perf_counter()
        videos = self._denoise_runs(ok, needed, decoded, controls, batch)
        self.last_timings["model"] = time.perf_counter() - started
        fps = {run.run_id: float(params.fps) for run in ok}
        return Generation(videos, fps, errors)

    def _denoise_runs(
        self,
        runs: Sequence[RunInput],
        needed: Mapping[str, Mapping[str, str]],
        decoded: Mapping[str, Any],
        controls: Sequence[str],
        batch: BatchInput,
    ) -> dict[str, torch.Tensor]:
        params, model = batch.parameters, self.model
        assert self._codec is not None
        size = (params.frames, params.height, params.width)

        def pixels(kind: str) -> torch.Tensor:
            """[B, 3, F, H, W] in [0, 1] of one input kind; zeros where a run has none."""
            stack = [
                torch.from_numpy(decoded[needed[r.run_id][kind]])
                if kind in needed[r.run_id]
                else torch.zeros((*size, 3), dtype=torch.uint8)
                for r in runs
            ]
            video = torch.stack(stack).to(self.device).permute(0, 4, 1, 2, 3)
            return video.float() / 255.0  # control maps are computed in float32

        weights = {
            c: torch.tensor([r.weights.get(c, 0.0) for r in runs], device=self.device)
            for c in controls
        }
        active = [c for c in controls if bool((weights[c] > 0).any())]
        maps = {c: pixels(c) for c in active if c not in COMPUTED_CONTROLS}
        if COMPUTED_CONTROLS & set(active):
            source = pixels("input")
            if "vis" in active:
                maps["vis"] = vis_map(source, params.blur_strength)
            if "edge" in active:
                maps["edge"] = edge_map(source, params.canny_threshold)
        hint_latents = {c: self._codec.encode(m * 2.0 - 1.0) for c, m in maps.items()}
        hints = model.embed_hints({c: h.to(self.dtype) for c, h in hint_latents.items()})
        active_weights = {c: weights[c] for c in active}
        cond = model.encode_text([r.prompt_text for r in runs], self.device)
        negative = model.encode_text([params.negative_prompt], self.device)
        b = len(runs)
        uncond = TextContext(
            negative.tokens.expand(b, -1, -1),
            negative.mask.expand(b, -1, -1, -1),
            negative.pooled.expand(b, -1),
        )
        latent_shape = (
            LATENT_CHANNELS,
            params.frames,
            params.height // PATCH,
            params.width // PATCH,
        )
        noise = torch.stack(
            [
                torch.randn(latent_shape, generator=torch.Generator().manual_seed(r.seed))
                for r in runs
            ]
        ).to(self.device)
        latents = denoise(
            model,
            noise,
            karras_sigmas(params.num_steps, params.sigma_max),
            cond,
            uncond,
            hints,
            active_weights,
            params.guidance,
            model.prior(hint_latents, active_weights),
        )
        video = (self._codec.decode(latents.float()) + 1.0) / 2.0  # [B, 3, F, H, W]
        frames = video.permute(0, 2, 3, 4, 1).to("cpu", torch.float32)
        return {run.run_id: frames[i] for i, run in enumerate(runs)}

    @torch.inference_mode()
    def upscale(self, batch: BatchInput) -> Generation:
        """Upscale each run's source video (options: scale, upscale_weight, source_videos)."""
        assert self._upscaler is not None
        scale = batch.options.get("scale", 2)
        if scale not in (2, 3, 4):
            raise BackendError(f"upscale scale is {scale!r}; allowed: 2, 3, 4", retryable=False)
        scale = int(scale)
        weight = float(batch.options.get("upscale_weight", 0.5))
        sources: Mapping[str, str] = batch.options.get("source_videos") or {}
        videos, fps, errors = {}, {}, {}
        for run in batch.runs:
            path = sources.get(run.run_id) or sources.get(run.prompt_id) or run.input_video
            try:
                frames, rate = read_native(path)
            except InputError as error:
                errors[run.run_id] = f"run {run.run_id}: {error}"
                continue
            x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255.0
            out = torch.cat([self._upscaler(chunk, scale, weight) for chunk in x.split(16)])
            videos[run.run_id] = out.permute(0, 2, 3, 1).to("cpu", torch.float32)
            fps[run.run_id] = rate
        return Generation(videos, fps, errors, suffix=f"__x{scale}")


def _inputs_needed(run: RunInput) -> tuple[str | None, dict[str, str]]:
    """(error, {kind: path}): the files a run needs for the controls it has on."""
    unknown = sorted(set(run.weights) - set(CONTROLS))
    if unknown:
        return (
            f"run {run.run_id}: unknown control {unknown[0]!r}; allowed: {', '.join(CONTROLS)}",
            {},
        )
    active = [c for c, w in run.weights.items() if w > 0]
    paths: dict[str, str] = {}
    if COMPUTED_CONTROLS & set(active):
        paths["input"] = run.input_video
    for control in sorted(set(active) - COMPUTED_CONTROLS):
        path = run.control_inputs.get(control)
        if not path:
            return (
                f"run {run.run_id}: control {control!r} needs an input file, but prompt "
                f"{run.prompt_id!r} has none (no {control} estimator is bundled)"
            ), {}
        paths[control] = path
    return None, paths


def create_backend(
    device: str = "cpu", artifacts_dir: str | Path | None = None, **options: Any
) -> TorchBackend:
    """Build the torch backend (options: dtype, threads, model_config); load() happens later."""
    return TorchBackend(device=device, artifacts_dir=artifacts_dir, **options)
