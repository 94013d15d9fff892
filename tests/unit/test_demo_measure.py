"""The demo's comparison: medians of interleaved rounds, a batch's baseline is its own runs."""

from __future__ import annotations

from batchlog.adapters.demo.measure import compare, solo_estimates
from batchlog.domain.config import default_parameters
from batchlog.domain.cost_model import DEFAULT_COEFFICIENTS, batch_seconds
from batchlog.domain.jobs import Run

PARAMS = default_parameters()
RUNS = {
    "b1": (
        Run("j1:0", "j1", "p1", {"vis": 1.0}, 1, PARAMS),
        Run("j2:0", "j2", "p2", {"vis": 0.5, "edge": 0.5}, 2, PARAMS),
    ),
    "b2": (Run("j3:0", "j3", "p3", {"depth": 1.0}, 3, PARAMS),),
}
PLANNED = [
    {"controls": ["vis", "edge"], "parameters": {"num_steps": 35}, "estimated_seconds": 5.0},
    {"controls": ["depth"], "parameters": {"num_steps": 35}, "estimated_seconds": 4.0},
]


def test_measured_figures_are_medians_of_rounds_and_solo_sums_of_the_batchs_runs() -> None:
    batched = [{"b1": 1.0, "b2": 9.0}, {"b1": 3.0, "b2": 1.0}, {"b1": 2.0, "b2": 2.0}]
    solo = [
        {"j1:0": 1.0, "j2:0": 1.0, "j3:0": 4.0},
        {"j1:0": 2.0, "j2:0": 2.0, "j3:0": 5.0},
        {"j1:0": 9.0, "j2:0": 9.0, "j3:0": 6.0},
    ]
    result = compare(PLANNED, ["b1", "b2"], RUNS, batched, solo, DEFAULT_COEFFICIENTS)
    first, second = result.batches
    assert (first.measured_seconds, first.measured_unbatched_seconds) == (2.0, 4.0)
    assert (second.measured_seconds, second.measured_unbatched_seconds) == (2.0, 5.0)
    assert first.measured_rounds == (1.0, 3.0, 2.0)
    assert first.measured_speedup == 2.0 and result.rounds == 3
    assert result.measured_speedup == (4.0 + 5.0) / (2.0 + 2.0)


def test_estimated_one_at_a_time_is_the_planners_estimate_of_each_run_alone() -> None:
    runs = [run for batch in RUNS.values() for run in batch]
    solo = solo_estimates(runs, DEFAULT_COEFFICIENTS)
    assert list(solo) == [run.run_id for run in runs]
    # The first invocation pays no control-set change: exactly one run with its own controls.
    assert solo["j1:0"] == batch_seconds(DEFAULT_COEFFICIENTS, 1, 1, PARAMS)
    # Later ones compute their own control count, plus a change cost where the model has one.
    assert solo["j2:0"] >= batch_seconds(DEFAULT_COEFFICIENTS, 1, 2, PARAMS)
    assert solo["j3:0"] >= batch_seconds(DEFAULT_COEFFICIENTS, 1, 1, PARAMS)
    ones = [{"j1:0": 1.0, "j2:0": 1.0, "j3:0": 1.0}]
    result = compare(
        PLANNED, ["b1", "b2"], RUNS, [{"b1": 1.0, "b2": 1.0}], ones, DEFAULT_COEFFICIENTS
    )
    assert result.batches[0].estimated_unbatched_seconds == solo["j1:0"] + solo["j2:0"]
    assert result.batches[0].estimated_seconds == 5.0


def test_printed_database_urls_hide_the_password() -> None:
    from batchlog.adapters.demo.pipeline import redacted

    assert redacted("postgresql://ana:s3cret@db:5432/q") == "postgresql://ana:***@db:5432/q"
    assert redacted("sqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.sqlite3"
