"""The batch cost model: seconds ≈ a + B·w·(b0 + b1·K).

a is the fixed cost of one invocation (model and control load, process start), B the number of
runs in the batch, K the number of control branches computed (the union in mixed mode), b0 and
b1 the per-sample costs, and w the work factor of the execution parameters (steps x latent
volume, 1.0 at the defaults). Coefficients come from measured history when there is enough of
it, otherwise from the documented defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchlog.domain.jobs import ExecutionParameters

REFERENCE_STEPS = 35
REFERENCE_VOLUME = 64 * 64 * 8
MEMORY_SAFE_RUNS_BY_CONTROL_COUNT = {0: 16, 1: 16, 2: 12, 3: 8, 4: 8}


@dataclass(frozen=True)
class CostCoefficients:
    """Coefficients of the cost model and where they came from."""

    fixed_seconds: float
    per_sample_seconds: float
    per_control_seconds: float
    basis: str

    def to_payload(self) -> dict[str, float | str]:
        """The coefficients as a JSON-ready dict."""
        return {
            "fixed_seconds": self.fixed_seconds,
            "per_sample_seconds": self.per_sample_seconds,
            "per_control_seconds": self.per_control_seconds,
            "basis": self.basis,
        }


DEFAULT_COEFFICIENTS = CostCoefficients(
    fixed_seconds=4.0,
    per_sample_seconds=0.6,
    per_control_seconds=0.3,
    basis=(
        "default coefficients (a=4.0 s per invocation, b0=0.6 s per sample, "
        "b1=0.3 s per sample per control, at 35 steps and 64x64x8)"
    ),
)


def work_factor(parameters: ExecutionParameters) -> float:
    """How much per-sample work these parameters mean, relative to the defaults."""
    volume = parameters.width * parameters.height * parameters.frames
    return (parameters.num_steps / REFERENCE_STEPS) * (volume / REFERENCE_VOLUME)


def batch_seconds(
    coefficients: CostCoefficients,
    batch_size: int,
    controls_computed: int,
    parameters: ExecutionParameters,
) -> float:
    """Estimated seconds of one invocation of batch_size runs computing that many controls."""
    per_sample = (
        coefficients.per_sample_seconds + coefficients.per_control_seconds * controls_computed
    )
    return coefficients.fixed_seconds + batch_size * work_factor(parameters) * per_sample


def memory_safe_batch_size(control_count: int) -> int:
    """The most runs per batch that is safe for this many computed controls."""
    return MEMORY_SAFE_RUNS_BY_CONTROL_COUNT[min(max(control_count, 0), 4)]
