"""The batch cost model: seconds ≈ a + B·w·(b0 + b1·K) + s·[control set changed].

a is the fixed cost of one invocation (python and framework overhead, process start for
external backends), B the number of runs in the batch, K the number of control branches
computed (the union in mixed mode), b0 and b1 the per-sample costs, w the work factor of the
execution parameters (steps x latent volume, 1.0 at the reference parameters) and s the cost
of changing the control set of the loaded model (loading other control branches). s is what
makes strict against mixed mode a real trade-off: strict computes fewer branches per sample
but makes more, smaller batches and changes control sets more often.

Coefficients are fitted by (relative) least squares from measured batches, per backend/device
and execution-parameter bucket (steps, resolution, frames), once a bucket has at least
MIN_OBSERVATIONS batches with at least MIN_BATCH_SIZES distinct batch sizes. A fitted bucket is
used at w = 1 (it was measured at exactly those parameters); every other bucket uses the
documented defaults for the backend, scaled by w. Pure: no I/O, no numpy.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from batchlog.domain.jobs import ExecutionParameters

REFERENCE_STEPS = 35
REFERENCE_VOLUME = 64 * 64 * 8
MEMORY_SAFE_RUNS_BY_CONTROL_COUNT = {0: 16, 1: 16, 2: 12, 3: 8, 4: 8}
MIN_OBSERVATIONS = 5
MIN_BATCH_SIZES = 2

Bucket = tuple[int, int, int, int]
"""(num_steps, width, height, frames): parameters that change the cost of a sample."""


def bucket_of(parameters: ExecutionParameters) -> Bucket:
    """The cost bucket of a set of execution parameters."""
    return (parameters.num_steps, parameters.width, parameters.height, parameters.frames)


@dataclass(frozen=True)
class FittedBucket:
    """Coefficients fitted for one bucket, with how many batches they rest on and how well they fit."""

    bucket: Bucket
    fixed_seconds: float
    per_sample_seconds: float
    per_control_seconds: float
    switch_seconds: float
    observations: int
    median_relative_error: float
    fitted_terms: tuple[str, ...]


@dataclass(frozen=True)
class CostCoefficients:
    """Coefficients of the cost model and where they came from.

    The top-level numbers are the defaults (scaled by the work factor); `fitted` holds the
    buckets with enough measured history, which take precedence for their exact parameters.
    """

    fixed_seconds: float
    per_sample_seconds: float
    per_control_seconds: float
    basis: str
    switch_seconds: float = 2.0
    fitted: tuple[FittedBucket, ...] = ()
    source: str = ""
    fitted_by_bucket: Mapping[Bucket, FittedBucket] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "fitted_by_bucket", {f.bucket: f for f in self.fitted})

    def terms_for(self, parameters: ExecutionParameters) -> tuple[float, float, float, float]:
        """(a, per-sample, per-sample-per-control, switch) seconds for batches with these parameters."""
        fitted = self.fitted_by_bucket.get(bucket_of(parameters))
        if fitted is not None:
            return (
                fitted.fixed_seconds,
                fitted.per_sample_seconds,
                fitted.per_control_seconds,
                fitted.switch_seconds,
            )
        w = work_factor(parameters)
        return (
            self.fixed_seconds,
            w * self.per_sample_seconds,
            w * self.per_control_seconds,
            self.switch_seconds,
        )

    def basis_for(self, parameters: Iterable[ExecutionParameters]) -> str:
        """Which coefficients an estimate over batches with these parameters rests on."""
        buckets = {bucket_of(p) for p in parameters}
        used = [self.fitted_by_bucket[b] for b in sorted(buckets) if b in self.fitted_by_bucket]
        if not used:
            return self.basis
        batches = sum(f.observations for f in used)
        error = max(f.median_relative_error for f in used)
        text = f"fitted from {batches} batches on {self.source}, median error {error:.0%}"
        if len(used) < len(buckets):
            text += f"; default coefficients for {len(buckets) - len(used)} other parameter set(s)"
        return text

    def to_payload(self) -> dict[str, object]:
        """The coefficients as a JSON-ready dict."""
        return {
            "fixed_seconds": self.fixed_seconds,
            "per_sample_seconds": self.per_sample_seconds,
            "per_control_seconds": self.per_control_seconds,
            "switch_seconds": self.switch_seconds,
            "basis": self.basis,
            "source": self.source,
            "fitted": [
                {
                    "bucket": list(f.bucket),
                    "fixed_seconds": f.fixed_seconds,
                    "per_sample_seconds": f.per_sample_seconds,
                    "per_control_seconds": f.per_control_seconds,
                    "switch_seconds": f.switch_seconds,
                    "observations": f.observations,
                    "median_relative_error": f.median_relative_error,
                    "fitted_terms": list(f.fitted_terms),
                }
                for f in self.fitted
            ],
        }


def _defaults(name: str, a: float, b0: float, b1: float, s: float) -> CostCoefficients:
    return CostCoefficients(
        fixed_seconds=a,
        per_sample_seconds=b0,
        per_control_seconds=b1,
        switch_seconds=s,
        basis=(
            f"default coefficients for {name} (a={a:g} s per invocation, b0={b0:g} s per "
            f"sample, b1={b1:g} s per sample per control, s={s:g} s per control-set change, "
            "at 35 steps and 64x64x8)"
        ),
        source=name,
    )


DEFAULT_COEFFICIENTS = _defaults("any backend", 4.0, 0.6, 0.3, 2.0)
# torch: measured once for the reference model on a shared 2-core CPU, 1 thread, at the
# reference parameters; its runner keeps every control branch loaded, so a change costs nothing.
# cosmos-transfer: rough guesses; every invocation is a new process that loads its controls
# anyway, so that cost is in a. Measured history replaces both (see fit_coefficients).
DEFAULT_COEFFICIENTS_BY_BACKEND: dict[str, CostCoefficients] = {
    "torch": _defaults("torch", 0.2, 0.17, 0.12, 0.0),
    "cosmos-transfer": _defaults("cosmos-transfer", 60.0, 20.0, 8.0, 0.0),
}


def default_coefficients(backend: str | None) -> CostCoefficients:
    """The documented defaults for a backend (the generic ones for an unknown backend)."""
    return DEFAULT_COEFFICIENTS_BY_BACKEND.get(backend or "", DEFAULT_COEFFICIENTS)


def work_factor(parameters: ExecutionParameters) -> float:
    """How much per-sample work these parameters mean, relative to the defaults."""
    volume = parameters.width * parameters.height * parameters.frames
    return (parameters.num_steps / REFERENCE_STEPS) * (volume / REFERENCE_VOLUME)


def batch_seconds(
    coefficients: CostCoefficients,
    batch_size: int,
    controls_computed: int,
    parameters: ExecutionParameters,
    *,
    control_set_changed: bool = False,
) -> float:
    """Estimated seconds of one invocation of batch_size runs computing that many controls."""
    return seconds_from_terms(
        coefficients.terms_for(parameters), batch_size, controls_computed, control_set_changed
    )


def seconds_from_terms(
    terms: tuple[float, float, float, float],
    batch_size: int,
    controls_computed: int,
    control_set_changed: bool,
) -> float:
    """The model itself, for (a, b0, b1, s) already resolved for a parameter set."""
    a, b0, b1, s = terms
    return a + batch_size * (b0 + b1 * controls_computed) + (s if control_set_changed else 0.0)


def memory_safe_batch_size(control_count: int) -> int:
    """The most runs per batch that is safe for this many computed controls."""
    return MEMORY_SAFE_RUNS_BY_CONTROL_COUNT[min(max(control_count, 0), 4)]


# ---- fitting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchObservation:
    """One measured batch: where it ran, with which parameters, how big, and how long it took."""

    backend: str
    device: str
    num_steps: int
    width: int
    height: int
    frames: int
    batch_size: int
    controls_computed: int
    seconds: float
    control_set_changed: bool = False

    @property
    def bucket(self) -> Bucket:
        """The cost bucket it was measured in."""
        return (self.num_steps, self.width, self.height, self.frames)

    @property
    def target(self) -> str:
        """backend/device, e.g. torch/cpu."""
        return f"{self.backend}/{self.device}"


def fit_bucket(
    observations: Sequence[BatchObservation], defaults: CostCoefficients
) -> FittedBucket | None:
    """Least-squares coefficients for one bucket, or None without enough varied history.

    Minimises relative error (weights 1/seconds²). Terms the history cannot identify are taken
    from the defaults: the per-control share when K never varies, the switch cost when every
    batch changed (or none changed) the control set. A negative coefficient is fixed at zero
    and the rest refitted.
    """
    usable = [o for o in observations if o.seconds > 0 and o.batch_size > 0]
    if len(usable) < MIN_OBSERVATIONS or len({o.batch_size for o in usable}) < MIN_BATCH_SIZES:
        return None
    bucket = usable[0].bucket
    probe = _probe_parameters(bucket)
    _, d_b0, d_b1, d_s = defaults.terms_for(probe)
    ks = {o.controls_computed for o in usable}
    switches = {o.control_set_changed for o in usable}
    terms = ["fixed", "per_sample"]
    if len(ks) > 1:
        terms.append("per_control")
    if len(switches) > 1:
        terms.append("switch")
    k0 = next(iter(ks))
    # With K constant, b0 + b1·k0 is fitted as one per-sample cost and split by the defaults' ratio.
    share = d_b1 / (d_b0 + d_b1 * k0) if len(ks) == 1 and (d_b0 + d_b1 * k0) > 0 else 0.0

    def row(o: BatchObservation) -> dict[str, float]:
        return {
            "fixed": 1.0,
            "per_sample": float(o.batch_size),
            "per_control": float(o.batch_size * o.controls_computed),
            "switch": 1.0 if o.control_set_changed else 0.0,
        }

    rows = [row(o) for o in usable]
    ys = [o.seconds for o in usable]
    # A switch that happened in every batch is part of the fixed cost we measured.
    offset = d_s if switches == {True} else 0.0
    coefficients = _nonnegative_least_squares(rows, [y - offset for y in ys], terms)
    a = coefficients.get("fixed", 0.0)
    per_sample = coefficients.get("per_sample", 0.0)
    if "per_control" in terms:
        b0, b1 = per_sample, coefficients.get("per_control", 0.0)
    else:
        b1 = per_sample * share
        b0 = per_sample - b1 * k0
    s = coefficients.get("switch", 0.0) if "switch" in terms else d_s
    fitted = FittedBucket(bucket, a, b0, b1, s, len(usable), 0.0, tuple(terms))
    errors = [abs(_predict(fitted, o) - o.seconds) / o.seconds for o in usable]
    return replace(fitted, median_relative_error=statistics.median(errors))


def fit_coefficients(
    observations: Iterable[BatchObservation],
    backend: str | None = None,
    device: str | None = None,
    *,
    default_backend: str = "torch",
) -> CostCoefficients:
    """The cost model for one backend/device: fitted buckets where history allows, else defaults.

    Without backend/device, the target with the most observations is used; with no history at
    all, the defaults of `backend` (or of `default_backend`, the runner's default).
    """
    by_target: dict[tuple[str, str], list[BatchObservation]] = defaultdict(list)
    for o in observations:
        by_target[(o.backend, o.device)].append(o)
    candidates = [
        key
        for key in by_target
        if (backend is None or key[0] == backend) and (device is None or key[1] == device)
    ]
    if not candidates:
        return default_coefficients(backend or default_backend)
    target = max(candidates, key=lambda key: len(by_target[key]))
    defaults = default_coefficients(target[0])
    by_bucket: dict[Bucket, list[BatchObservation]] = defaultdict(list)
    for o in by_target[target]:
        by_bucket[o.bucket].append(o)
    fitted = tuple(
        f
        for f in (fit_bucket(obs, defaults) for _, obs in sorted(by_bucket.items()))
        if f is not None
    )
    if not fitted:
        return defaults
    return replace(defaults, fitted=fitted, source=f"{target[0]}/{target[1]}")


def predict_observation(coefficients: CostCoefficients, observation: BatchObservation) -> float:
    """What the model predicts for a measured batch (to judge it against the measurement)."""
    return batch_seconds(
        coefficients,
        observation.batch_size,
        observation.controls_computed,
        _probe_parameters(observation.bucket),
        control_set_changed=observation.control_set_changed,
    )


def _predict(fitted: FittedBucket, o: BatchObservation) -> float:
    terms = (
        fitted.fixed_seconds,
        fitted.per_sample_seconds,
        fitted.per_control_seconds,
        fitted.switch_seconds,
    )
    return seconds_from_terms(terms, o.batch_size, o.controls_computed, o.control_set_changed)


def _probe_parameters(bucket: Bucket) -> ExecutionParameters:
    steps, width, height, frames = bucket
    return ExecutionParameters(
        model="",
        num_steps=steps,
        guidance=0.0,
        sigma_max=0.0,
        fps=0,
        width=width,
        height=height,
        frames=frames,
        blur_strength="",
        canny_threshold="",
        negative_prompt="",
    )


def _nonnegative_least_squares(
    rows: Sequence[Mapping[str, float]], ys: Sequence[float], terms: Sequence[str]
) -> dict[str, float]:
    active = list(terms)
    while active:
        solution = _weighted_least_squares(rows, ys, active)
        negative = [t for t in active if solution[t] < 0]
        if not negative:
            return solution
        active.remove(min(negative, key=lambda t: solution[t]))
    return {}


def _weighted_least_squares(
    rows: Sequence[Mapping[str, float]], ys: Sequence[float], terms: Sequence[str]
) -> dict[str, float]:
    n = len(terms)
    normal = [[0.0] * n for _ in range(n)]
    rhs = [0.0] * n
    for row, y in zip(rows, ys, strict=True):
        weight = 1.0 / (y * y) if y > 0 else 1.0
        xs = [row[t] for t in terms]
        for i in range(n):
            rhs[i] += weight * xs[i] * y
            for j in range(n):
                normal[i][j] += weight * xs[i] * xs[j]
    return dict(zip(terms, _solve(normal, rhs), strict=True))


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting; a singular column gets 0."""
    n = len(rhs)
    m = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    scale = max((abs(v) for row in matrix for v in row), default=1.0) or 1.0
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) <= 1e-12 * scale:
            for r in range(n):
                m[r][col] = 0.0
            m[col] = [0.0] * (n + 1)
            m[col][col] = 1.0
            continue
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[r][col] != 0.0:
                factor = m[r][col] / m[col][col]
                for c in range(col, n + 1):
                    m[r][c] -= factor * m[col][c]
    return [m[i][n] / m[i][i] for i in range(n)]
