"""Projection benchmark: rebuild rate vs the raw notification-read ceiling, live lag, queue_at.

    PYTHONPATH=. python benchmarks/bench_projections.py --database-url postgresql://... \
        --events 100000

Builds a realistic history (jobs added, analysed, reorganized, claimed, executed, outcomes) in a
fresh database, then measures side by side in one run:
  * raw eventsourcing select_notifications rate (the ceiling), and read+decode rate,
  * rebuild of all three views into scratch tables (events/s): in this process, and in worker
    processes side by side (`batchlog replay`'s default; interleaved rounds, medians),
  * live lag event → view row while a writer appends (p50/p95),
  * queue_at(s) from a checkpoint, and from the start of the log.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from batchlog.adapters.migrations import migrate
from batchlog.adapters.store import EventStore, open_store, parse_database_url
from batchlog.adapters.views import ProjectionHost, ViewReader
from batchlog.adapters.views import host as host_module
from batchlog.adapters.views.decode import NotificationDecoder
from batchlog.adapters.views.replay import rebuild, rebuild_into_scratch
from batchlog.adapters.views.workers import view_groups
from batchlog.projections import PROJECTION_NAMES
from tests.workload import World

MIX = (
    ["add"] * 4
    + ["claim"] * 5
    + ["start"] * 4
    + ["run_ok"] * 10
    + ["run_failed"]
    + ["finish"] * 4
    + ["fail_retry", "lease_expired", "cancel", "batch_size"]
)
ROUNDS = 3  # interleaved rebuilds in one process and in workers


def fresh_database(url: str | None) -> str:
    """A new empty, migrated database (a temp SQLite file when no URL is given)."""
    if url is None or url.startswith("sqlite"):
        folder = tempfile.mkdtemp(prefix="bench-views-")
        fresh = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
    else:
        admin = parse_database_url(url)
        name = f"bench_views_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        fresh = url.rsplit("/", 1)[0] + "/" + name
    migrate(fresh)
    return fresh


def drop_database(server_url: str | None, url: str) -> None:
    """Drop a benchmark database made by fresh_database (PostgreSQL only)."""
    if server_url is None or server_url.startswith("sqlite"):
        return
    admin = parse_database_url(server_url)
    with psycopg.connect(admin.conninfo(), autocommit=True) as connection:
        connection.execute(
            f'DROP DATABASE IF EXISTS "{parse_database_url(url).dbname}" WITH (FORCE)'
        )


def build_history(store: EventStore, events: int, seed: int = 7) -> World:
    """Append about `events` events in log order, a few hundred per transaction."""
    rng = random.Random(seed)
    ordered: list = []
    world = World(save=lambda *aggregates: [ordered.extend(a.collect_events()) for a in aggregates])
    appended, steps = 0, 0
    while appended + len(ordered) < events:
        steps += 1
        if steps % 1000 == 0:
            world.run([("pause", 0), ("analyze_mixed", 0), ("execute", 0), ("resume", 0)])
        world.run([(rng.choice(MIX), rng.randrange(8))])
        if len(ordered) >= 500:
            store.recorder.insert_events([store.mapper.to_stored_event(e) for e in ordered])
            appended += len(ordered)
            ordered.clear()
    if ordered:
        store.recorder.insert_events([store.mapper.to_stored_event(e) for e in ordered])
    return world


def raw_read_rate(store: EventStore, decode: bool) -> float:
    decoder = NotificationDecoder(store.mapper)
    started, position, count = time.perf_counter(), 0, 0
    while True:
        page = store.recorder.select_notifications(
            start=position, limit=5000, inclusive_of_start=False
        )
        if not page:
            break
        if decode:
            for notification in page:
                decoder.decode(notification)
        count += len(page)
        position = page[-1].id
    return count / (time.perf_counter() - started)


def live_lag(url: str, writes: int, interval: float, poll: float) -> list[float]:
    """Seconds from a committed append to the queue view's commit that includes it."""
    committed: dict[int, float] = {}
    applied: list[tuple[int, float]] = []
    lock = threading.Lock()

    def on_commit(name: str, position: int, _: float) -> None:
        if name == "queue":
            with lock:
                applied.append((position, time.perf_counter()))

    store = open_store(url)
    host = ProjectionHost(url, poll_interval=poll, on_commit=on_commit)
    host.catch_up()
    host.start()
    world = World(
        save=lambda *aggregates: _timed_save(store, aggregates, committed),
        queue_name=f"lag-{uuid.uuid4().hex[:6]}",
    )
    try:
        for index in range(writes):
            world.run([("add", index)])
            time.sleep(interval)
        head = max(committed)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p >= head for p, _ in applied):
            time.sleep(0.01)
    finally:
        host.close()
        store.close()
    lags = []
    for position, saved_at in committed.items():
        seen = [t for p, t in applied if p >= position]
        if seen:
            lags.append(max(0.0, min(seen) - saved_at))
    return lags


