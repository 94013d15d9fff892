"""The cosmos-transfer backend: runs NVIDIA Cosmos-Transfer1 on a claimed batch.

For each batch it writes the controlnet spec, the batch JSONL and one constant weight map
per run and control into a folder no other batch uses, runs the configured command as an
argument list (never through a shell), and maps upstream's `video_<line>/output.mp4` files
back to runs. Upstream seeds a whole invocation with one seed, so a batch whose runs carry
different seeds is run as one invocation per seed (`seed_scope = "batch"` tells the runner
not to merge different seeds for this backend in the first place).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from batchlog.adapters.inference.cosmos_command import CommandTemplate
from batchlog.adapters.inference.cosmos_files import (
    CHECKPOINT_FILES,
    InvocationFiles,
    collect_outputs,
    upstream_negative_prompt,
    write_invocation,
)
from batchlog.adapters.inference.cosmos_process import Programs
from batchlog.domain.errors import ValidationError
from batchlog.runner.backend import (
    BackendError,
    BatchInput,
    BatchOutcome,
    RunInput,
    RunOutcome,
)

SUPPORTED_JOB_TYPES: frozenset[str] = frozenset({"inference", "batch_inference", "upscale"})
UPSCALE_SCALE = 3  # upstream's get_upscale_size(upscale_factor=3) is fixed
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class CosmosTransferBackend:
    """Runs batches through an external Cosmos-Transfer1 program, one folder per batch."""

    name = "cosmos-transfer"
    # Upstream draws the noise of a whole invocation from one seed: runs with different
    # seeds must not share a batch (this backend splits such a batch by seed if it gets one).
    seed_scope: Literal["batch"] = "batch"

    def __init__(
        self,
        *,
        command: CommandTemplate,
        artifacts_dir: Path,
        checkpoint_dir: str | None,
        checkpoint_paths: Mapping[str, str],
        num_gpus: int,
        timeout_seconds_per_run: float,
        timeout_seconds_base: float,
        working_dir: Path | None,
    ) -> None:
        self.command = command
        self.artifacts_dir = artifacts_dir
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_paths = dict(checkpoint_paths)
        self.num_gpus = num_gpus
        self.timeout_seconds_per_run = timeout_seconds_per_run
        self.timeout_seconds_base = timeout_seconds_base
        self.working_dir = working_dir
        self._programs = Programs()

    def supports(self, job_type: str) -> bool:
        """Inference, batch inference and upscale run here."""
        return job_type in SUPPORTED_JOB_TYPES

    def max_batch_size(self, job_type: str) -> int | None:
        """The largest batch upstream accepts for a job type (upscale: 1), None if no limit."""
        return 1 if job_type == "upscale" else None

    def timeout_seconds(self, lines: int) -> float:
        """The wall-clock limit of one invocation with this many JSONL lines."""
        return self.timeout_seconds_base + self.timeout_seconds_per_run * lines

    def load(self) -> None:
        """Nothing stays loaded between batches: each invocation is its own process."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Stop any program still running (a runner abandoning a batch at shutdown)."""
        self._programs.stop_all()

    def run_batch(self, batch: BatchInput) -> BatchOutcome:
        """Write this batch's inputs, run upstream once per seed, map outputs to runs."""
        if not self.supports(batch.job_type):
            raise BackendError(
                f"cosmos-transfer cannot run {batch.job_type!r} items; "
                f"it runs {', '.join(sorted(SUPPORTED_JOB_TYPES))}",
                retryable=False,
            )
        if not batch.runs:
            raise BackendError("the batch has no runs", retryable=False)
        started = time.monotonic()
        upscale_weight = self._upscale_weight(batch)
        outcomes: dict[str, RunOutcome] = {}
        runnable = batch.runs
        if upscale_weight is None:
            self._check_controls(batch)
        else:
            runnable, unsourced = _upscale_sources(batch)
            outcomes.update((outcome.run_id, outcome) for outcome in unsourced)
        batch_dir = self._fresh_batch_dir(batch)
        for index, (seed, runs) in enumerate(_group_by_seed(runnable)):
            files = write_invocation(
                batch_dir / f"invocation{index}-seed{seed}",
                runs=runs,
                controls=batch.controls,
                parameters=batch.parameters,
                seed=seed,
                batch_size=1 if upscale_weight is not None else len(runs),
                num_gpus=self.num_gpus,
                checkpoint_dir=self.checkpoint_dir,
                checkpoint_paths=self.checkpoint_paths,
                upscale_weight=upscale_weight,
            )
            seconds = self._invoke(files, batch)
            for outcome in collect_outputs(files, seconds):
                outcomes[outcome.run_id] = outcome
        return BatchOutcome(
            runs=tuple(outcomes[run.run_id] for run in batch.runs),
            seconds=time.monotonic() - started,
            device=f"cosmos-transfer ({self.num_gpus} GPU{'s' if self.num_gpus > 1 else ''})",
        )

    def _upscale_weight(self, batch: BatchInput) -> float | None:
        if batch.job_type != "upscale":
            return None
        scale = batch.options.get("scale", UPSCALE_SCALE)
        if scale != UPSCALE_SCALE:
            raise BackendError(
                f"upscale scale {scale} is not available: Cosmos-Transfer1's upscaler only "
                f"upscales {UPSCALE_SCALE}x; submit the job with scale={UPSCALE_SCALE}",
                retryable=False,
            )
        return float(batch.options.get("upscale_weight", 0.5))

    def _check_controls(self, batch: BatchInput) -> None:
        unknown = [c for c in batch.controls if c not in CHECKPOINT_FILES or c == "upscale"]
        if unknown or not batch.controls:
            raise BackendError(
                f"batch controls {list(batch.controls)} are not runnable here; "
                "allowed: vis, edge, depth, seg (at least one)",
                retryable=False,
            )
        for run in batch.runs:
            outside = sorted(c for c, w in run.weights.items() if w > 0 and c not in batch.controls)
            if outside:
                raise BackendError(
                    f"run {run.run_id} asks for {outside} but the batch computes "
                    f"{list(batch.controls)}",
                    retryable=False,
                )

    def _fresh_batch_dir(self, batch: BatchInput) -> Path:
        item = _UNSAFE_NAME.sub("_", batch.item_id)[:80] or "item"
        directory = (
            self.artifacts_dir
            / "cosmos-transfer"
            / (f"{item}-attempt{batch.attempt}-{uuid.uuid4().hex}")
        )
        directory.mkdir(parents=True, exist_ok=False)
        return directory

    def _invoke(self, files: InvocationFiles, batch: BatchInput) -> float:
        arguments = self.command.render(self._placeholder_values(files, batch))
        return self._programs.run(
            arguments,
            folder=files.directory,
            timeout=self.timeout_seconds(len(files.runs)),
            cwd=self.working_dir,
            what=f"{len(files.runs)} run(s)",
        )

    def _placeholder_values(self, files: InvocationFiles, batch: BatchInput) -> dict[str, Any]:
        parameters = batch.parameters
        return {
            "spec": files.spec_path,
            "batch_jsonl": files.batch_jsonl_path,
            "out_dir": files.out_dir,
            "batch_size": files.batch_size,
            "num_gpus": self.num_gpus,
            "checkpoint_dir": self.checkpoint_dir or "",
            "num_steps": parameters.num_steps,
            "guidance": parameters.guidance,
            "sigma_max": parameters.sigma_max,
            "seed": files.seed,
            "fps": parameters.fps,
            "blur_strength": parameters.blur_strength,
            "canny_threshold": parameters.canny_threshold,
            "negative_prompt": upstream_negative_prompt(parameters.negative_prompt),
            "width": parameters.width,
            "height": parameters.height,
            "frames": parameters.frames,
        }


