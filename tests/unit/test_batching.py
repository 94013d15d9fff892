"""Smart batching semantics, on pure domain objects."""

from __future__ import annotations

from batchlog.domain.batching import (
    calculate_batch_efficiency,
    filter_batchable_jobs,
    group_runs_mixed,
    group_runs_strict,
    plan_smart_batches,
    render_preview,
)
from batchlog.domain.cost_model import DEFAULT_COEFFICIENTS, CostCoefficients
from batchlog.domain.jobs import QueueItem, Run
from tests.unit.builders import job

VED = {"vis": 0.5, "edge": 0.3, "depth": 0.2}


def guide_queue() -> list[QueueItem]:
    """The guide's example: 8 runs from 5 jobs → 3 batches in strict mode at batch size 4."""
    return [
        job(2, VED),
        job(2, {"vis": 0.3, "edge": 0.5, "depth": 0.2}),
        job(2, {"vis": 0.5, "depth": 0.5}),
        job(1, {"vis": 0.7, "depth": 0.3, "edge": 0.0}),
        job(1, {"edge": 0.4, "seg": 0.6}),
    ]


def signatures(batches) -> list[list[str]]:
    return [sorted(b.controls) for b in batches]


def test_guide_example_gives_8_runs_from_5_jobs_in_3_strict_batches():
    jobs = guide_queue()
    batches = group_runs_strict(jobs, 4)
    assert [b.size for b in batches] == [4, 3, 1]
    assert [len(b.source_job_ids) for b in batches] == [2, 2, 1]
    efficiency = calculate_batch_efficiency(batches, jobs, "strict", max_batch_size=4)
    assert efficiency["total_runs"] == 8
    assert efficiency["original_jobs"] == 5
    assert efficiency["total_batches"] == 3


def test_preview_has_the_guide_format():
    plan = plan_smart_batches(guide_queue(), "strict", 4)
    assert plan is not None
    preview = render_preview("strict", 4, plan.batches_payload(), plan.efficiency)
    lines = preview.splitlines()
    assert lines[0] == "⚡ Smart Batching Analysis (Strict Mode):"
    assert lines[1] == "- 8 runs from 5 jobs → 3 batches"
    assert lines[2].startswith("- Estimated speedup: ") and "x" in lines[2]
    assert lines[3] == "- Mode: Strict (identical controls only, faster execution)"
    assert lines[4] == "- Batch size: 4 runs/batch"
    assert "Batch breakdown:" in lines
    assert "  Batch 1: 4 runs from 2 jobs (vis, edge, depth)" in lines
    assert "  Batch 2: 3 runs from 2 jobs (vis, depth)" in lines
    assert "  Batch 3: 1 run from 1 job (edge, seg)" in lines


def test_zero_weight_is_not_a_control():
    jobs = [job(1, {"vis": 0.5, "depth": 0.5}), job(1, {"vis": 0.7, "depth": 0.3, "edge": 0.0})]
    batches = group_runs_strict(jobs, 4)
    assert len(batches) == 1
    assert batches[0].controls == frozenset({"vis", "depth"})


def test_different_seeds_batch_together_in_strict_mode():
    jobs = [job(1, VED, seed=1), job(1, VED, seed=2), job(1, VED, seed=99)]
    batches = group_runs_strict(jobs, 4)
    assert len(batches) == 1
    assert sorted(run.seed for run in batches[0].runs) == [1, 2, 99]


def test_different_execution_parameters_never_share_a_batch():
    jobs = [job(1, VED, num_steps=35), job(1, VED, num_steps=20), job(1, VED, guidance=7)]
    for grouping in (group_runs_strict, group_runs_mixed):
        assert len(grouping(jobs, 8)) == 3


def test_integer_and_float_parameters_are_the_same_value():
    jobs = [job(1, VED, guidance=5), job(1, VED, guidance=5.0), job(1, VED, guidance_scale=5)]
    assert len(group_runs_strict(jobs, 8)) == 1


def test_batches_keep_queue_order_and_take_earliest_position_and_best_priority():
    first = job(1, {"edge": 1.0}, priority=10)
    second = job(1, VED, priority=50)
    third = job(1, {"edge": 1.0}, priority=90)
    batches = group_runs_strict([first, second, third], 4)
    # queue order is priority first: third(90), second(50), first(10)
    edge_batch = next(b for b in batches if b.controls == frozenset({"edge"}))
    assert edge_batch.priority == 90
    assert edge_batch.position == third.position
    assert batches[0] is edge_batch


def test_non_batchable_jobs_are_filtered_out():
    upscale = job(1, job_type="upscale")
    enhancement = job(1, job_type="enhancement")
    inference = job(1, VED)
    assert filter_batchable_jobs([upscale, enhancement, inference]) == [inference]
    batches = group_runs_strict([upscale, enhancement, inference], 4)
    assert [b.source_job_ids for b in batches] == [(inference.job_id,)]


def test_nothing_batchable_gives_no_plan():
    assert plan_smart_batches([job(1, job_type="upscale")], "strict", 4) is None
    assert plan_smart_batches([], "mixed", 4) is None


