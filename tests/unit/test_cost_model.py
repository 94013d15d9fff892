"""The cost model: least-squares calibration, defaults, basis, and what the analysis claims."""

from __future__ import annotations

import random

import pytest

from batchlog.domain.batching import plan_smart_batches, render_preview
from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.cost_model import (
    DEFAULT_COEFFICIENTS_BY_BACKEND,
    BatchObservation,
    CostCoefficients,
    batch_seconds,
    fit_bucket,
    fit_coefficients,
    predict_observation,
    work_factor,
)
from batchlog.domain.jobs import QueueItem
from batchlog.domain.queue import Queue

A, B0, B1, S = 1.5, 0.8, 0.25, 0.6
TORCH = DEFAULT_COEFFICIENTS_BY_BACKEND["torch"]


def observe(
    batch_size: int, controls: int, changed: bool = False, **kw: object
) -> BatchObservation:
    seconds = A + batch_size * (B0 + B1 * controls) + (S if changed else 0.0)
    fields = {
        "backend": "torch",
        "device": "cpu",
        "num_steps": 35,
        "width": 64,
        "height": 64,
        "frames": 8,
    }
    fields.update(kw)
    return BatchObservation(
        batch_size=batch_size,
        controls_computed=controls,
        seconds=seconds,
        control_set_changed=changed,
        **fields,  # type: ignore[arg-type]
    )


def varied_history() -> list[BatchObservation]:
    return [
        observe(b, k, changed)
        for b, k, changed in [
            (1, 1, False),
            (2, 2, True),
            (4, 1, False),
            (8, 3, True),
            (4, 4, False),
            (1, 2, True),
        ]
    ]


def test_fit_recovers_known_coefficients_from_exact_observations() -> None:
    fitted = fit_bucket(varied_history(), TORCH)
    assert fitted is not None
    assert fitted.fixed_seconds == pytest.approx(A, rel=1e-6)
    assert fitted.per_sample_seconds == pytest.approx(B0, rel=1e-6)
    assert fitted.per_control_seconds == pytest.approx(B1, rel=1e-6)
    assert fitted.switch_seconds == pytest.approx(S, rel=1e-6)
    assert fitted.median_relative_error == pytest.approx(0.0, abs=1e-9)
    assert set(fitted.fitted_terms) == {"fixed", "per_sample", "per_control", "switch"}


def test_fit_recovers_coefficients_within_noise() -> None:
    rng = random.Random(7)
    history = []
    for _ in range(60):
        o = observe(rng.choice([1, 2, 4, 8]), rng.randint(1, 4), rng.random() < 0.5)
        history.append(
            BatchObservation(**{**o.__dict__, "seconds": o.seconds * rng.uniform(0.97, 1.03)})
        )
    fitted = fit_bucket(history, TORCH)
    assert fitted is not None
    assert fitted.fixed_seconds == pytest.approx(A, rel=0.15)
    assert fitted.per_sample_seconds == pytest.approx(B0, rel=0.15)
    assert fitted.per_control_seconds == pytest.approx(B1, rel=0.2)
    assert fitted.median_relative_error < 0.03


def test_fewer_than_five_observations_keep_the_defaults() -> None:
    assert fit_bucket(varied_history()[:4], TORCH) is None
    model = fit_coefficients(varied_history()[:4])
    assert model.fitted == ()
    assert model.basis.startswith("default coefficients for torch")


def test_a_single_batch_size_keeps_the_defaults() -> None:
    same_size = [observe(4, k) for k in (1, 2, 3, 4, 1, 2)]
    assert fit_bucket(same_size, TORCH) is None


def test_constant_control_count_fits_total_per_sample_cost() -> None:
    history = [observe(b, 2) for b in (1, 2, 4, 8, 2, 4)]
    fitted = fit_bucket(history, TORCH)
    assert fitted is not None
    assert fitted.fixed_seconds == pytest.approx(A, rel=1e-6)
    assert fitted.per_sample_seconds + 2 * fitted.per_control_seconds == pytest.approx(B0 + 2 * B1)
    assert "per_control" not in fitted.fitted_terms
    assert fitted.switch_seconds == TORCH.switch_seconds


def test_negative_coefficients_are_fixed_at_zero() -> None:
    history = [
        BatchObservation("torch", "cpu", 35, 64, 64, 8, b, 1, 0.5 * b) for b in (1, 2, 4, 8, 3)
    ]
    fitted = fit_bucket(history, TORCH)
    assert fitted is not None
    assert fitted.fixed_seconds >= 0
    assert fitted.per_sample_seconds + fitted.per_control_seconds == pytest.approx(0.5, rel=1e-6)


def test_fit_is_per_backend_and_bucket() -> None:
    history = varied_history() + [
        observe(b, 1, backend="cosmos-transfer", device="cuda") for b in (1, 2)
    ]
    history += [observe(b, 1, num_steps=10) for b in (1, 2, 4, 8, 16)]
    model = fit_coefficients(history, backend="torch")
    assert model.source == "torch/cpu"
    assert {f.bucket for f in model.fitted} == {(35, 64, 64, 8), (10, 64, 64, 8)}
    other = fit_coefficients(history, backend="cosmos-transfer")
    assert other.fitted == ()
    assert other.basis.startswith("default coefficients for cosmos-transfer")