def _timed_save(store: EventStore, aggregates: tuple, committed: dict[int, float]) -> None:
    recordings = store.save(*aggregates)
    now = time.perf_counter()
    for recording in recordings:
        if recording.notification.id is not None:
            committed[recording.notification.id] = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="PostgreSQL server URL (or sqlite)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--lag-writes", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=None, help="rebuild workers (default: auto)")
    args = parser.parse_args()

    url = fresh_database(args.database_url)
    try:
        run(url, args.events, args.lag_writes, args.jobs)
    finally:
        drop_database(args.database_url, url)


def run(url: str, events: int, lag_writes: int, jobs: int | None = None) -> None:
    """Build the history, then measure."""
    dialect = parse_database_url(url).dialect
    print(f"# {dialect}: building a history of ~{events} events", flush=True)
    store = open_store(url)
    started = time.perf_counter()
    world = build_history(store, events)
    head = int(store.recorder.max_notification_id() or 0)
    print(f"built {head} events (queue at sequence {world.queue.version}) "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip

    # The builder's aggregates stay alive (queue_at below uses them): freeze them, so that the
    # garbage collector does not rescan them during every measurement (a `batchlog replay`
    # process has no such heap).
    gc.collect()
    gc.freeze()
    raw = raw_read_rate(store, decode=False)
    decoded = raw_read_rate(store, decode=True)
    with ProjectionHost(url) as host:
        live_started = time.perf_counter()
        host.catch_up()
        live_rate = head / (time.perf_counter() - live_started)
        targets = {name: head for name in PROJECTION_NAMES}
        sequential, parallel = [], []
        for _ in range(ROUNDS):
            sequential.append(rebuild_into_scratch(store, host.views, targets))
            parallel.append(rebuild(url, targets, jobs))
        rebuilt = sequential[0]
        alone = {
            name: rebuild_into_scratch(store, host.views, {name: head}) for name in PROJECTION_NAMES
        }
    rebuild_rate = statistics.median(r.events / r.seconds for r in sequential)
    parallel_rate = statistics.median(r.events / r.seconds for r in parallel)
    workers = " | ".join(
        "+".join(group) for group in view_groups(list(PROJECTION_NAMES), jobs, head)
    )
    print(f"raw select_notifications:      {raw:>10,.0f} events/s (ceiling)")
    print(f"read + decode:                 {decoded:>10,.0f} events/s")
    print(f"rebuild all 3 views (scratch): {rebuild_rate:>10,.0f} events/s "
          f"({rebuilt.rows} rows; {rebuild_rate / raw:.0%} of the ceiling)")  # fmt: skip
    print(f"  ... split as replay does ({workers}): {parallel_rate:>10,.0f} events/s "
          f"({parallel_rate / rebuild_rate:.2f}x in one process; {parallel_rate / raw:.0%} of the "
          f"ceiling; spawning included; medians of {ROUNDS} interleaved rounds)")  # fmt: skip
    for name, result in alone.items():
        print(
            f"rebuild {name + ' view alone:':<22}{result.events / result.seconds:>10,.0f} events/s"
        )
    print(f"live catch-up, all 3 views:    {live_rate:>10,.0f} events/s "
          f"(tracked commits of up to {host_module.PAGE_SIZE})")  # fmt: skip

    reader = ViewReader(url, store=store)
    for label, sequence in (("head", world.queue.version), ("middle", world.queue.version // 2)):
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            reader.queue_at("default", sequence)
            timings.append(time.perf_counter() - t0)
        print(f"queue_at({sequence}) [{label}, checkpoint]: {min(timings) * 1000:8.1f} ms")
    reader.views.execute("DELETE FROM queue_view_checkpoints")
    t0 = time.perf_counter()
    reader.queue_at("default", world.queue.version)
    print(
        f"queue_at({world.queue.version}) [full fold]:  {(time.perf_counter() - t0) * 1000:8.1f} ms"
    )
    reader.close()
    store.close()

    poll = 0.2 if dialect == "sqlite" else 0.5
    lags = sorted(live_lag(url, lag_writes, 0.01, poll))
    p50, p95 = statistics.median(lags), lags[int(len(lags) * 0.95) - 1]
    how = "polling every 0.2 s" if dialect == "sqlite" else "LISTEN/NOTIFY"
    print(f"live lag event → queue view ({how}, {len(lags)} writes): "
          f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
