"""Value objects of the queue: execution parameters, runs, claims and queue items."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any, Literal, get_args

from batchlog.domain.controls import control_signature

JobType = Literal["inference", "batch_inference", "upscale", "enhancement"]
JOB_TYPES: tuple[JobType, ...] = get_args(JobType)
BATCHABLE_JOB_TYPES: frozenset[str] = frozenset({"inference", "batch_inference"})
ItemStatus = Literal["queued", "claimed"]


@dataclass(frozen=True)
class ExecutionParameters:
    """Everything that must be identical inside one forward batch (the seed is per run)."""

    model: str
    num_steps: int
    guidance: float
    sigma_max: float
    fps: int
    width: int
    height: int
    frames: int
    blur_strength: str
    canny_threshold: str
    negative_prompt: str

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__dataclass_fields__))

    def to_payload(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dict(_parameters_payload(self))

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ExecutionParameters:
        """Rebuild from to_payload()'s dict, normalizing numbers (5 == 5.0)."""
        return interned_parameters(*_parameter_values(payload))


@lru_cache(maxsize=1024)
def interned_parameters(
    model: str,
    num_steps: int,
    guidance: float,
    sigma_max: float,
    fps: int,
    width: int,
    height: int,
    frames: int,
    blur_strength: str,
    canny_threshold: str,
    negative_prompt: str,
) -> ExecutionParameters:
    """Execution parameters, numbers normalized; equal ones share one (immutable) instance, so
    the runs of a bulk add or a replay do not each build their own."""
    return ExecutionParameters(
        model=str(model),
        num_steps=int(num_steps),
        guidance=float(guidance),
        sigma_max=float(sigma_max),
        fps=int(fps),
        width=int(width),
        height=int(height),
        frames=int(frames),
        blur_strength=str(blur_strength),
        canny_threshold=str(canny_threshold),
        negative_prompt=str(negative_prompt),
    )


_parameter_values = operator.itemgetter(*ExecutionParameters.__dataclass_fields__)


@lru_cache(maxsize=1024)
def _parameters_payload(parameters: ExecutionParameters) -> dict[str, Any]:
    return {name: getattr(parameters, name) for name in parameters.__dataclass_fields__}


@dataclass(frozen=True)
class Run:
    """One prompt of one job, with its own weights and seed."""

    run_id: str
    job_id: str
    prompt_id: str
    weights: Mapping[str, float]
    seed: int
    parameters: ExecutionParameters

    @cached_property
    def controls(self) -> frozenset[str]:
        """The run's control signature (computed once: the analysis asks for it often)."""
        return control_signature(self.weights)

    def to_payload(self) -> dict[str, Any]:
        """The run as a JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "prompt_id": self.prompt_id,
            "weights": dict(self.weights),
            "seed": self.seed,
            "parameters": self.parameters.to_payload(),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Run:
        """Rebuild from to_payload()'s dict."""
        return cls(
            run_id=str(payload["run_id"]),
            job_id=str(payload["job_id"]),
            prompt_id=str(payload["prompt_id"]),
            weights={str(k): float(v) for k, v in payload["weights"].items()},
            seed=int(payload["seed"]),
            parameters=ExecutionParameters.from_payload(payload["parameters"]),
        )


@dataclass(frozen=True)
class Claim:
    """Who holds a claimed item, with which token, until when."""

    runner_id: str
    token: str
    lease_expires_at: datetime
    claimed_at: datetime

    def to_payload(self) -> dict[str, Any]:
        """The claim as a dict."""
        return {
            "runner_id": self.runner_id,
            "token": self.token,
            "lease_expires_at": self.lease_expires_at,
            "claimed_at": self.claimed_at,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Claim:
        """Rebuild from to_payload()'s dict."""
        return cls(
            runner_id=str(payload["runner_id"]),
            token=str(payload["token"]),
            lease_expires_at=_as_datetime(payload["lease_expires_at"]),
            claimed_at=_as_datetime(payload["claimed_at"]),
        )


@dataclass(frozen=True)
class QueueItem:
    """A job in the queue: an original job or a batch job made by a reorganization."""

    job_id: str
    job_type: str
    runs: tuple[Run, ...]
    priority: int
    position: tuple[int, int]
    submitter: str
    options: Mapping[str, Any] = field(default_factory=dict)
    source_job_ids: tuple[str, ...] = ()
    analysis_id: str | None = None
    status: ItemStatus = "queued"
    claim: Claim | None = None
    attempt: int = 0
    not_before: datetime | None = None

    @property
    def batchable(self) -> bool:
        """Whether smart batching may regroup this item's runs."""
        return self.job_type in BATCHABLE_JOB_TYPES

    @property
    def prompt_ids(self) -> list[str]:
        """The prompt of each run, in run order."""
        return [run.prompt_id for run in self.runs]

    @property
    def weights_list(self) -> list[dict[str, float]]:
        """Each run's own weights, in run order."""
        return [dict(run.weights) for run in self.runs]

    @cached_property
    def controls(self) -> frozenset[str]:
        """The union of the runs' control signatures (computed once)."""
        return frozenset().union(*(run.controls for run in self.runs))

    @cached_property
    def order_key(self) -> tuple[int, int, int]:
        """Queue order: higher priority first, then position (computed once per item)."""
        return (-self.priority, self.position[0], self.position[1])

    def with_changes(self, **changes: Any) -> QueueItem:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_payload(self) -> dict[str, Any]:
        """The item as a JSON-ready dict (used by snapshots)."""
        return {
            "job_id": self.job_id,
            "job_type": self.job_type,
            "runs": [run.to_payload() for run in self.runs],
            "priority": self.priority,
            "position": list(self.position),
            "submitter": self.submitter,
            "options": dict(self.options),
            "source_job_ids": list(self.source_job_ids),
            "analysis_id": self.analysis_id,
            "status": self.status,
            "claim": self.claim.to_payload() if self.claim else None,
            "attempt": self.attempt,
            "not_before": self.not_before,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> QueueItem:
        """Rebuild from to_payload()'s dict."""
        claim = payload.get("claim")
        not_before = payload.get("not_before")
        return cls(
            job_id=str(payload["job_id"]),
            job_type=str(payload["job_type"]),
            runs=tuple(Run.from_payload(run) for run in payload["runs"]),
            priority=int(payload["priority"]),
            position=(int(payload["position"][0]), int(payload["position"][1])),
            submitter=str(payload["submitter"]),
            options=dict(payload.get("options") or {}),
            source_job_ids=tuple(payload.get("source_job_ids") or ()),
            analysis_id=payload.get("analysis_id"),
            status=payload.get("status", "queued"),
            claim=Claim.from_payload(claim) if claim else None,
            attempt=int(payload.get("attempt", 0)),
            not_before=_as_datetime(not_before) if not_before else None,
        )


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
