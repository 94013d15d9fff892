"""The compact Analyzed event (class_version 2) on real stores: what is stored, and that every
way of reading it back gives the batches analyze returned."""

from __future__ import annotations

import json

from batchlog import QueueService
from batchlog.domain.queue import Queue
from tests.integration.queue_helpers import VED, prompts, queue_guide_jobs

BATCH_KEYS = [
    "index",
    "size",
    "run_ids",
    "source_job_ids",
    "controls",
    "parameters",
    "priority",
    "position",
    "estimated_seconds",
]


def varied_queue(service: QueueService) -> None:
    """The guide's jobs, plus multi-run jobs with other parameters and a higher priority."""
    queue_guide_jobs(service)
    p = prompts(service, 6)
    service.add_job(p[0:5], config={"weights": {"vis": 0.9}, "num_steps": 20}, priority=70)
    service.add_job(
        p[1:4], config={"weights_list": [VED, {"seg": 1.0}, VED]}, job_type="batch_inference"
    )


def stored_analyzed(service: QueueService) -> list[dict]:
    """The Analyzed rows of the queue as stored (decoded JSON with its class_version)."""
    queue_id = service.load_queue().id
    states = []
    for stored in service.store.recorder.select_events(queue_id):
        if stored.topic == Queue.Analyzed.TOPIC:
            states.append(json.loads(stored.state))
    return states


def test_analyze_returns_what_get_analysis_and_a_restarted_service_read_back(
    database_url, settings
):
    with QueueService(database_url, settings=settings) as service:
        varied_queue(service)
        service.set_queue_paused(True)
        for mix in (False, True):
            analysis = service.analyze_queue_for_smart_batching(mix_controls=mix)
            assert analysis is not None
            assert [list(b) for b in analysis["batches"]] == [BATCH_KEYS] * len(analysis["batches"])
            assert service.get_analysis() == analysis
    with QueueService(database_url, settings=settings) as restarted:
        assert restarted.get_analysis() == analysis
        assert restarted.get_smart_batch_preview() == analysis["preview"]


def test_the_stored_event_is_compact_and_names_each_parameter_set_once(database_url, settings):
    with QueueService(database_url, settings=settings) as service:
        varied_queue(service)
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        (state,) = stored_analyzed(service)
    assert state["class_version"] == 2
    assert "preview" not in state and "batches" not in state
    assert len(state["parameter_sets"]) == 2
    columns = state["batch_columns"]
    assert [state["parameter_sets"][i] for i in columns["parameter_set"]] == [
        b["parameters"] for b in analysis["batches"]
    ]
    assert columns["source_job_ids"] == [b["source_job_ids"] for b in analysis["batches"]]
    assert [len(r) for r in columns["run_sources"]] == [b["size"] for b in analysis["batches"]]
    assert "run_ids" not in columns


def test_reanalysis_of_the_reorganized_queue_is_idempotent_and_keeps_every_runs_weights(
    database_url, settings
):
    with QueueService(database_url, settings=settings) as service:
        varied_queue(service)
        service.set_queue_paused(True)
        weights = {
            run.run_id: dict(run.weights)
            for item in service.load_queue().items.values()
            for run in item.runs
        }
        for mix in (False, True):
            first = service.analyze_queue_for_smart_batching(mix_controls=mix)
            assert first is not None
            service.execute_smart_batches()
            again = service.analyze_queue_for_smart_batching(mix_controls=mix)
            assert again is not None
            assert [b["run_ids"] for b in again["batches"]] == [
                b["run_ids"] for b in first["batches"]
            ]
            assert [b["parameters"] for b in again["batches"]] == [
                b["parameters"] for b in first["batches"]
            ]
            # The second plan's sources are the batch jobs the first one created.
            assert {j for b in again["batches"] for j in b["source_job_ids"]} == {
                item.job_id for item in service.load_queue().queued_in_order() if item.batchable
            }
            service.execute_smart_batches()
        after = {
            run.run_id: dict(run.weights)
            for item in service.load_queue().items.values()
            for run in item.runs
        }
    assert after == weights
