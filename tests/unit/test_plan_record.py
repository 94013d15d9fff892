"""The plan as an Analyzed event records it: every run is named by where it was queued."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from batchlog.domain.batching import plan_smart_batches
from batchlog.domain.jobs import QueueItem
from batchlog.domain.plan_record import batch_count, batch_run_counts, batch_runs
from tests.unit.builders import job

SIGNATURES = ({"vis": 0.5}, {"vis": 0.3, "edge": 0.7}, {"depth": 0.5, "seg": 0.2}, {"edge": 1.0})
specs = st.lists(
    st.tuples(
        st.lists(st.sampled_from(SIGNATURES), min_size=1, max_size=6),
        st.sampled_from([35, 10]),
        st.sampled_from([50, 80]),
    ),
    min_size=1,
    max_size=20,
)


def queue(jobs_specs) -> list[QueueItem]:
    return [
        job(weights_list=weights, job_type="batch_inference", num_steps=steps, priority=priority)
        if len(weights) > 1
        else job(1, weights[0], num_steps=steps, priority=priority)
        for weights, steps, priority in jobs_specs
    ]


def reorganized(plan) -> list[QueueItem]:
    """The batch jobs a reorganization by this plan would queue."""
    return [
        QueueItem(
            job_id=f"batch_{index}",
            job_type="batch_inference",
            runs=batch.runs,
            priority=batch.priority,
            position=(batch.position[0], index + 1),
            submitter="tester",
            source_job_ids=batch.source_job_ids,
        )
        for index, batch in enumerate(plan.batches)
    ]


@settings(max_examples=60, deadline=None)
@given(specs, st.sampled_from(["strict", "mixed"]), st.integers(min_value=1, max_value=8))
def test_recorded_batches_name_exactly_the_planned_runs(jobs_specs, mode, batch_size):
    jobs = queue(jobs_specs)
    # Once over the submitted jobs, once over the batch jobs a reorganization made of them.
    for _ in range(2):
        plan = plan_smart_batches(jobs, mode, batch_size)
        assert plan is not None
        columns = json.loads(json.dumps(plan.batches_payload()))
        parameter_sets = plan.parameter_sets_payload()
        items = {item.job_id: item for item in jobs}
        assert batch_count(columns) == len(plan.batches)
        assert batch_run_counts(columns) == [batch.size for batch in plan.batches]
        for index, batch in enumerate(plan.batches):
            runs = batch_runs(columns, index, items)
            assert [id(run) for run in runs] == [id(run) for run in batch.runs]
            assert columns["source_job_ids"][index] == list(batch.source_job_ids)
            parameters = parameter_sets[columns["parameter_set"][index]]
            assert parameters == batch.parameters.to_payload()
        assert len(parameter_sets) == len({b.parameters for b in plan.batches})
        jobs = reorganized(plan)
