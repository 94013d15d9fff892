"""Job configuration at the edge: validation with messages that name the field, and the defaults.

Defaults live here and only here; every path (add, analyze, reorganize, run) reads them from
`InferenceConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from batchlog.domain.controls import CONTROLS, CONTROLS_NEEDING_INPUT_FILES, control_signature
from batchlog.domain.errors import ValidationError
from batchlog.domain.ids import run_id_for
from batchlog.domain.jobs import (
    BATCHABLE_JOB_TYPES,
    JOB_TYPES,
    ExecutionParameters,
    Run,
    interned_parameters,
)
from batchlog.domain.validated import PromptFacts, ValidatedJob  # validation's input, output

Level = Literal["very_low", "low", "medium", "high", "very_high"]
MIN_PRIORITY, MAX_PRIORITY = 0, 100
MAX_BATCH_SIZE = 64
MAX_PROMPTS_PER_JOB = 10_000


def _check_weights(value: Any, field: str) -> dict[str, float]:
    # Exact-type checks first: this runs for every job of a bulk add.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValueError(f"{field} must be a mapping of control to weight, e.g. {{'vis': 0.5}}")
    checked: dict[str, float] = {}
    for name, weight in value.items():
        if name not in CONTROLS:
            raise ValueError(f"unknown control {name!r} in {field}; allowed: {', '.join(CONTROLS)}")
        kind = type(weight)
        if kind is not float and (kind is bool or not isinstance(weight, int | float)):
            raise ValueError(f"weight of {name!r} in {field} must be a number from 0 to 1")
        if not 0.0 <= weight <= 1.0:  # also NaN, which compares false
            raise ValueError(f"weight of {name!r} in {field} is {weight}; allowed: 0 to 1")
        checked[name] = float(weight)
    if not any(weight > 0 for weight in checked.values()):
        raise ValueError(
            f"{field} needs at least one control with a weight > 0 "
            f"(controls: {', '.join(CONTROLS)})"
        )
    return checked


class InferenceConfig(BaseModel):
    """The config of an `inference` or `batch_inference` job, with every default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    weights: dict[str, float] | None = None
    weights_list: list[dict[str, float]] | None = None
    model: str = Field("reference", min_length=1, max_length=200)
    num_steps: int = Field(35, ge=1, le=1000, strict=True)
    guidance: float = Field(
        5.0, ge=0.0, le=50.0, validation_alias=AliasChoices("guidance", "guidance_scale")
    )
    sigma_max: float = Field(70.0, gt=0.0, le=1000.0)
    seed: int = Field(1, ge=0, le=2**63 - 1, strict=True)
    seeds: list[int] | None = None
    fps: int = Field(24, ge=1, le=240, strict=True)
    width: int = Field(64, ge=16, le=4096, multiple_of=8, strict=True)
    height: int = Field(64, ge=16, le=4096, multiple_of=8, strict=True)
    frames: int = Field(8, ge=1, le=1024, strict=True)
    blur_strength: Level = "medium"
    canny_threshold: Level = "medium"
    negative_prompt: str | None = Field(None, max_length=10_000)

    # "plain": the check already returns dict[str, float], pydantic need not check it again.
    @field_validator("weights", mode="plain")
    @classmethod
    def _weights_are_controls(cls, value: Any) -> Any:
        return None if value is None else _check_weights(value, "weights")

    @field_validator("weights_list", mode="plain")
    @classmethod
    def _weights_list_entries(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("weights_list must be a non-empty list with one mapping per prompt")
        return [_check_weights(entry, f"weights_list[{i}]") for i, entry in enumerate(value)]

    @field_validator("guidance", "sigma_max", mode="before")
    @classmethod
    def _plain_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if math.isnan(value) or math.isinf(value):
            raise ValueError("must be a finite number")
        return value


class UpscaleConfig(BaseModel):
    """The config of an `upscale` job: upscale the latest output of each prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: Literal[2, 3, 4] = 2
    source_job_id: str | None = None
    upscale_weight: float = Field(0.5, ge=0.0, le=1.0)


class EnhancementConfig(BaseModel):
    """The config of an `enhancement` (prompt upsampling) job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("prompt-upsampler", min_length=1, max_length=200)


def default_parameters() -> ExecutionParameters:
    """The execution parameters of a job that sets none."""
    return _parameters(InferenceConfig(weights={"vis": 1.0}), negative_prompt="")


def validate_job(
    job_id: str,
    prompt_ids: Sequence[str],
    job_type: str,
    config: Mapping[str, Any] | None,
    priority: int,
    prompts: Mapping[str, PromptFacts],
) -> ValidatedJob:
    """Validate a job submission against the known prompts; raise ValidationError on bad input."""
    if job_type not in JOB_TYPES:
        raise ValidationError(
            "job_type", f"{job_type!r} is unknown; allowed: {', '.join(JOB_TYPES)}"
        )
    ids = _check_prompt_ids(prompt_ids, prompts)
    if type(priority) is not int and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValidationError(
            "priority", f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValidationError(
            "priority", f"is {priority}; allowed: {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    if config is not None and type(config) is not dict and not isinstance(config, Mapping):
        raise ValidationError("config", "must be a mapping of option to value")
    raw = dict(config or {})
    if job_type in BATCHABLE_JOB_TYPES:
        return _validate_inference(job_id, ids, job_type, raw, priority, prompts)
    model: type[BaseModel] = UpscaleConfig if job_type == "upscale" else EnhancementConfig
    options = _parse(model, raw).model_dump()
    runs = tuple(
        Run(run_id_for(job_id, i), job_id, pid, {}, 0, default_parameters())
        for i, pid in enumerate(ids)
    )
    return ValidatedJob(job_type, ids, options, runs, options, priority)


def _check_prompt_ids(
    prompt_ids: Sequence[str], prompts: Mapping[str, PromptFacts]
) -> tuple[str, ...]:
    if type(prompt_ids) is not list and (
        isinstance(prompt_ids, str) or not isinstance(prompt_ids, Sequence)
    ):
        raise ValidationError("prompt_ids", "must be a list of prompt ids, e.g. ['ps_001']")
    if not prompt_ids:
        raise ValidationError("prompt_ids", "is empty; give at least one prompt id")
    if len(prompt_ids) > MAX_PROMPTS_PER_JOB:
        raise ValidationError(
            "prompt_ids", f"has {len(prompt_ids)} ids; at most {MAX_PROMPTS_PER_JOB}"
        )
    unknown = [pid for pid in prompt_ids if pid not in prompts]
    if unknown:
        raise ValidationError(
            "prompt_ids", f"unknown prompt id {unknown[0]!r}; create it with create_prompt first"
        )
    return tuple(prompt_ids)


def _validate_inference(
    job_id: str,
    ids: tuple[str, ...],
    job_type: str,
    raw: dict[str, Any],
    priority: int,
    prompts: Mapping[str, PromptFacts],
) -> ValidatedJob:
    parsed = _parse(InferenceConfig, raw)
    assert isinstance(parsed, InferenceConfig)
    weights_list = _weights_per_prompt(parsed, ids, job_type)
    seeds = _seeds_per_prompt(parsed, ids)
    runs = []
    for index, (pid, weights, seed) in enumerate(zip(ids, weights_list, seeds, strict=True)):
        facts = prompts[pid]
        needing_files = control_signature(weights) & CONTROLS_NEEDING_INPUT_FILES
        missing = needing_files and sorted(needing_files - set(facts.control_inputs))
        if missing:
            raise ValidationError(
                "config.weights",
                f"control {missing[0]!r} needs an input file, but prompt {pid!r} has none "
                f"(no {missing[0]} estimator is bundled); create the prompt with "
                f"control_inputs={{'{missing[0]}': 'path'}} or set its weight to 0",
            )
        negative = (
            parsed.negative_prompt if parsed.negative_prompt is not None else facts.negative_prompt
        )
        runs.append(
            Run(
                run_id_for(job_id, index), job_id, pid, weights, seed, _parameters(parsed, negative)
            )
        )
    # The fields as model_dump(exclude_none=True) gives them (all plain values), without its cost.
    normalized = {name: value for name, value in parsed.__dict__.items() if value is not None}
    return ValidatedJob(job_type, ids, normalized, tuple(runs), {}, priority)


def _weights_per_prompt(
    parsed: InferenceConfig, ids: tuple[str, ...], job_type: str
) -> list[dict[str, float]]:
    if parsed.weights is not None and parsed.weights_list is not None:
        raise ValidationError("config", "give either weights or weights_list, not both")
    if parsed.weights_list is not None:
        if job_type != "batch_inference":
            raise ValidationError(
                "config.weights_list", "is only allowed for batch_inference jobs; use weights"
            )
        if len(parsed.weights_list) != len(ids):
            raise ValidationError(
                "config.weights_list",
                f"has {len(parsed.weights_list)} entries but prompt_ids has {len(ids)}; "
                "give one entry per prompt",
            )
        return [dict(entry) for entry in parsed.weights_list]
    if parsed.weights is None:
        raise ValidationError(
            "config.weights", f"is required, e.g. {{'vis': 0.5}}; controls: {', '.join(CONTROLS)}"
        )
    return [dict(parsed.weights) for _ in ids]


def _seeds_per_prompt(parsed: InferenceConfig, ids: tuple[str, ...]) -> list[int]:
    if parsed.seeds is None:
        return [parsed.seed for _ in ids]
    if len(parsed.seeds) != len(ids):
        raise ValidationError(
            "config.seeds",
            f"has {len(parsed.seeds)} entries but prompt_ids has {len(ids)}; give one per prompt",
        )
    if any(isinstance(s, bool) or not 0 <= s <= 2**63 - 1 for s in parsed.seeds):
        raise ValidationError("config.seeds", "each seed must be an integer from 0 to 2**63-1")
    return list(parsed.seeds)


def _parameters(parsed: InferenceConfig, negative_prompt: str) -> ExecutionParameters:
    return interned_parameters(
        parsed.model,
        parsed.num_steps,
        parsed.guidance,
        parsed.sigma_max,
        parsed.fps,
        parsed.width,
        parsed.height,
        parsed.frames,
        parsed.blur_strength,
        parsed.canny_threshold,
        negative_prompt,
    )


def _parse(model: type[BaseModel], raw: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        field = f"config.{location}" if location else "config"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            allowed = sorted(model.model_fields)
            if model is InferenceConfig:
                allowed.append("guidance_scale")
            message = f"unknown config key {location!r}; allowed: {', '.join(allowed)}"
        raise ValidationError(field, message) from None


def validate_batch_size(size: Any) -> int:
    """Check a batch size from the user."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise ValidationError("batch_size", f"must be an integer from 1 to {MAX_BATCH_SIZE}")
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise ValidationError("batch_size", f"is {size}; allowed: 1 to {MAX_BATCH_SIZE}")
    return size
