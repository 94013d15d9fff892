"""Runner benchmark: event -> claim latency (PostgreSQL LISTEN/NOTIFY vs SQLite polling) and the
runner's bookkeeping per batch as a share of batch time.

    PYTHONPATH=. python benchmarks/bench_runner.py \
        --postgres postgresql://postgres@127.0.0.1:5432/postgres [--backend torch] [--jobs 20]

Latency: a runner process waits idle; jobs are added one at a time (each after the previous one
finished). "decided" = the claim's `claimed_at` minus the `JobAdded` timestamp (both taken before
their commits); "observed" = from add_job() returning (its commit done) until this process sees
the claim committed (woken by the claim's NOTIFY on PostgreSQL, polling every 1 ms on SQLite).
Bookkeeping: a drain over a queue of batches; everything the runner does per batch outside
`run_batch` (reap check, claim + Started, output checks, RunSucceeded.../Finished) divided by the
batch's total time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batchlog import QueueService  # noqa: E402
from batchlog.adapters.bootstrap import build_runner  # noqa: E402
from batchlog.adapters.migrations import migrate  # noqa: E402
from batchlog.adapters.store import parse_database_url  # noqa: E402
from tests.fixtures.queues import FAST, events_named, read_events  # noqa: E402

TEST_BACKEND = "tests.fixtures.backends:create_file_backend"


def fresh_postgres(server_url: str) -> str:
    name = f"batchlog_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(parse_database_url(server_url).conninfo(), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    return url


def drop_postgres(server_url: str, url: str) -> None:
    name = parse_database_url(url).dbname
    with psycopg.connect(parse_database_url(server_url).conninfo(), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_latency(url: str, jobs: int, workdir: Path) -> tuple[list[float], list[float]]:
    """Per job, milliseconds from JobAdded to the claim: (decided, committed and observed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATCHLOG_DATA_DIR": str(workdir / "data")}
    command = [
        sys.executable, "-m", "batchlog", "runner", "--backend", TEST_BACKEND,
        "--database-url", url, "--artifacts", str(workdir / "art"), "--poll-seconds", "1",
        "--runner-id", "bench",
    ]  # fmt: skip
    service = QueueService(url, actor="bench")
    prompt = service.create_prompt("latency probe")
    listener = _listener(url, service)
    runner = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    observed = []
    try:
        service.add_job([prompt], config={"weights": {"vis": 0.5}, **FAST})  # warm-up
        _wait_empty(service)
        for _ in range(jobs):
            time.sleep(0.3)  # let the runner settle into its wait
            if listener is not None:
                list(listener.notifies(timeout=0.0))
            job_id = service.add_job([prompt], config={"weights": {"vis": 0.5}, **FAST})
            added = time.perf_counter()
            _wait_claimed(service, listener, job_id)
            observed.append((time.perf_counter() - added) * 1000)
            _wait_empty(service)
    finally:
        runner.terminate()
        runner.wait(timeout=60)
        if listener is not None:
            listener.close()
        service.close()
    events = read_events(url)
    added_at = {e.job_id: e.timestamp for e in events_named(events, "JobAdded")}
    decided = [
        (c.claimed_at - added_at[c.job_id]).total_seconds() * 1000
        for c in events_named(events, "ItemClaimed")
    ]
    return decided[1:], observed


def _listener(url: str, service: QueueService) -> psycopg.Connection[Any] | None:
    if not url.startswith("postgres"):
        return None
    connection = psycopg.connect(parse_database_url(url).conninfo(), autocommit=True)
    channel = service.store.recorder.channel_name  # type: ignore[attr-defined]
    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return connection


def _claimed(service: QueueService, job_id: str) -> bool:
    return any(item["id"] == job_id for item in service.get_queue_status()["running"])


def _wait_claimed(
    service: QueueService, listener: psycopg.Connection[Any] | None, job_id: str
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if listener is not None:
            list(listener.notifies(timeout=1.0, stop_after=1))
        else:
            time.sleep(0.001)
        if _claimed(service, job_id):
            return
    raise RuntimeError("the runner did not claim the job within 60 s")


def _wait_empty(service: QueueService) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = service.get_queue_status()
        if status["total_queued"] == 0 and not status["running"]:
            return
        time.sleep(0.02)
    raise RuntimeError("the runner did not finish the job within 60 s")


def input_video(workdir: Path, size: int, frames: int) -> str:
    """A small moving-square GIF as every prompt's input video (needs imageio and numpy)."""
    import imageio.v3 as iio
    import numpy as np

    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for n in range(frames):
        start = (n * size // max(1, frames)) % (size // 2)
        video[n, start : start + size // 2, start : start + size // 2] = (220, 60, 30)
    path = workdir / f"input_{size}x{frames}.gif"
    iio.imwrite(path, video, extension=".gif")
    return str(path)


def bookkeeping(url: str, args: argparse.Namespace, workdir: Path, video: str) -> dict:
    """Drain `items` batches of `runs` runs each; return the runner's summary."""
    service = QueueService(url, actor="bench")
    shape = {
        "width": args.size,
        "height": args.size,
        "frames": args.frames,
        "num_steps": args.steps,
    }
    prompts = [service.create_prompt(f"prompt {n}", video) for n in range(args.items * args.runs)]
    for n in range(args.items):
        weights = {"vis": 0.5} if n % 2 else {"vis": 0.4, "edge": 0.3}
        chunk = prompts[n * args.runs : (n + 1) * args.runs]
        service.add_job(chunk, config={"weights": weights, "seed": n, **shape})
    service.close()
    backend, device = args.backend, args.device
    runner = build_runner(url, backend_name=backend, device=device, artifacts_dir=workdir / "bk")
    try:
        return runner.run(until_idle=True)
    finally:
        runner.close()


def describe(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"{name}: p50 {statistics.median(ordered):.1f} ms, p90 {p90:.1f} ms, "
        f"max {ordered[-1]:.1f} ms (n={len(ordered)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", required=True, help="server URL where we may CREATE DATABASE")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--backend", default=TEST_BACKEND)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--skip-latency", action="store_true", help="only the bookkeeping part")
    parser.add_argument("--size", type=int, default=FAST["width"], help="width = height")
    parser.add_argument("--frames", type=int, default=FAST["frames"])
    parser.add_argument("--steps", type=int, default=FAST["num_steps"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    if not args.skip_latency:
        pg = fresh_postgres(args.postgres)
        try:
            decided, observed = claim_latency(pg, args.jobs, workdir)
        finally:
            drop_postgres(args.postgres, pg)
        print(describe("event -> claim decided, PostgreSQL LISTEN/NOTIFY", decided))
        print(describe("event -> claim committed+observed, PostgreSQL", observed))
        sqlite = f"sqlite:///{workdir / 'bench.sqlite3'}"
        migrate(sqlite)
        decided, observed = claim_latency(sqlite, args.jobs, workdir)
        print(describe("event -> claim decided, SQLite polling (0.2 s)", decided))
        print(describe("event -> claim committed+observed, SQLite", observed))
    video = input_video(workdir, args.size, args.frames)
    for label in ("PostgreSQL", "SQLite"):
        url = (
            fresh_postgres(args.postgres)
            if label == "PostgreSQL"
            else f"sqlite:///{workdir / 'bk.sqlite3'}"
        )
        migrate(url)
        try:
            summary = bookkeeping(url, args, workdir, video)
        finally:
            if label == "PostgreSQL":
                drop_postgres(args.postgres, url)
        batches = max(1, len(summary["batches"]))
        print(
            f"bookkeeping, {label}, backend {args.backend} on {args.device}: "
            f"{summary['bookkeeping_seconds'] / batches * 1000:.1f} ms per batch vs "
            f"{summary['backend_seconds'] / batches * 1000:.1f} ms in run_batch -> share "
            f"{summary['bookkeeping_share'] * 100:.2f}% ({batches} batches of {args.runs} runs, "
            f"{args.size}x{args.size}x{args.frames}, {args.steps} steps)"
        )


if __name__ == "__main__":
    main()
