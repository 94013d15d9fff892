"""Snapshots of the hot queue aggregate: a cold start from a snapshot equals a full replay."""

from __future__ import annotations

from batchlog import QueueService
from batchlog.adapters.store import SNAPSHOT_INTERVAL
from tests.integration.queue_helpers import VED, prompts


def test_cold_start_from_a_snapshot_equals_a_full_replay(database_url, settings):
    with QueueService(database_url, settings=settings) as service:
        p = prompts(service, 3)
        jobs = [
            {
                "prompt_ids": p[: 1 + i % 3],
                "config": {"weights": VED, "seed": i},
                "priority": i % 100,
            }
            for i in range(SNAPSHOT_INTERVAL + 70)
        ]
        service.add_jobs(jobs[:50])  # one JobsAdded event
        for spec in jobs[50:]:
            service.add_job(**spec)
        service.set_queue_paused(True)
        service.analyze_queue_for_smart_batching(mix_controls=True)
        service.execute_smart_batches()
        live = service.get_queue_status()
        assert service.store.snapshots is not None
        snapshots = list(service.store.snapshots.get(service.load_queue().id))
        assert snapshots, "a snapshot should have been taken"
    with QueueService(database_url, settings=settings) as cold:
        assert cold.get_queue_status() == live
        replayed = None
        for stored_event in cold.store.events.get(cold.load_queue().id):
            replayed = stored_event.mutate(replayed)
        assert replayed is not None and replayed.version == live["sequence"]
        assert [i.to_payload() for i in replayed.queued_in_order()] == [
            i.to_payload() for i in cold.load_queue().queued_in_order()
        ]
