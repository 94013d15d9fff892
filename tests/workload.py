"""A scripted queue world for tests: commands on real aggregates (queue and executions).

The same script runs in memory (events collected as EventRecords) or against a real store
(aggregates saved through the eventsourcing application), so folds and views can be compared
with what the domain itself decided.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate
from hypothesis import strategies as st

from batchlog.domain.batching import plan_smart_batches
from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.execution import Execution
from batchlog.domain.plan_record import batch_count
from batchlog.domain.queue import Queue
from batchlog.projections.added_jobs import added_jobs
from batchlog.projections.base import EventRecord

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
WEIGHTS = (
    {"vis": 0.5},
    {"vis": 0.7, "edge": 0.3},
    {"edge": 0.4},
    {"vis": 0.2, "depth": 0.6, "edge": 0.0},
)
COMMANDS = (
    "add",
    "add",
    "add",
    "add_bulk",
    "cancel",
    "pause",
    "resume",
    "batch_size",
    "analyze_strict",
    "analyze_mixed",
    "execute",
    "claim",
    "claim",
    "start",
    "run_ok",
    "run_failed",
    "finish",
    "fail_retry",
    "fail_dead",
    "fail_split",
    "fail_split",
    "settle",
    "lease_expired",
)
commands = st.lists(
    st.tuples(st.sampled_from(COMMANDS), st.integers(min_value=0, max_value=7)),
    min_size=1,
    max_size=40,
)


def to_record(event: Any, position: int) -> EventRecord:
    """A domain event as the projections see it after storage."""
    payload = {
        k: v
        for k, v in vars(event).items()
        if k not in {"originator_id", "originator_version", "timestamp"}
    }
    return EventRecord(
        position=position,
        originator_id=str(event.originator_id),
        sequence=event.originator_version,
        topic=type(event).TOPIC,
        timestamp=event.timestamp,
        payload=payload,
    )


class World:
    """Queue commands on in-memory aggregates; `save` persists them (or collects the events)."""

    def __init__(
        self, save: Callable[..., None] | None = None, queue_name: str = "default"
    ) -> None:
        self.records: list[EventRecord] = []
        self._save = save or self._collect
        self.queue = Queue(name=queue_name)
        self.executions: dict[str, Execution] = {}
        self.counter = 0
        self.save(self.queue)

    def _collect(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                self.records.append(to_record(event, len(self.records) + 1))

    def save(self, *aggregates: Aggregate) -> None:
        """Persist the aggregates' pending events."""
        self._save(*aggregates)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def now(self) -> datetime:
        """A deterministic clock."""
        return BASE_TIME + timedelta(seconds=self.counter)

    def run(self, script: list[tuple[str, int]]) -> list[tuple[str, bool]]:
        """Run a script of (command, argument); commands that do not apply are passed over."""
        done = []
        for command, argument in script:
            done.append((command, bool(getattr(self, command)(argument))))
        return done

    # ---- queue commands --------------------------------------------------------------------

    def add(self, k: int) -> bool:
        number = self._next()
        job_id = f"job_{number:05d}"
        prompts = [f"ps_{number:05d}_{i}" for i in range(1 + k % 3)]
        facts = {pid: PromptFacts(pid, "", {"depth": "d.png"}) for pid in prompts}
        config = {"weights": WEIGHTS[k % len(WEIGHTS)], "num_steps": 10 + 5 * (k % 2)}
        job = validate_job(job_id, prompts, "inference", config, 40 + 10 * (k % 3), facts)
        self.queue.add_job(job_id, job, f"user{k % 2}")
        self.save(self.queue)
        return True

    def add_bulk(self, k: int) -> bool:
        """Queue three jobs in one bulk add (JobsAdded): an upscale between two inference jobs."""
        jobs = []
        for index in range(3):
            number = self._next()
            job_id = f"job_{number:05d}"
            prompts = [f"ps_{number:05d}_{i}" for i in range(1 + (k + index) % 2)]
            facts = {pid: PromptFacts(pid, "", {"depth": "d.png"}) for pid in prompts}
            priority = 40 + 10 * ((k + index) % 2)
            if index == 1:
                job = validate_job(job_id, prompts, "upscale", {"scale": 2}, priority, facts)
            else:
                config = {"weights": WEIGHTS[(k + index) % len(WEIGHTS)]}
                job = validate_job(job_id, prompts, "inference", config, priority, facts)
            jobs.append((job_id, job))
        self.queue.add_jobs(jobs, f"user{k % 2}")
        self.save(self.queue)
        return True

    def _queued(self, k: int) -> str | None:
        queued = self.queue.queued_in_order()
        return queued[k % len(queued)].job_id if queued else None

    def cancel(self, k: int) -> bool:
        job_id = self._queued(k)
        if job_id is None:
            return False
        self.queue.cancel_job(job_id, f"reason {k}", "tester")
        self.save(self.queue)
        return True

    def pause(self, _: int) -> bool:
        changed = self.queue.set_paused(True, "tester", "")
        self.save(self.queue)
        return changed

    def resume(self, _: int) -> bool:
        changed = self.queue.set_paused(False, "tester", "")
        self.save(self.queue)
        return changed

    def batch_size(self, k: int) -> bool:
        changed = self.queue.set_batch_size(1 + k % 5, "tester")
        self.save(self.queue)
        return changed

    def _analyze(self, mode: str) -> bool:
        if not self.queue.paused:
            return False
        plan = plan_smart_batches(self.queue.queued_in_order(), mode, self.queue.batch_size)  # type: ignore[arg-type]
        if plan is None:
            return False
        self.queue.record_analysis(f"an_{self._next():05d}", plan, "tester")
        self.save(self.queue)
        return True

    def analyze_strict(self, _: int) -> bool:
        return self._analyze("strict")

    def analyze_mixed(self, _: int) -> bool:
        return self._analyze("mixed")

    def execute(self, _: int) -> bool:
        fresh = self.queue.fresh_analysis()
        if fresh is None or not self.queue.paused:
            return False
        batches = batch_count(fresh["batch_columns"])
        ids = [f"batch_{self._next():05d}_{i}" for i in range(batches)]
        self.queue.reorganize(None, ids, "tester")
        self.save(self.queue)
        return True

    # ---- runner side -----------------------------------------------------------------------

    def _ended_items(self) -> list[str]:
        return [
            item.job_id
            for item in self.queue.claimed()
            if item.claim is not None
            and (ex := self.executions.get(f"{item.job_id}:{item.claim.token}")) is not None
            and ex.state == "finished"
        ]

    def claim(self, k: int) -> bool:
        job_id = self._queued(k)
        if job_id is None or self.queue.paused:
            return False
        now = self.now()
        self.queue.claim(
            job_id,
            f"runner{k % 2}",
            f"tok{self._next():05d}",
            now,
            now + timedelta(seconds=60),
            settled_job_ids=self._ended_items(),
        )
        self.save(self.queue)
        return True

    def _claimed_without_execution(self, k: int) -> Any:
        items = [
            item
            for item in self.queue.claimed()
            if item.claim is not None and f"{item.job_id}:{item.claim.token}" not in self.executions
        ]
        return items[k % len(items)] if items else None

    def start(self, k: int) -> bool:
        item = self._claimed_without_execution(k)
        if item is None:
            return False
        execution = Execution(
            queue_name=self.queue.name,
            item_id=item.job_id,
            claim_token=item.claim.token,
            runner_id=item.claim.runner_id,
            attempt=item.attempt,
            backend="reference",
            device="cpu",
            run_ids=[run.run_id for run in item.runs],
            controls=sorted(item.controls),
            parameters=item.runs[0].parameters.to_payload(),
            lease_expires_at=item.claim.lease_expires_at,
        )
        self.executions[f"{item.job_id}:{item.claim.token}"] = execution
        self.save(execution)
        return True

    def _running(self, k: int) -> Execution | None:
        running = [ex for ex in self.executions.values() if ex.state == "running"]
        return running[k % len(running)] if running else None

    def _record_run(self, k: int, ok: bool) -> bool:
        execution = self._running(k)
        if execution is None:
            return False
        left = [r for r in execution.run_ids if r not in execution.outcomes]
        if not left:
            return False
        run_id = left[0]
        if ok:
            execution.record_run_succeeded(run_id, "ps", f"out/{run_id}.mp4", f"{k:064x}", 0.5)
        else:
            execution.record_run_failed(run_id, "ps", "missing output", 0.5)
        self.save(execution)
        return True

    def run_ok(self, k: int) -> bool:
        return self._record_run(k, True)

    def run_failed(self, k: int) -> bool:
        return self._record_run(k, False)

    def finish(self, k: int) -> bool:
        execution = self._running(k)
        if execution is None:
            return False
        execution.finish(1.5 + k, "cpu", None, self.now())
        self.save(execution)
        return True

    def _fail(self, k: int, retry: bool) -> bool:
        execution = self._running(k)
        if execution is None:
            return False
        execution.fail("boom", retryable=retry, out_of_memory=False, seconds=0.1)
        token = execution.claim_token
        if retry:
            self.queue.requeue(execution.item_id, token, "failure", None)
        else:
            self.queue.dead_letter(execution.item_id, token, "failure", "boom")
        self.save(execution, self.queue)
        return True

    def fail_split(self, k: int) -> bool:
        running = [
            ex for ex in self.executions.values() if ex.state == "running" and len(ex.run_ids) > 1
        ]
        if not running:
            return False
        execution = running[k % len(running)]
        execution.fail("out of memory", retryable=True, out_of_memory=True, seconds=0.1)
        number = self._next()
        self.queue.split_item(
            execution.item_id,
            execution.claim_token,
            "out-of-memory",
            [f"half_{number:05d}_a", f"half_{number:05d}_b"],
        )
        self.save(execution, self.queue)
        return True

    def settle(self, _: int) -> bool:
        if self.queue.paused or not self._ended_items():
            return False
        self.queue.settle(self._ended_items(), "runner0")
        self.save(self.queue)
        return True

    def fail_retry(self, k: int) -> bool:
        return self._fail(k, True)

    def fail_dead(self, k: int) -> bool:
        return self._fail(k, False)

    def lease_expired(self, k: int) -> bool:
        claimed = [i for i in self.queue.claimed() if i.job_id not in self._ended_items()]
        if not claimed:
            return False
        item = claimed[k % len(claimed)]
        assert item.claim is not None
        execution = self.executions.get(f"{item.job_id}:{item.claim.token}")
        self.queue.requeue(item.job_id, item.claim.token, "lease expired", None)
        if execution is not None:
            execution.supersede("lease expired")
            self.save(execution, self.queue)
        else:
            self.save(self.queue)
        return True

    # ---- what the domain says --------------------------------------------------------------

    def all_run_ids(self) -> set[str]:
        """Every run ever added."""
        return {
            run["run_id"]
            for record in self.records
            for _, job in added_jobs(record.event_type, record.payload)
            for run in job["runs"]
        }