def test_a_jobs_runs_stay_together_when_the_batch_size_allows():
    jobs = [job(3, VED), job(3, VED), job(2, VED)]
    batches = group_runs_strict(jobs, 4)
    placement: dict[str, set[int]] = {}
    for index, batch in enumerate(batches):
        for run in batch.runs:
            placement.setdefault(run.job_id, set()).add(index)
    assert all(len(where) == 1 for where in placement.values())
    assert sum(b.size for b in batches) == 8


def test_a_job_larger_than_the_batch_size_is_split():
    batches = group_runs_strict([job(10, VED)], 4)
    assert [b.size for b in batches] == [4, 4, 2]


def test_batch_size_is_capped_by_the_memory_safe_size_for_four_controls():
    full = {"vis": 0.2, "edge": 0.2, "depth": 0.3, "seg": 0.3}
    batches = group_runs_strict([job(20, full)], 64)
    assert max(b.size for b in batches) == 8


def test_mixed_mode_packs_the_most_overlapping_control_sets_together():
    jobs = [
        job(1, {"vis": 0.5, "edge": 0.5}),
        job(1, {"depth": 0.5, "seg": 0.5}),
        job(1, {"vis": 0.4, "edge": 0.6}),
        job(1, {"depth": 0.1, "seg": 0.9}),
    ]
    batches = group_runs_mixed(jobs, 2)
    assert signatures(batches) == [["edge", "vis"], ["depth", "seg"]]


def test_mixed_mode_computes_the_union_of_controls():
    jobs = [job(1, {"vis": 0.5}), job(1, {"edge": 0.5})]
    (batch,) = group_runs_mixed(jobs, 4)
    assert batch.controls == frozenset({"vis", "edge"})
    assert [dict(run.weights) for run in batch.runs] == [{"vis": 0.5}, {"edge": 0.5}]


def _as_batch_item(batch, job_id: str) -> QueueItem:
    return QueueItem(
        job_id=job_id,
        job_type="batch_inference",
        runs=batch.runs,
        priority=batch.priority,
        position=(batch.position[0], 1),
        submitter="tester",
        source_job_ids=batch.source_job_ids,
    )


def test_reanalysis_of_a_reorganized_queue_is_idempotent_and_keeps_weights():
    jobs = guide_queue()
    for grouping in (group_runs_strict, group_runs_mixed):
        first = grouping(jobs, 4)
        reorganized = [_as_batch_item(b, f"batch_{i}") for i, b in enumerate(first)]
        second = grouping(reorganized, 4)
        assert [[r.run_id for r in b.runs] for b in second] == [
            [r.run_id for r in b.runs] for b in first
        ]
        before = {r.run_id: dict(r.weights) for b in first for r in b.runs}
        after = {r.run_id: dict(r.weights) for b in second for r in b.runs}
        assert before == after == {r.run_id: dict(r.weights) for j in jobs for r in j.runs}


def test_every_run_lands_in_exactly_one_batch():
    jobs = [*guide_queue(), job(5, {"seg": 1.0}), job(3, VED, num_steps=10)]
    for grouping in (group_runs_strict, group_runs_mixed):
        batches = grouping(jobs, 3)
        planned = [r.run_id for b in batches for r in b.runs]
        assert sorted(planned) == sorted(r.run_id for j in jobs for r in j.runs)


def test_estimate_comes_from_the_cost_model_not_a_constant():
    jobs = [job(1, VED) for _ in range(8)]
    overhead_bound = CostCoefficients(10.0, 0.1, 0.0, "test: overhead-bound")
    compute_bound = CostCoefficients(0.0, 1.0, 0.5, "test: compute-bound")
    batches = group_runs_strict(jobs, 8)
    cheap = calculate_batch_efficiency(batches, jobs, "strict", coefficients=overhead_bound)
    costly = calculate_batch_efficiency(batches, jobs, "strict", coefficients=compute_bound)
    assert cheap["speedup"] > 5
    assert abs(costly["speedup"] - 1.0) < 1e-9
    assert cheap["basis"] == "test: overhead-bound"
    expected_batched = 10.0 + 8 * (0.1 + 0.0 * 3)
    assert abs(cheap["estimated_seconds_batched"] - expected_batched) < 1e-9
    assert abs(cheap["estimated_seconds_unbatched"] - 8 * (10.0 + 0.1)) < 1e-9


def test_preview_says_when_batching_does_not_help():
    jobs = [job(1, VED) for _ in range(4)]
    plan = plan_smart_batches(jobs, "strict", 4, CostCoefficients(0.0, 1.0, 0.5, "compute-bound"))
    assert plan is not None
    preview = render_preview("strict", 4, plan.batches_payload(), plan.efficiency)
    assert "- Estimated speedup: 1.0x — batching does not help at this size" in preview


def test_default_basis_is_named():
    plan = plan_smart_batches(guide_queue(), "mixed", 4)
    assert plan is not None
    assert plan.efficiency["basis"] == DEFAULT_COEFFICIENTS.basis
    assert plan.efficiency["mode"] == "mixed"


def test_runs_round_trip_through_payloads():
    item = job(2, VED, seed=7)
    for run in item.runs:
        assert Run.from_payload(run.to_payload()) == run
    assert QueueItem.from_payload(item.to_payload()) == item