def create_backend(
    *,
    artifacts_dir: str | Path,
    command: str | Sequence[str] | None = None,
    checkpoint_dir: str | Path | None = None,
    num_gpus: int = 1,
    timeout_seconds_per_run: float = 1800.0,
    timeout_seconds_base: float = 900.0,
    checkpoint_paths: Mapping[str, str] | None = None,
    working_dir: str | Path | None = None,
    settings: Any = None,
    device: str | None = None,
    **options: Any,
) -> CosmosTransferBackend:
    """Build the backend; the command and checkpoint dir default to the BATCHLOG_COSMOS_* settings.

    `device` (passed to every backend by the runner) is accepted and not used: the program's
    GPUs are chosen by its command and environment (CUDA_VISIBLE_DEVICES, `{num_gpus}`).
    """
    if options:
        raise ValidationError(
            "backend_options",
            f"unknown option {sorted(options)[0]!r} for cosmos-transfer; allowed: command, "
            "checkpoint_dir, num_gpus, timeout_seconds_per_run, timeout_seconds_base, "
            "checkpoint_paths, working_dir, artifacts_dir",
        )
    if command is None or checkpoint_dir is None:
        if settings is None:
            from batchlog.adapters.settings import Settings

            settings = Settings.from_environment()
        command = command if command is not None else settings.cosmos_command
        if checkpoint_dir is None:
            checkpoint_dir = settings.cosmos_checkpoint_dir
    if command is None:
        from batchlog.adapters.inference.cosmos_command import EXAMPLE_TEMPLATE

        raise ValidationError(
            "cosmos_command",
            f"is not set; set BATCHLOG_COSMOS_COMMAND, e.g. {EXAMPLE_TEMPLATE!r}",
        )
    template = CommandTemplate.parse(command)
    if "checkpoint_dir" in template.placeholders and checkpoint_dir is None:
        raise ValidationError(
            "cosmos_checkpoint_dir",
            "the command uses {checkpoint_dir} but none is set; set BATCHLOG_COSMOS_CHECKPOINT_DIR",
        )
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
        raise ValidationError("num_gpus", f"is {num_gpus!r}; allowed: an integer >= 1")
    for field, value in (
        ("timeout_seconds_per_run", timeout_seconds_per_run),
        ("timeout_seconds_base", timeout_seconds_base),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValidationError(field, f"is {value!r}; allowed: a number of seconds > 0")
    unknown = sorted(set(checkpoint_paths or {}) - set(CHECKPOINT_FILES))
    if unknown:
        raise ValidationError(
            "checkpoint_paths",
            f"unknown control {unknown[0]!r}; allowed: {', '.join(CHECKPOINT_FILES)}",
        )
    return CosmosTransferBackend(
        command=template,
        artifacts_dir=Path(artifacts_dir),
        checkpoint_dir=str(checkpoint_dir) if checkpoint_dir is not None else None,
        checkpoint_paths=dict(checkpoint_paths or {}),
        num_gpus=num_gpus,
        timeout_seconds_per_run=float(timeout_seconds_per_run),
        timeout_seconds_base=float(timeout_seconds_base),
        working_dir=Path(working_dir) if working_dir is not None else None,
    )


def _upscale_sources(batch: BatchInput) -> tuple[tuple[RunInput, ...], list[RunOutcome]]:
    """The video each upscale run reads: its prompt's latest output, from the batch options.

    The runner passes `source_outputs` ({prompt_id: path}; `source_videos`, keyed by run or
    prompt id, is read too). A run missing from a given map fails alone; without any map,
    each run's own `input_video` is used.
    """
    sources = batch.options.get("source_outputs", batch.options.get("source_videos"))
    if sources is None:
        return batch.runs, []
    runnable, failed = [], []
    for run in batch.runs:
        source = sources.get(run.run_id) or sources.get(run.prompt_id)
        if source is None:
            failed.append(
                RunOutcome(
                    run.run_id,
                    ok=False,
                    seconds=0.0,
                    error=f"prompt {run.prompt_id} has no earlier output to upscale; "
                    "run an inference job for it first",
                )
            )
        else:
            runnable.append(replace(run, input_video=str(source)))
    return tuple(runnable), failed


def _group_by_seed(runs: Sequence[RunInput]) -> list[tuple[int, tuple[RunInput, ...]]]:
    groups: dict[int, list[RunInput]] = {}
    for run in runs:
        groups.setdefault(run.seed, []).append(run)
    return [(seed, tuple(members)) for seed, members in groups.items()]
