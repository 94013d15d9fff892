"""How often the queue is snapshotted: less often as it grows, so snapshots cost O(1) per event."""

from __future__ import annotations

from batchlog.adapters.store import snapshot_interval


def test_snapshot_interval_grows_with_the_queue_so_snapshots_cost_o1_per_event() -> None:
    assert [snapshot_interval(200, n) for n in (0, 199, 399, 400, 799, 800, 100_000)] == [
        200,
        200,
        200,
        400,
        400,
        800,
        51_200,
    ]
    for items in (10, 1_000, 50_000, 1_000_000):
        assert items / snapshot_interval(200, items) < 2
