"""How a rebuild splits the views between the calling process and worker processes."""

from __future__ import annotations

import pytest

from batchlog.adapters.views import workers
from batchlog.adapters.views.workers import view_groups

VIEWS = ["queue", "history", "stats"]


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)


def test_on_two_cpus_the_caller_takes_the_costliest_view_and_the_worker_pays_its_start(
    two_cpus: None,
) -> None:
    """At 50k events the worker's start-up still weighs: stats stays with the caller."""
    assert view_groups(VIEWS, None, 50_000) == [["queue", "stats"], ["history"]]
    assert view_groups(VIEWS, None, 10**7) == [["queue"], ["history", "stats"]]


def test_a_short_or_empty_log_is_rebuilt_in_the_calling_process(two_cpus: None) -> None:
    """A worker's start-up would cost more than the views it could take over."""
    assert view_groups(VIEWS, None, 5_000) == [VIEWS]
    assert view_groups(VIEWS, None, 0) == [VIEWS]


def test_the_default_grows_with_the_log_and_never_passes_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 8)
    counts = [len(view_groups(VIEWS, None, events)) for events in (1_000, 30_000, 100_000)]
    assert counts == [1, 2, 3]
    # on a very long log the caller's queue is the longest part whatever the split: a third
    # process would not finish sooner, so it is not started
    assert view_groups(VIEWS, None, 10**7) == [["queue"], ["history", "stats"]]
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    assert view_groups(VIEWS, None, 10**7) == [VIEWS]


@pytest.mark.parametrize("jobs", [1, 2, 3, 7])
def test_an_explicit_count_is_kept_and_every_view_is_in_exactly_one_group(jobs: int) -> None:
    for events in (None, 10, 10**6):
        groups = view_groups(VIEWS, jobs, events)
        assert len(groups) == min(jobs, len(VIEWS)) and all(groups)
        assert sorted(name for group in groups for name in group) == sorted(VIEWS)
