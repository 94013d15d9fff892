"""The inference backend protocol: what the runner hands a backend and what it gets back.

The runner knows only this protocol; concrete backends (torch, cosmos-transfer) live in
`batchlog.adapters.inference` and are chosen by the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from batchlog.domain.jobs import ExecutionParameters


@dataclass(frozen=True)
class RunInput:
    """One run of a batch, with everything a backend needs to execute it."""

    run_id: str
    job_id: str
    prompt_id: str
    prompt_text: str
    input_video: str
    control_inputs: Mapping[str, str]
    weights: Mapping[str, float]
    seed: int


@dataclass(frozen=True)
class BatchInput:
    """A claimed queue item as one invocation: shared parameters, the controls computed, its runs.

    `controls` is the union of the runs' control signatures in canonical order; a run that did
    not ask for a control has weight 0 for it (mixed mode), which must change nothing.
    """

    item_id: str
    job_type: str
    parameters: ExecutionParameters
    controls: tuple[str, ...]
    runs: tuple[RunInput, ...]
    artifacts_dir: Path
    attempt: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run: its output file and checksum, or its error."""

    run_id: str
    ok: bool
    seconds: float
    output_path: str | None = None
    sha256: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to a batch: each run's outcome and the measured batch time."""

    runs: tuple[RunOutcome, ...]
    seconds: float
    device: str
    peak_memory_bytes: int | None = None


class BackendOutOfMemoryError(RuntimeError):
    """The batch did not fit in device memory; the runner splits it and retries."""


class BackendError(RuntimeError):
    """The backend failed the whole batch; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class BatchTimeLimitError(BackendError):
    """The batch ran past the runner's --max-batch-seconds and was abandoned (raised by the
    runner, not the backend); retried like any retryable failure."""

    def __init__(self, limit_seconds: float) -> None:
        super().__init__(
            f"batch ran past the {limit_seconds:g} s limit (--max-batch-seconds) and was "
            "abandoned; the runner claims nothing more until the backend call returns",
            retryable=True,
        )
        self.limit_seconds = limit_seconds


@runtime_checkable
class InferenceBackend(Protocol):
    """Executes batches; loaded once per runner process and kept warm across batches."""

    name: str

    def supports(self, job_type: str) -> bool:
        """Whether this backend can run items of this job type."""
        ...

    def load(self) -> None:
        """Load models (once per process)."""
        ...

    def run_batch(self, batch: BatchInput) -> BatchOutcome:
        """Execute one batch; raise BackendOutOfMemoryError or BackendError on failure."""
        ...

    def close(self) -> None:
        """Release models and devices."""
        ...
