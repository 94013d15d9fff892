"""QueueService: the Smart Batching guide's Python API, persisted as events.

Each command loads the queue aggregate (cached, fast-forwarded), calls one aggregate method and
saves; the save is the transaction. Version conflicts become our errors here: commands that are
safe to retry (add, cancel, pause) retry; executing an analysis never does.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from batchlog.adapters.calibration import Calibration, ExecutionHistory
from batchlog.adapters.plan_report import executed_plan_reports, plan_report
from batchlog.adapters.settings import Settings
from batchlog.adapters.status import analysis_preview, analysis_view, reorganize_message
from batchlog.adapters.store import (
    EventStore,
    load_or_create_queue,
    open_store,
    translate_store_errors,
)
from batchlog.adapters.views.reads import ViewReader
from batchlog.domain.batching import Mode, plan_smart_batches
from batchlog.domain.collector import collector_paused
from batchlog.domain.config import (
    PromptFacts,
    ValidatedJob,
    validate_batch_size,
    validate_job,
)
from batchlog.domain.cost_model import CostCoefficients
from batchlog.domain.errors import (
    BatchlogError,
    ConcurrentUpdateError,
    StaleAnalysisError,
    UnknownPromptError,
    ValidationError,
)
from batchlog.domain.ids import (
    new_analysis_id,
    new_batch_job_id,
    new_job_id,
    new_prompt_id,
    prompt_aggregate_id,
    queue_aggregate_id,
)
from batchlog.domain.plan_record import batch_count
from batchlog.domain.prompt import Prompt
from batchlog.domain.queue import Queue

T = TypeVar("T")


class _DecidedOnCache(Exception):
    """A command decided on the cached queue without appending: decide again on the head."""


RETRY_LIMIT = 50
CoefficientSource = Callable[[], CostCoefficients]


class QueueService:
    """A named queue in an event store: add, cancel, pause, analyze, execute, inspect."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        queue_name: str | None = None,
        actor: str | None = None,
        settings: Settings | None = None,
        coefficients: CoefficientSource | None = None,
    ) -> None:
        base = settings or Settings.from_environment()
        self.settings = base.with_database_url(database_url)
        self.queue_name = queue_name or self.settings.queue_name
        self.actor = actor or self.settings.actor
        self.store: EventStore = open_store(self.settings.database_url)
        self._queue_id = queue_aggregate_id(self.queue_name)
        self._lock = threading.RLock()
        self.execution_history = ExecutionHistory(self.store, self.queue_name)
        self._coefficients = coefficients or Calibration(self.execution_history)
        self.last_sequence = 0
        self._known_prompts: dict[str, PromptFacts] = {}
        self._views: ViewReader | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store's connections."""
        if self._views is not None:
            self._views.close()
        self.store.close()

    def __enter__(self) -> QueueService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- prompts -------------------------------------------------------------------------

    def create_prompt(
        self,
        text: str,
        input_video: str = "",
        control_inputs: Mapping[str, str] | None = None,
        negative_prompt: str = "",
        prompt_id: str | None = None,
    ) -> str:
        """Register a prompt and return its id."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("text", "must be a non-empty string")
        inputs = dict(control_inputs or {})
        allowed = ("vis", "edge", "depth", "seg")
        for control, path in inputs.items():
            if control not in allowed:
                raise ValidationError(
                    "control_inputs", f"unknown control {control!r}; allowed: {', '.join(allowed)}"
                )
            if not isinstance(path, str) or not path:
                raise ValidationError(f"control_inputs.{control}", "must be a file path")
        pid = prompt_id or new_prompt_id()
        prompt = Prompt(
            prompt_id=pid,
            text=text,
            input_video=str(input_video),
            control_inputs=inputs,
            negative_prompt=str(negative_prompt),
            actor=self.actor,
        )
        try:
            with translate_store_errors():
                self.store.save(prompt)
        except IntegrityError:
            raise ValidationError("prompt_id", f"{pid!r} already exists") from None
        return pid

    def get_prompt(self, prompt_id: str) -> Prompt:
        """The prompt with this id."""
        try:
            with translate_store_errors():
                prompt: Prompt = self.store.repository.get(prompt_aggregate_id(prompt_id))
        except AggregateNotFoundError:
            raise UnknownPromptError(f"No prompt {prompt_id!r}.") from None
        return prompt

    def _prompt_facts(self, prompt_ids: Iterable[str]) -> dict[str, PromptFacts]:
        # Prompts are immutable (one PromptCreated event each), so their facts are cached: a
        # job add then costs no prompt reads, only the queue append.
        facts = {}
        for pid in dict.fromkeys(prompt_ids):
            if not isinstance(pid, str):
                raise ValidationError("prompt_ids", f"{pid!r} is not a prompt id string")
            known = self._known_prompts.get(pid)
            if known is None:
                try:
                    known = self._known_prompts[pid] = self.get_prompt(pid).facts()
                except UnknownPromptError:
                    continue
            facts[pid] = known
        return facts

    def _known_facts_of(self, prompt_ids: Any) -> Mapping[str, PromptFacts]:
        """Facts for validating these prompt ids: the whole cache when it knows them all (no
        per-job dict in a bulk add), else what _prompt_facts finds."""
        known = self._known_prompts
        if type(prompt_ids) is list and all(type(p) is str and p in known for p in prompt_ids):
            return known
        return self._prompt_facts(prompt_ids if not isinstance(prompt_ids, str) else [])

    # ---- queue commands ------------------------------------------------------------------

    def add_job(
        self,
        prompt_ids: Sequence[str],
        job_type: str = "inference",
        config: Mapping[str, Any] | None = None,
        priority: int = 50,
        submitter: str | None = None,
    ) -> str:
        """Queue one job and return its id; nothing is appended if the input is invalid."""
        return self.add_jobs(
            [
                {
                    "prompt_ids": prompt_ids,
                    "job_type": job_type,
                    "config": config,
                    "priority": priority,
                }
            ],
            submitter=submitter,
        )[0]

    def add_jobs(
        self, jobs: Sequence[Mapping[str, Any]], submitter: str | None = None
    ) -> list[str]:
        """Queue many jobs in one transaction; all are validated before anything is appended."""
        validated: list[tuple[str, ValidatedJob]] = []
        for index, spec in enumerate(jobs):
            unknown = set(spec) - {"prompt_ids", "job_type", "config", "priority"}
            if unknown:
                raise ValidationError(f"jobs[{index}]", f"unknown key {sorted(unknown)[0]!r}")
            prompt_ids = spec.get("prompt_ids") or []
            job_id = new_job_id()
            job = validate_job(
                job_id,
                prompt_ids,
                spec.get("job_type", "inference"),
                spec.get("config"),
                spec.get("priority", 50),
                self._known_facts_of(prompt_ids),
            )
            validated.append((job_id, job))
        who = submitter or self.actor

        def command(queue: Queue) -> list[str]:
            queue.add_jobs(validated, who)
            return [job_id for job_id, _ in validated]

        return self._command(command, retry=True)

    def cancel_job(self, job_id: str, reason: str = "") -> int:
        """Cancel a queued job (it stays in history); returns the queue sequence written."""
        self._command(lambda q: q.cancel_job(job_id, reason, self.actor), retry=True)
        return self.last_sequence

    def set_queue_paused(self, paused: bool, reason: str = "") -> int:
        """Pause (runners take no new items) or resume; returns the queue sequence after it."""
        if not isinstance(paused, bool):
            raise ValidationError("paused", "must be True or False")
        self._command(lambda q: q.set_paused(paused, self.actor, reason), retry=True)
        return self.last_sequence

    def is_queue_paused(self) -> bool:
        """Whether the queue is paused."""
        return bool(self.load_queue().paused)

    def set_batch_size(self, batch_size: int) -> int:
        """Set the most runs per batch (further capped by memory-safe sizes); returns the sequence."""
        size = validate_batch_size(batch_size)
        self._command(lambda q: q.set_batch_size(size, self.actor), retry=True)
        return self.last_sequence

    # ---- smart batching ------------------------------------------------------------------

    def analyze_queue_for_smart_batching(self, mix_controls: bool = False) -> dict[str, Any] | None:
        """Analyze the paused queue; record and return the plan, or None if nothing is batchable."""
        mode: Mode = "mixed" if mix_controls else "strict"
        analysis_id = new_analysis_id()
        coefficients = self._coefficients()

        def command(queue: Queue) -> dict[str, Any] | None:
            # The plan filters and orders the queued items itself (one sort, not two).
            items = queue.items.values()
            plan = plan_smart_batches(items, mode, queue.batch_size, coefficients)
            if plan is None:
                queue.require_paused("analyze")
                return None
            queue.record_analysis(analysis_id, plan, self.actor)
            assert queue.latest_analysis is not None
            return analysis_view(queue.latest_analysis, queue, plan)

        # The plan, its Analyzed event and the returned view allocate objects that all
        # survive the call; the collector would rescan the whole queue for nothing meanwhile.
        with collector_paused():
            return self._command(command, retry=True)

    def get_smart_batch_preview(self) -> str:
        """The preview of the latest analysis while it is fresh; empty otherwise."""
        fresh = self.load_queue().fresh_analysis()
        return "" if fresh is None else analysis_preview(fresh)

    def get_analysis(self) -> dict[str, Any] | None:
        """The latest analysis while it is fresh, as analyze returned it."""
        queue = self.load_queue()
        fresh = queue.fresh_analysis()
        return None if fresh is None else analysis_view(fresh, queue)

    def execute_smart_batches(self, analysis_id: str | None = None) -> dict[str, Any]:
        """Reorganize the queue by an analysis (the latest by default); refuse a stale one."""

        def command(queue: Queue) -> dict[str, Any]:
            # Ids only for a fresh analysis: a stale one is refused before they are needed, so
            # the staleness check costs the same whatever the size of the plan.
            fresh = queue.fresh_analysis()
            batches = batch_count(fresh["batch_columns"]) if fresh else 0
            new_ids = [new_batch_job_id() for _ in range(batches)]
            outcome = queue.reorganize(analysis_id, new_ids, self.actor)
            return {**outcome, "sequence": queue.version}

        try:
            outcome = self._attempt(command)
        except IntegrityError:
            raise StaleAnalysisError() from None
        retired, created = len(outcome["retired"]), len(outcome["new_jobs"])
        return {
            "jobs_deleted": retired,
            "batches_created": created,
            "mode": outcome["mode"],
            "message": reorganize_message(retired, created),
            "analysis_id": outcome["analysis_id"],
            "retired_job_ids": outcome["retired"],
            "batch_job_ids": [job["job_id"] for job in outcome["new_jobs"]],
            "sequence": outcome["sequence"],
        }

    def get_plan_report(self, analysis_id: str | None = None) -> dict[str, Any]:
        """Estimated against measured seconds of an analysis's batches (the latest by default)."""
        return plan_report(self.store, self.load_queue(), self.execution_history, analysis_id)

    def plan_reports(self) -> list[dict[str, Any]]:
        """The report of every executed analysis, oldest first: how good the estimates were."""
        return executed_plan_reports(self.store, self.load_queue(), self.execution_history)

    # ---- reading -------------------------------------------------------------------------

    def get_queue_status(self) -> dict[str, Any]:
        """The queue now, from the queue view once it holds this service's own last write."""
        with translate_store_errors():
            return self.views().queue_status(self.queue_name, self.last_sequence)

    def queue_at(self, sequence: int) -> dict[str, Any]:
        """The queue exactly as it was right after `sequence` (same shape as get_queue_status)."""
        with translate_store_errors():
            return self.views().queue_at(self.queue_name, sequence)

    def history(
        self, job_id: str | None = None, since: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Audit rows in log order: every event after global position `since`, or one job's."""
        with translate_store_errors():
            return self.views().history(job_id, since, limit)

    def lineage(self, job_id: str) -> dict[str, Any]:
        """A job's lineage: added, analyzed, merged into, claimed, each run's outcome."""
        with translate_store_errors():
            return self.views().lineage(job_id)

    def batch_stats(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Measured timings of finished executions (the cost model's calibration data)."""
        with translate_store_errors():
            return self.views().batch_stats(limit)

    def views(self) -> ViewReader:
        """The read views of this database, caught up in this process on each read."""
        if self._views is None:
            self._views = ViewReader(self.settings.database_url, store=self.store)
        return self._views

    def load_queue(self) -> Queue:
        """The queue aggregate at the head of its stream (created on first use)."""
        with self._lock:
            return load_or_create_queue(self.store, self.queue_name)

    # ---- internals -----------------------------------------------------------------------

    def _command(self, command: Callable[[Queue], T], *, retry: bool) -> T:
        attempts = RETRY_LIMIT if retry else 1
        optimistic = retry
        for attempt in range(attempts):
            try:
                return self._attempt(command, optimistic=optimistic)
            except _DecidedOnCache:
                optimistic = False
                continue
            except IntegrityError:
                if attempt == attempts - 1:
                    break
            time.sleep(random.uniform(0.001, 0.005 * (attempt + 1)))
        raise ConcurrentUpdateError()

    def _attempt(self, command: Callable[[Queue], T], *, optimistic: bool = False) -> T:
        """Load, run one command, save (one transaction); drop the cached queue if it was changed
        and not saved, so a refused or conflicting attempt never leaves a half-applied state.

        Optimistic: run on this process's cached queue without reading the store first (one
        round trip less per add). If anything was appended elsewhere, the append's expected
        version refuses it and the retry runs on the head. A decision that appends nothing, or
        refuses, is only trusted when made on the head, since no append checked it.
        """
        with self._lock:
            cached = self._cached_queue() if optimistic else None
            queue = cached or self.load_queue()
            try:
                result = command(queue)
                if cached is None or queue.pending_events:
                    self._save(queue)
                    return result
            except BatchlogError:
                if queue.pending_events:
                    self._forget_queue()
                if cached is None:
                    raise
            except BaseException:
                self._forget_queue()
                raise
        raise _DecidedOnCache()

    def _cached_queue(self) -> Queue | None:
        cache = self.store.repository.cache
        if cache is None:
            return None
        try:
            cached = cache.get(self._queue_id)
        except KeyError:
            return None
        return cached if isinstance(cached, Queue) else None

    def _save(self, queue: Queue) -> None:
        with translate_store_errors():
            self.store.save(queue)
        self.last_sequence = queue.version

    def _forget_queue(self) -> None:
        cache = self.store.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(self._queue_id, evict=True)


__all__ = ["BatchlogError", "QueueService"]
