"""Commands run first on the process's cached queue (no read before the append); these tests pin
that a decision made on a stale cache is never trusted: another process's appends are seen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchlog import QueueService
from batchlog.adapters.settings import Settings


class OptimisticContract:
    url: str

    @pytest.fixture
    def pair(self, settings: Settings) -> Iterator[tuple[QueueService, QueueService]]:
        first = QueueService(self.url, settings=settings)
        second = QueueService(self.url, settings=settings)
        yield first, second
        first.close()
        second.close()

    def job(self, service: QueueService) -> str:
        return service.add_job(
            [service.create_prompt("a prompt")], config={"weights": {"vis": 0.5}}
        )

    def test_add_after_another_process_appended_lands_after_it(
        self, pair: tuple[QueueService, QueueService]
    ) -> None:
        first, second = pair
        a = self.job(first)
        b = self.job(second)
        c = self.job(first)
        status = first.get_queue_status()
        assert [job["id"] for job in status["queued_jobs"]] == [a, b, c]
        assert status["sequence"] == second.load_queue().version

    def test_cancel_of_a_job_added_by_another_process_is_not_refused(
        self, pair: tuple[QueueService, QueueService]
    ) -> None:
        first, second = pair
        self.job(first)
        theirs = self.job(second)
        first.cancel_job(theirs)
        assert theirs not in [job["id"] for job in second.get_queue_status()["queued_jobs"]]

    def test_pause_after_another_process_resumed_is_recorded(
        self, pair: tuple[QueueService, QueueService]
    ) -> None:
        first, second = pair
        first.set_queue_paused(True)
        second.set_queue_paused(False)
        first.set_queue_paused(True)
        assert second.is_queue_paused() is True

    def test_batch_size_back_to_the_cached_value_is_recorded(
        self, pair: tuple[QueueService, QueueService]
    ) -> None:
        first, second = pair
        first.set_batch_size(4 if first.load_queue().batch_size != 4 else 5)
        size = first.load_queue().batch_size
        second.set_batch_size(size + 1)
        first.set_batch_size(size)
        assert second.load_queue().batch_size == size

    def test_analysis_sees_jobs_added_by_another_process(
        self, pair: tuple[QueueService, QueueService]
    ) -> None:
        first, second = pair
        first.set_queue_paused(True)
        self.job(first)
        self.job(second)
        analysis = first.analyze_queue_for_smart_batching()
        assert analysis is not None
        assert analysis["efficiency"]["total_runs"] == 2
        assert second.execute_smart_batches()["batches_created"] == 1

    def test_a_fresh_process_loads_the_queue_from_a_snapshot_taken_in_memory(
        self, pair: tuple[QueueService, QueueService], settings: Settings
    ) -> None:
        first, _ = pair
        prompt = first.create_prompt("a prompt")
        job = {"prompt_ids": [prompt], "config": {"weights": {"vis": 0.5}}}
        first.add_jobs([job] * 5)  # one JobsAdded: version 2
        for _ in range(199):
            first.add_job(**job)
        queue_id = first.load_queue().id
        snapshots = list(first.store.snapshots.get(queue_id)) if first.store.snapshots else []
        assert [s.originator_version for s in snapshots] == [200]
        with QueueService(self.url, settings=settings) as fresh:
            assert fresh.get_queue_status() == first.get_queue_status()


class TestOptimisticSQLite(OptimisticContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url


@pytest.mark.postgres
class TestOptimisticPostgres(OptimisticContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
