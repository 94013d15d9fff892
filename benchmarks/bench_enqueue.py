"""Enqueue throughput on PostgreSQL, side by side in one run.

Contenders (each in its own fresh database on the same server):
- batchlog `add_job`, one call per job (validation, queue load, one append each);
- batchlog `add_jobs`, all jobs in one call (one transaction);
- raw eventsourcing Application saving the same `Queue.JobAdded` events one per call, jobs
  validated beforehand: the store's floor for one event per transaction;
- PgQueuer `enqueue`, one call per job, and one call for all jobs (its batch form).

Goals: add_job >= 0.9x raw; add_jobs >= PgQueuer batch. Rates are medians over interleaved rounds.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from eventsourcing.application import Application

from batchlog import QueueService
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import parse_database_url, store_environment
from batchlog.domain.config import PromptFacts, validate_job
from benchmarks.common import (
    arguments,
    fresh_database,
    interleaved,
    median,
    postgres_server,
    timed,
    write_result,
)

PROMPTS = 8
WEIGHTS = ({"vis": 0.5, "edge": 0.3}, {"vis": 0.4}, {"edge": 0.6})


def job_specs(prompt_ids: list[str], count: int) -> list[dict[str, Any]]:
    """The same job mix for every contender."""
    return [
        {
            "prompt_ids": [prompt_ids[i % len(prompt_ids)]],
            "job_type": "inference",
            "config": {"weights": WEIGHTS[i % len(WEIGHTS)], "num_steps": 20, "seed": i},
            "priority": 50,
        }
        for i in range(count)
    ]


class RawStore(Application[Any]):
    """A plain eventsourcing Application: no snapshots, no cache, nothing of batchlog's service."""

    name = "raw"


class BatchlogContender:
    """QueueService on its own database."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.service = QueueService(url, settings=settings, queue_name="bench")
        self.prompts = [self.service.create_prompt(f"prompt {i}") for i in range(PROMPTS)]

    def single(self, count: int, round_index: int) -> float:
        specs = job_specs(self.prompts, count)
        return count / timed(lambda: [self.service.add_job(**spec) for spec in specs])

    def bulk(self, count: int, round_index: int) -> float:
        specs = job_specs(self.prompts, count)
        return count / timed(lambda: self.service.add_jobs(specs))

    def close(self) -> None:
        self.service.close()


class RawContender:
    """The same JobAdded events appended by a raw Application, one event per save."""

    def __init__(self, url: str) -> None:
        env = store_environment(parse_database_url(url), create_tables=True)
        env["AGGREGATE_CACHE_MAXSIZE"] = "0"
        self.app = RawStore(env=env)
        self.facts = {f"p{i}": PromptFacts(f"p{i}", "", {}) for i in range(PROMPTS)}

    def single(self, count: int, round_index: int) -> float:
        from batchlog.domain.queue import Queue

        queue = Queue(name=f"raw-{round_index}")
        self.app.save(queue)
        jobs = [
            (f"raw-{round_index}-{i}", self._validated(f"raw-{round_index}-{i}", spec))
            for i, spec in enumerate(job_specs(list(self.facts), count))
        ]

        def append_each() -> None:
            for job_id, job in jobs:
                queue.add_job(job_id, job, "bench")
                self.app.save(queue)

        return count / timed(append_each)

    def _validated(self, job_id: str, spec: dict[str, Any]) -> Any:
        return validate_job(job_id, spec["prompt_ids"], "inference", spec["config"], 50, self.facts)

    def close(self) -> None:
        self.app.close()


class PgQueuerContender:
    """PgQueuer's enqueue through psycopg's async connection (its schema installed first)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(
            psycopg.AsyncConnection.connect(parse_database_url(url).conninfo(), autocommit=True)
        )
        from pgqueuer.queries import Queries

        self.queries = Queries.from_psycopg_connection(self.connection)
        self.loop.run_until_complete(self.queries.install())

    def _payloads(self, count: int) -> list[bytes]:
        return [json.dumps(spec).encode() for spec in job_specs(["p0"], count)]

    def single(self, count: int, round_index: int) -> float:
        payloads = self._payloads(count)

        async def enqueue_each() -> None:
            for payload in payloads:
                await self.queries.enqueue("inference", payload, 50)

        return count / timed(lambda: self.loop.run_until_complete(enqueue_each()))

    def batch(self, count: int, round_index: int) -> float:
        payloads = self._payloads(count)
        names, priorities = ["inference"] * count, [50] * count
        return count / timed(
            lambda: self.loop.run_until_complete(self.queries.enqueue(names, payloads, priorities))
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def main() -> None:
    """Run the enqueue comparison and write its JSON."""
    args = arguments(__doc__ or "")
    count, repeats = (40, 3) if args.quick else (400, 9)
    settings = Settings.from_environment({"BATCHLOG_ACTOR": "bench"})
    with (
        postgres_server(args.postgres_url) as server,
        fresh_database(server) as batchlog_url,
        fresh_database(server, migrated=False) as raw_url,
        fresh_database(server, migrated=False) as pgqueuer_url,
    ):
        ours = BatchlogContender(batchlog_url, settings)
        raw = RawContender(raw_url)
        peer = PgQueuerContender(pgqueuer_url)
        try:
            # One warm-up round each: connections, prepared statements, imports.
            for warm in (ours.single, ours.bulk, raw.single, peer.single, peer.batch):
                warm(5, 10_000)
            rates = interleaved(
                {
                    "batchlog add_job": lambda r: ours.single(count, r),
                    "raw eventsourcing, one event per save": lambda r: raw.single(count, r),
                    "pgqueuer enqueue, one per call": lambda r: peer.single(count, r),
                    "batchlog add_jobs (bulk)": lambda r: ours.bulk(count, r),
                    "pgqueuer enqueue, batch": lambda r: peer.batch(count, r),
                },
                repeats,
            )
        finally:
            ours.close()
            raw.close()
            peer.close()
    medians = {name: median(values) for name, values in rates.items()}
    ratios = {
        "add_job / raw": medians["batchlog add_job"]
        / medians["raw eventsourcing, one event per save"],
        "add_job / pgqueuer single": medians["batchlog add_job"]
        / medians["pgqueuer enqueue, one per call"],
        "add_jobs bulk / pgqueuer batch": medians["batchlog add_jobs (bulk)"]
        / medians["pgqueuer enqueue, batch"],
    }
    # Each round measures all contenders back to back, so the ratio within a round is the
    # figure least moved by other tenants' load.
    per_round = {
        "add_job / raw": median(
            [
                ours / floor
                for ours, floor in zip(
                    rates["batchlog add_job"],
                    rates["raw eventsourcing, one event per save"],
                    strict=True,
                )
            ]
        ),
        "add_jobs bulk / pgqueuer batch": median(
            [
                ours / peer
                for ours, peer in zip(
                    rates["batchlog add_jobs (bulk)"], rates["pgqueuer enqueue, batch"], strict=True
                )
            ]
        ),
    }
    goals = {
        "add_job >= 0.9x raw": ratios["add_job / raw"] >= 0.9,
        "bulk >= pgqueuer batch": ratios["add_jobs bulk / pgqueuer batch"] >= 1.0,
    }
    write_result(
        args.output,
        "enqueue",
        {
            "jobs_per_round": count,
            "rounds": repeats,
            "unit": "jobs per second (median of interleaved rounds)",
            "rates": rates,
            "medians": medians,
            "ratios": ratios,
            "median_ratio_within_a_round": per_round,
            "goals_met": goals,
        },
    )


if __name__ == "__main__":
    main()
