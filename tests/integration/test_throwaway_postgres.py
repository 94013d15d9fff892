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