def test_unfitted_bucket_uses_scaled_defaults_and_basis_says_so() -> None:
    model = fit_coefficients(varied_history())
    fitted_params = params(num_steps=35)
    other_params = params(num_steps=70)
    assert model.basis_for([fitted_params]) == "fitted from 6 batches on torch/cpu, median error 0%"
    assert "default coefficients for 1 other" in model.basis_for([fitted_params, other_params])
    expected = TORCH.fixed_seconds + 2 * work_factor(other_params) * (
        TORCH.per_sample_seconds + TORCH.per_control_seconds
    )
    assert batch_seconds(model, 2, 1, other_params) == pytest.approx(expected)
    assert batch_seconds(model, 2, 1, fitted_params) == pytest.approx(A + 2 * (B0 + B1))


def test_prediction_of_held_out_batches_uses_the_fit() -> None:
    model = fit_coefficients(varied_history())
    held_out = observe(16, 2, True)
    assert predict_observation(model, held_out) == pytest.approx(held_out.seconds)


# ---- what the analysis claims ------------------------------------------------------------


def params(num_steps: int = 35):  # type: ignore[no-untyped-def]
    job = validate_job(
        "jp", ["p"], "inference", {"weights": {"vis": 1.0}, "num_steps": num_steps}, 50, FACTS
    )
    return job.runs[0].parameters


FACTS = {
    f"p{i}" if i else "p": PromptFacts(f"p{i}" if i else "p", "", {"depth": "d", "seg": "s"})
    for i in range(40)
}


def queue_of(signatures: list[dict[str, float]], prompts_per_job: int = 1) -> list[QueueItem]:
    queue = Queue(name="t")
    for index, weights in enumerate(signatures):
        prompts = [f"p{(index * prompts_per_job + k) % 39 + 1}" for k in range(prompts_per_job)]
        queue.add_job(
            f"j{index}",
            validate_job(f"j{index}", prompts, "inference", {"weights": weights}, 50, FACTS),
            "me",
        )
    return queue.queued_in_order()


def coefficients(a: float, b0: float, b1: float, s: float) -> CostCoefficients:
    return CostCoefficients(a, b0, b1, "test", switch_seconds=s)


def test_speedup_is_exactly_what_the_model_predicts() -> None:
    jobs = queue_of([{"vis": 0.5}, {"vis": 0.2, "edge": 0.3}] * 4)
    plan = plan_smart_batches(jobs, "strict", 4, coefficients(2.0, 0.5, 0.2, 1.0))
    assert plan is not None
    eff = plan.efficiency
    assert eff["speedup"] == pytest.approx(
        eff["estimated_seconds_unbatched"] / eff["estimated_seconds_batched"]
    )
    assert sum(plan.batch_seconds) == pytest.approx(eff["estimated_seconds_batched"])


def test_preview_says_batching_does_not_help_when_jobs_are_already_full_batches() -> None:
    jobs = queue_of([{"vis": 0.5}, {"edge": 0.5}], prompts_per_job=4)
    plan = plan_smart_batches(jobs, "strict", 4, coefficients(2.0, 0.5, 0.2, 1.0))
    assert plan is not None
    assert plan.efficiency["speedup"] == pytest.approx(1.0)
    preview = render_preview("strict", 4, plan.batches_payload(), plan.efficiency)
    assert "- Estimated speedup: 1.0x — batching does not help at this size" in preview


def test_when_per_sample_cost_dominates_there_is_no_speedup_to_claim() -> None:
    jobs = queue_of([{"vis": 0.5}] * 8)
    plan = plan_smart_batches(jobs, "strict", 4, coefficients(0.0, 1.0, 0.1, 0.0))
    assert plan is not None
    assert plan.efficiency["speedup"] == pytest.approx(1.0)
    assert "batching does not help" in render_preview(
        "strict", 4, plan.batches_payload(), plan.efficiency
    )


def test_switch_cost_makes_mixed_mode_win_and_control_cost_makes_strict_win() -> None:
    jobs = queue_of([{"vis": 0.5}, {"edge": 0.5}] * 4)
    expensive_switch = coefficients(0.5, 0.2, 0.05, 5.0)
    expensive_controls = coefficients(0.5, 0.2, 2.0, 0.0)

    def seconds(mode: str, c: CostCoefficients) -> float:
        plan = plan_smart_batches(jobs, mode, 8, c)  # type: ignore[arg-type]
        assert plan is not None
        return float(plan.efficiency["estimated_seconds_batched"])

    assert seconds("mixed", expensive_switch) < seconds("strict", expensive_switch)
    assert seconds("strict", expensive_controls) < seconds("mixed", expensive_controls)


def test_analysis_with_fitted_history_names_it_in_basis() -> None:
    jobs = queue_of([{"vis": 0.5}] * 6)
    plan = plan_smart_batches(jobs, "strict", 4, fit_coefficients(varied_history()))
    assert plan is not None
    assert plan.efficiency["basis"] == "fitted from 6 batches on torch/cpu, median error 0%"


def test_a_switch_that_seems_to_save_time_is_fixed_at_zero() -> None:
    history = [
        BatchObservation(
            "torch", "cpu", 35, 64, 64, 8, b, 1, 1.0 + 0.5 * b - (0.1 if c else 0.0), c
        )
        for b, c in [(1, True), (2, False), (4, True), (8, False), (2, True), (4, False)]
    ]
    fitted = fit_bucket(history, TORCH)
    assert fitted is not None
    assert fitted.switch_seconds == 0.0
    assert fitted.fixed_seconds > 0
