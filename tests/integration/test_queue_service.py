"""The QueueService contract, run on SQLite and on PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import re
import threading

import pytest

from batchlog import (
    JobNotCancellableError,
    NoAnalysisError,
    QueueNotPausedError,
    QueueService,
    StaleAnalysisError,
    UnknownAnalysisError,
    UnknownJobError,
    ValidationError,
)
from tests.integration.queue_helpers import VED, claim_directly, prompts, queue_guide_jobs

STALE = "Analysis is stale - queue has changed. Please re-analyze."


@pytest.fixture
def service(database_url, settings):
    with QueueService(database_url, settings=settings) as queue_service:
        yield queue_service


def other(database_url, settings) -> QueueService:
    return QueueService(database_url, settings=settings, actor="other-user")


class TestGuideWorkflow:
    def test_the_guides_whole_workflow(self, service):
        job_ids = queue_guide_jobs(service)
        service.set_queue_paused(True)
        assert service.is_queue_paused()
        analysis = service.analyze_queue_for_smart_batching(mix_controls=False)
        assert analysis is not None
        assert analysis["mode"] == "strict"
        assert analysis["preview"].startswith(
            "⚡ Smart Batching Analysis (Strict Mode):\n- 8 runs from 5 jobs → 3 batches"
        )
        assert service.get_smart_batch_preview() == analysis["preview"]
        for key in (
            "total_runs",
            "original_jobs",
            "total_batches",
            "speedup",
            "mode",
            "estimated_seconds_unbatched",
            "estimated_seconds_batched",
            "basis",
        ):
            assert key in analysis["efficiency"]
        results = service.execute_smart_batches()
        assert results["jobs_deleted"] == 5
        assert results["batches_created"] == 3
        assert results["mode"] == "strict"
        assert results["message"] == "Queue reorganized successfully. 5 jobs → 3 batches"
        status = service.get_queue_status()
        assert status["total_queued"] == 3
        assert [j["runs"] for j in status["queued_jobs"]] == [4, 3, 1]
        assert [j["type"] for j in status["queued_jobs"]] == ["batch_inference"] * 3
        assert [j["position"] for j in status["queued_jobs"]] == [1, 2, 3]
        assert sorted(s for j in status["queued_jobs"] for s in j["source_job_ids"]) == sorted(
            job_ids
        )
        service.set_queue_paused(False)
        assert not service.is_queue_paused()

    def test_weights_survive_reorganization_and_reanalysis(self, service):
        queue_guide_jobs(service)
        service.set_queue_paused(True)
        before = {
            w_key(w) for j in service.get_queue_status()["queued_jobs"] for w in j["weights_list"]
        }
        service.analyze_queue_for_smart_batching(mix_controls=True)
        service.execute_smart_batches()
        again = service.analyze_queue_for_smart_batching(mix_controls=True)
        assert again is not None
        service.execute_smart_batches()
        after = {
            w_key(w) for j in service.get_queue_status()["queued_jobs"] for w in j["weights_list"]
        }
        assert before == after
        assert sum(j["runs"] for j in service.get_queue_status()["queued_jobs"]) == 8

    def test_analysis_survives_a_restart(self, service, database_url, settings):
        queue_guide_jobs(service)
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        with other(database_url, settings) as restarted:
            assert restarted.get_smart_batch_preview() == analysis["preview"]
            assert restarted.execute_smart_batches()["batches_created"] == 3

    def test_nothing_is_deleted_from_history(self, service):
        job_ids = queue_guide_jobs(service)
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching()
        service.execute_smart_batches()
        stored = service.store.recorder.select_notifications(start=None, limit=10_000)
        topics = [n.topic for n in stored]
        assert topics.count("batchlog.queue:Queue.JobAdded") == 5
        assert topics.count("batchlog.queue:Queue.Reorganized") == 1
        added = b"".join(n.state for n in stored if n.topic == "batchlog.queue:Queue.JobAdded")
        assert all(job_id.encode() in added for job_id in job_ids)

    def test_non_batchable_jobs_keep_their_place(self, service):
        p = prompts(service, 3)
        service.add_job(p[0:1], config={"weights": VED})
        upscale = service.add_job(p[1:2], job_type="upscale", config={"scale": 2})
        service.add_job(p[2:3], config={"weights": VED})
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching()
        service.execute_smart_batches()
        queued = service.get_queue_status()["queued_jobs"]
        assert [j["type"] for j in queued] == ["batch_inference", "upscale"]
        assert queued[1]["id"] == upscale

    def test_bulk_added_non_batchable_jobs_keep_their_place(self, service):
        p = prompts(service, 4)
        added = service.add_jobs(
            [
                {"prompt_ids": p[0:2], "config": {"weights": {"vis": 0.5}}},
                {"prompt_ids": p[2:3], "job_type": "upscale", "config": {"scale": 2}},
                {"prompt_ids": p[3:4], "config": {"weights": {"edge": 0.5}}},
            ]
        )
        assert [j["id"] for j in service.get_queue_status()["queued_jobs"]] == added
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching()
        service.execute_smart_batches()
        queued = service.get_queue_status()["queued_jobs"]
        assert [j["type"] for j in queued] == ["batch_inference", "upscale", "batch_inference"]
        assert queued[1]["id"] == added[1]
        assert [j["id"] for j in queued] == [
            i.job_id for i in service.load_queue().queued_in_order()
        ]

    def test_only_non_batchable_jobs_give_no_analysis(self, service):
        p = prompts(service, 1)
        service.add_job(p, job_type="upscale")
        service.set_queue_paused(True)
        sequence = service.get_queue_status()["sequence"]
        assert service.analyze_queue_for_smart_batching() is None
        assert service.get_queue_status()["sequence"] == sequence

    def test_batch_size_changes_the_plan(self, service):
        queue_guide_jobs(service)
        service.set_queue_paused(True)
        service.set_batch_size(2)
        analysis = service.analyze_queue_for_smart_batching()
        assert analysis["batch_size"] == 2
        assert max(b["size"] for b in analysis["batches"]) == 2
        assert "- Batch size: 2 runs/batch" in analysis["preview"]

    def test_a_running_item_is_never_touched_by_a_reorganization(self, service):
        job_ids = queue_guide_jobs(service)
        claim_directly(service, job_ids[0])
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        assert job_ids[0] not in {j for b in analysis["batches"] for j in b["source_job_ids"]}
        service.execute_smart_batches()
        status = service.get_queue_status()
        assert [j["id"] for j in status["running"]] == [job_ids[0]]
        assert sum(j["runs"] for j in status["queued_jobs"]) == 6


def w_key(weights):
    return tuple(sorted(weights.items()))


class TestStaleness:
    @pytest.fixture
    def analyzed(self, service):
        job_ids = queue_guide_jobs(service)
        service.set_queue_paused(True)
        analysis = service.analyze_queue_for_smart_batching()
        return job_ids, analysis

    def assert_stale(self, service):
        sequence = service.get_queue_status()["sequence"]
        with pytest.raises(StaleAnalysisError, match=STALE):
            service.execute_smart_batches()
        assert service.get_queue_status()["sequence"] == sequence
        assert service.get_smart_batch_preview() == ""

    def test_a_job_added_after_the_analysis_makes_it_stale(self, service, analyzed):
        service.add_job(prompts(service, 1), config={"weights": VED})
        self.assert_stale(service)

    def test_a_cancel_after_the_analysis_makes_it_stale(self, service, analyzed):
        service.cancel_job(analyzed[0][1])
        self.assert_stale(service)

    def test_cancel_plus_add_after_analysis_is_stale(self, service, analyzed):
        service.cancel_job(analyzed[0][4])
        service.add_job(prompts(service, 1), config={"weights": {"edge": 0.4, "seg": 0.6}})
        assert service.get_queue_status()["total_queued"] == 5
        self.assert_stale(service)

    def test_a_claim_after_the_analysis_makes_it_stale(self, service, analyzed):
        service.set_queue_paused(False)
        claim_directly(service, analyzed[0][0])
        service.set_queue_paused(True)
        self.assert_stale(service)

    def test_a_batch_size_change_after_the_analysis_makes_it_stale(self, service, analyzed):
        service.set_batch_size(8)
        self.assert_stale(service)

    def test_resuming_after_the_analysis_makes_it_stale(self, service, analyzed):
        service.set_queue_paused(False)
        service.set_queue_paused(True)
        self.assert_stale(service)

    def test_a_change_by_another_process_makes_it_stale(
        self, service, analyzed, database_url, settings
    ):
        with other(database_url, settings) as second:
            second.add_job(prompts(second, 1), config={"weights": VED})
        self.assert_stale(service)

    def test_a_second_analysis_makes_the_first_stale(self, service, analyzed):
        first = analyzed[1]
        second = service.analyze_queue_for_smart_batching(mix_controls=True)
        with pytest.raises(StaleAnalysisError):
            service.execute_smart_batches(first["analysis_id"])
        assert service.execute_smart_batches(second["analysis_id"])["mode"] == "mixed"

    def test_setting_the_same_state_again_records_nothing_and_keeps_it_fresh(
        self, service, analyzed
    ):
        service.set_queue_paused(True)
        service.set_batch_size(4)
        assert service.get_smart_batch_preview() == analyzed[1]["preview"]
        assert service.execute_smart_batches()["batches_created"] == 3

    def test_two_services_racing_to_execute_exactly_one_succeeds(
        self, service, analyzed, database_url, settings
    ):
        racers = [other(database_url, settings) for _ in range(2)]
        for racer in racers:
            racer.get_smart_batch_preview()  # warm caches so the race is on the append
        barrier = threading.Barrier(len(racers))
        outcomes: list[str] = []

        def race(racer: QueueService) -> None:
            barrier.wait()
            try:
                racer.execute_smart_batches(analyzed[1]["analysis_id"])
                outcomes.append("ok")
            except (StaleAnalysisError, NoAnalysisError):
                outcomes.append("refused")

        threads = [threading.Thread(target=race, args=(r,)) for r in racers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for racer in racers:
            racer.close()
        assert sorted(outcomes) == ["ok", "refused"]
        assert service.get_queue_status()["total_queued"] == 3


class TestRefusals:
    def test_analyze_on_a_running_queue_is_refused(self, service):
        queue_guide_jobs(service)
        with pytest.raises(QueueNotPausedError, match="pause it first"):
            service.analyze_queue_for_smart_batching()

    def test_execute_on_a_running_queue_is_refused(self, service):
        queue_guide_jobs(service)
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching()
        service.set_queue_paused(False)
        with pytest.raises(QueueNotPausedError):
            service.execute_smart_batches()

    def test_execute_without_analysis(self, service):
        service.set_queue_paused(True)
        with pytest.raises(
            NoAnalysisError,
            match=re.escape("No analysis available. Run analyze_queue_for_smart_batching first."),
        ):
            service.execute_smart_batches()
        assert service.get_smart_batch_preview() == ""

    def test_execute_an_unknown_analysis(self, service):
        queue_guide_jobs(service)
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching()
        with pytest.raises(UnknownAnalysisError):
            service.execute_smart_batches("an_doesnotexist")

    def test_cancel_unknown_or_running_job(self, service):
        job_ids = queue_guide_jobs(service)
        with pytest.raises(UnknownJobError):
            service.cancel_job("job_nope")
        claim_directly(service, job_ids[0])
        with pytest.raises(JobNotCancellableError):
            service.cancel_job(job_ids[0])


BAD_INPUTS = [
    ({"config": {"weights": {"colour": 0.5}}}, "config.weights"),
    ({"config": {"weights": {"vis": 2}}}, "config.weights"),
    ({"config": {"weights": {"vis": "high"}}}, "config.weights"),
    ({"config": {"weights": {"vis": 0.5}, "stepz": 10}}, "config.stepz"),
    ({"prompt_ids": []}, "prompt_ids"),
    ({"prompt_ids": ["ps_unknown"]}, "prompt_ids"),
    (
        {
            "job_type": "batch_inference",
            "config": {"weights_list": [{"vis": 0.5}]},
            "two_prompts": True,
        },
        "config.weights_list",
    ),
    ({"job_type": "training"}, "job_type"),
    ({"priority": 1000}, "priority"),
]


class TestBadInput:
    @pytest.mark.parametrize(("overrides", "field"), BAD_INPUTS)
    def test_bad_job_is_refused_and_nothing_is_appended(self, service, overrides, field):
        p = prompts(service, 2)
        sequence = service.get_queue_status()["sequence"]
        spec = {
            "prompt_ids": p[:1],
            "job_type": "inference",
            "config": {"weights": VED},
            "priority": 50,
        }
        overrides = dict(overrides)
        if overrides.pop("two_prompts", False):
            spec["prompt_ids"] = p
        spec.update(overrides)
        with pytest.raises(ValidationError) as caught:
            service.add_job(**spec)
        assert caught.value.field == field
        assert service.get_queue_status()["sequence"] == sequence

    @pytest.mark.parametrize("size", [0, 65, "4", 1.5])
    def test_bad_batch_size_is_refused_and_nothing_is_appended(self, service, size):
        sequence = service.get_queue_status()["sequence"]
        with pytest.raises(ValidationError, match="batch_size"):
            service.set_batch_size(size)
        assert service.get_queue_status()["sequence"] == sequence

    def test_a_bulk_add_with_one_bad_job_appends_nothing(self, service):
        p = prompts(service, 2)
        sequence = service.get_queue_status()["sequence"]
        with pytest.raises(ValidationError):
            service.add_jobs(
                [
                    {"prompt_ids": p[:1], "config": {"weights": VED}},
                    {"prompt_ids": p[1:], "config": {"weights": {"vis": 9}}},
                ]
            )
        assert service.get_queue_status()["sequence"] == sequence


class TestConcurrency:
    def test_concurrent_adds_from_two_services_all_land(self, service, database_url, settings):
        p = prompts(service, 1)
        writers = [other(database_url, settings) for _ in range(2)]
        added: list[str] = []

        def write(writer: QueueService) -> None:
            for _ in range(10):
                added.append(writer.add_job(p, config={"weights": VED}))

        threads = [threading.Thread(target=write, args=(w,)) for w in writers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for w in writers:
            w.close()
        queued = {j["id"] for j in service.get_queue_status()["queued_jobs"]}
        assert len(added) == 20
        assert queued == set(added)


class TestSequences:
    def test_commands_return_the_sequence_they_wrote(self, service):
        job_ids = queue_guide_jobs(service)
        paused_at = service.set_queue_paused(True)
        assert paused_at == service.get_queue_status()["sequence"]
        assert service.set_queue_paused(True) == paused_at  # nothing new was written
        assert service.set_batch_size(8) == paused_at + 1
        assert service.cancel_job(job_ids[0]) == paused_at + 2
        assert service.get_queue_status()["sequence"] == paused_at + 2
