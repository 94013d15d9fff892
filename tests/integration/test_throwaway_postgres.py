"""The README's test command must pass on a machine with no database: this always starts one."""

from __future__ import annotations

from batchlog import QueueService
from tests.conftest import create_database, drop_database, start_throwaway_postgres
from tests.integration.queue_helpers import queue_guide_jobs


def test_a_throwaway_postgres_server_runs_the_guide_workflow(settings):
    server = start_throwaway_postgres()
    url = create_database(server)
    try:
        with QueueService(url, settings=settings) as service:
            queue_guide_jobs(service)
            service.set_queue_paused(True)
            assert service.analyze_queue_for_smart_batching() is not None
            assert service.execute_smart_batches()["batches_created"] == 3
    finally:
        drop_database(server, url)


def test_large_saves_over_a_unix_socket_do_not_hang(settings):
    """The throwaway server listens on a Unix socket, where pipelined large inserts deadlocked."""
    server = start_throwaway_postgres()
    url = create_database(server)
    try:
        with QueueService(url, settings=settings) as service:
            prompt = service.create_prompt("a scene")
            jobs = [
                {"prompt_ids": [prompt], "config": {"weights": {"vis": 0.5}, "seed": i}}
                for i in range(1000)
            ]
            ids = service.add_jobs(jobs)
            service.set_queue_paused(True)
            analysis = service.analyze_queue_for_smart_batching()
            assert analysis is not None
            assert sum(b["size"] for b in analysis["batches"]) == len(ids) == 1000
    finally:
        drop_database(server, url)
