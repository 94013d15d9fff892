"""The Queue aggregate: one event stream per named queue; its version is the queue's sequence.

Every change to what is queued is an event of this stream. Public methods validate first and
then trigger one decorated event method, so a refused command leaves nothing half-applied.
Event bodies only mutate state: ids, times and measurements are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as BaseSnapshot

from batchlog.domain.batching import SmartBatchPlan
from batchlog.domain.errors import (
    ClaimSupersededError,
    ItemAlreadyClaimedError,
    JobNotCancellableError,
    NoAnalysisError,
    QueueNotPausedError,
    StaleAnalysisError,
    UnknownAnalysisError,
    UnknownJobError,
)
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.jobs import Claim, ExecutionParameters, QueueItem, Run
from batchlog.domain.plan_record import batch_count, batch_runs, upcast_v1_batches
from batchlog.domain.validated import ValidatedJob

DEFAULT_BATCH_SIZE = 4
MAX_JOBS_PER_EVENT = 1000
# A bulk-added job's minor position is its index times this; the batch jobs that replace it
# take the following minors (at most POSITION_SLOT - 1 batches per analysis), so they keep its
# place before the next job of the same bulk. Jobs added one by one have slot 0.
POSITION_SLOT = 2**20


def slot_start(minor: int) -> int:
    """The minor position of the job slot this minor position lies in."""
    return minor - minor % POSITION_SLOT


def bulk_payload(
    jobs: Sequence[tuple[str, ValidatedJob]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validated jobs as JobsAdded's `jobs` and `parameters`: each distinct set of execution
    parameters once, runs referring to it by index (and not repeating their job's id)."""
    indexes: dict[ExecutionParameters, int] = {}
    entries = []
    for job_id, job in jobs:
        runs = [
            {
                "run_id": run.run_id,
                "prompt_id": run.prompt_id,
                "weights": dict(run.weights),
                "seed": run.seed,
                "parameters": indexes.setdefault(run.parameters, len(indexes)),
            }
            for run in job.runs
        ]
        entries.append(
            {
                "job_id": job_id,
                "job_type": job.job_type,
                "prompt_ids": list(job.prompt_ids),
                "config": job.config,
                "runs": runs,
                "options": job.options,
                "priority": job.priority,
            }
        )
    return entries, [parameters.to_payload() for parameters in indexes]


def job_payload(job_id: str, job: ValidatedJob) -> dict[str, Any]:
    """A validated job as the fields of JobAdded (but the submitter)."""
    return {
        "job_id": job_id,
        "job_type": job.job_type,
        "prompt_ids": list(job.prompt_ids),
        "config": job.config,
        "runs": [run.to_payload() for run in job.runs],
        "options": job.options,
        "priority": job.priority,
    }


class Queue(Aggregate):
    """A named job queue: its items in order, its pause state, batch size and latest analysis."""

    TOPIC = "batchlog.queue:Queue"
    class_version = 2  # snapshots: v2 holds the latest analysis in Analyzed's v2 shape

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A v1 snapshot's latest analysis has v1 batches and a stored preview."""
        latest = state.get("latest_analysis")
        if latest is not None and "batch_columns" not in latest:
            upcast_v1_batches(latest)

    class Event(Aggregate.Event):
        """Base class of the queue's events."""

        TOPIC = "batchlog.queue:Queue.Event"

    class Created(Event, Aggregate.Created):
        """A queue came into being."""

        TOPIC = "batchlog.queue:Queue.Created"
        class_version = 1
        name: str

    class Snapshot(BaseSnapshot):
        """A snapshot of the queue whose state is plain JSON (items as dicts)."""

        TOPIC = "batchlog.queue:Queue.Snapshot"

        @classmethod
        def take(cls, aggregate: Any) -> Any:
            """Snapshot the queue with its items as payload dicts."""
            taken = super().take(aggregate)
            state = dict(taken.state)
            state["items"] = [item.to_payload() for item in aggregate.items.values()]
            object.__setattr__(taken, "state", state)
            return taken

        def mutate(self, _: None) -> Any:
            """Rebuild the queue, turning item dicts back into QueueItems."""
            queue = super().mutate(_)
            items = [QueueItem.from_payload(payload) for payload in queue.__dict__["items"]]
            queue.__dict__["items"] = {item.job_id: item for item in items}
            return queue

    @staticmethod
    def create_id(name: str) -> UUID:
        """Queue ids are derived from the name."""
        return queue_aggregate_id(name)

    @event(Created)
    def __init__(self, name: str) -> None:
        self.name = name
        self.paused = False
        self.batch_size = DEFAULT_BATCH_SIZE
        self.items: dict[str, QueueItem] = {}
        self.latest_analysis: dict[str, Any] | None = None
        self.analysis_sequences: dict[str, int] = {}

    # ---- reading -------------------------------------------------------------------------

    def queued_in_order(self) -> list[QueueItem]:
        """Queued (not claimed) items in queue order."""
        return sorted(
            (item for item in self.items.values() if item.status == "queued"),
            key=lambda item: item.order_key,
        )

    def claimed(self) -> list[QueueItem]:
        """Items currently claimed by a runner."""
        return [item for item in self.items.values() if item.status == "claimed"]

    def item(self, job_id: str) -> QueueItem:
        """The active item with this id."""
        try:
            return self.items[job_id]
        except KeyError:
            raise UnknownJobError(
                f"No queued or running job {job_id!r} in queue {self.name!r}."
            ) from None

    def fresh_analysis(self) -> dict[str, Any] | None:
        """The latest analysis, if nothing was appended after it."""
        latest = self.latest_analysis
        if latest is not None and latest["sequence"] == self.version:
            return latest
        return None

    # ---- commands ------------------------------------------------------------------------

    def add_job(self, job_id: str, job: ValidatedJob, submitter: str) -> None:
        """Queue a validated job."""
        self._job_added(**job_payload(job_id, job), submitter=submitter)

    def add_jobs(self, jobs: Sequence[tuple[str, ValidatedJob]], submitter: str) -> None:
        """Queue validated jobs in this order: one JobAdded for a single job, else JobsAdded
        events of at most MAX_JOBS_PER_EVENT jobs each."""
        if len(jobs) == 1:
            self.add_job(*jobs[0], submitter)
            return
        for start in range(0, len(jobs), MAX_JOBS_PER_EVENT):
            entries, parameters = bulk_payload(jobs[start : start + MAX_JOBS_PER_EVENT])
            self._jobs_added(jobs=entries, parameters=parameters, submitter=submitter)

    class JobAdded(Event):
        """A job was queued."""

        TOPIC = "batchlog.queue:Queue.JobAdded"
        class_version = 1
        job_id: str
        job_type: str
        prompt_ids: list[str]
        config: dict[str, Any]
        runs: list[dict[str, Any]]
        options: dict[str, Any]
        priority: int
        submitter: str

    @event(JobAdded)
    def _job_added(
        self,
        job_id: str,
        job_type: str,
        prompt_ids: list[str],
        config: dict[str, Any],
        runs: list[dict[str, Any]],
        options: dict[str, Any],
        priority: int,
        submitter: str,
    ) -> None:
        self.items[job_id] = QueueItem(
            job_id=job_id,
            job_type=job_type,
            runs=tuple(Run.from_payload(run) for run in runs),
            priority=priority,
            position=(self.version + 1, 0),
            submitter=submitter,
            options=dict(options),
        )

    class JobsAdded(Event):
        """Several jobs were queued at once, in this order (a bulk add).

        Each entry of `jobs` has JobAdded's fields but the submitter, and its runs name their
        execution parameters by index into `parameters` (each distinct set once) instead of
        repeating them and the job id. The job at index i takes position
        (sequence, i * POSITION_SLOT), so it keeps its place among the others.
        """

        TOPIC = "batchlog.queue:Queue.JobsAdded"
        class_version = 1
        jobs: list[dict[str, Any]]
        parameters: list[dict[str, Any]]
        submitter: str

    @event(JobsAdded)
    def _jobs_added(
        self, jobs: list[dict[str, Any]], parameters: list[dict[str, Any]], submitter: str
    ) -> None:
        sequence = self.version + 1
        shared = [ExecutionParameters.from_payload(entry) for entry in parameters]
        for index, job in enumerate(jobs):
            job_id = job["job_id"]
            self.items[job_id] = QueueItem(
                job_id=job_id,
                job_type=job["job_type"],
                runs=tuple(
                    Run(
                        run_id=str(run["run_id"]),
                        job_id=job_id,
                        prompt_id=str(run["prompt_id"]),
                        weights={str(k): float(v) for k, v in run["weights"].items()},
                        seed=int(run["seed"]),
                        parameters=shared[run["parameters"]],
                    )
                    for run in job["runs"]
                ),
                priority=job["priority"],
                position=(sequence, index * POSITION_SLOT),
                submitter=submitter,
                options=dict(job["options"]),
            )

    def cancel_job(self, job_id: str, reason: str, actor: str) -> None:
        """Cancel a queued job (a running one cannot be cancelled)."""
        item = self.item(job_id)
        if item.status != "queued":
            raise JobNotCancellableError(
                f"Job {job_id!r} is running on {item.claim.runner_id if item.claim else '?'}; "
                "only queued jobs can be cancelled."
            )
        self._job_cancelled(job_id=job_id, reason=reason, actor=actor)

    class JobCancelled(Event):
        """A queued job was cancelled."""

        TOPIC = "batchlog.queue:Queue.JobCancelled"
        class_version = 1
        job_id: str
        reason: str
        actor: str

    @event(JobCancelled)
    def _job_cancelled(self, job_id: str, reason: str, actor: str) -> None:
        del self.items[job_id]

    def set_paused(self, paused: bool, actor: str, reason: str) -> bool:
        """Pause or resume; returns False (and records nothing) when already in that state."""
        if paused == self.paused:
            return False
        if paused:
            self._paused(actor=actor, reason=reason)
        else:
            self._resumed(actor=actor, reason=reason)
        return True

    class Paused(Event):
        """The queue was paused: runners take no new items."""

        TOPIC = "batchlog.queue:Queue.Paused"
        class_version = 1
        actor: str
        reason: str

    @event(Paused)
    def _paused(self, actor: str, reason: str) -> None:
        self.paused = True

    class Resumed(Event):
        """The queue was resumed."""

        TOPIC = "batchlog.queue:Queue.Resumed"
        class_version = 1
        actor: str
        reason: str

    @event(Resumed)
    def _resumed(self, actor: str, reason: str) -> None:
        self.paused = False

    def set_batch_size(self, batch_size: int, actor: str) -> bool:
        """Set the batch size; returns False (and records nothing) when it is unchanged."""
        if batch_size == self.batch_size:
            return False
        self._batch_size_set(batch_size=batch_size, previous=self.batch_size, actor=actor)
        return True

    class BatchSizeSet(Event):
        """The queue's batch size changed."""

        TOPIC = "batchlog.queue:Queue.BatchSizeSet"
        class_version = 1
        batch_size: int
        previous: int
        actor: str

    @event(BatchSizeSet)
    def _batch_size_set(self, batch_size: int, previous: int, actor: str) -> None:
        self.batch_size = batch_size

    def record_analysis(self, analysis_id: str, plan: SmartBatchPlan, actor: str) -> None:
        """Record an analysis of the queue as it is now."""
        self.require_paused("analyze")
        self._analyzed(
            analysis_id=analysis_id,
            mode=plan.mode,
            batch_size=plan.batch_size,
            parameter_sets=plan.parameter_sets_payload(),
            batch_columns=plan.batches_payload(),
            efficiency=plan.efficiency,
            based_on_sequence=self.version,
            actor=actor,
        )

    class Analyzed(Event):
        """A smart-batching plan was computed from the queue at based_on_sequence.

        The batches are a table of columns (see batchlog.domain.plan_record) that names each
        batch's parameter set by index and its runs by (source job, run index).
        """

        TOPIC = "batchlog.queue:Queue.Analyzed"
        class_version = 2
        analysis_id: str
        mode: str
        batch_size: int
        parameter_sets: list[dict[str, Any]]
        batch_columns: dict[str, list[Any]]
        efficiency: dict[str, Any]
        based_on_sequence: int
        actor: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """v1 repeated full parameters and run ids per batch and stored the preview."""
            upcast_v1_batches(state)

    @event(Analyzed)
    def _analyzed(
        self,
        analysis_id: str,
        mode: str,
        batch_size: int,
        parameter_sets: list[dict[str, Any]],
        batch_columns: dict[str, list[Any]],
        efficiency: dict[str, Any],
        based_on_sequence: int,
        actor: str,
    ) -> None:
        sequence = self.version + 1
        self.latest_analysis = {
            "analysis_id": analysis_id,
            "mode": mode,
            "batch_size": batch_size,
            "parameter_sets": parameter_sets,
            "batch_columns": batch_columns,
            "efficiency": efficiency,
            "sequence": sequence,
        }
        self.analysis_sequences[analysis_id] = sequence

    def reorganize(
        self, analysis_id: str | None, new_job_ids: Sequence[str], actor: str
    ) -> dict[str, Any]:
        """Replace the analysed jobs by the plan's batch jobs; refuse a stale or unknown analysis."""
        self.require_paused("execute smart batches")
        latest = self.latest_analysis
        if latest is None:
            raise NoAnalysisError()
        chosen = analysis_id or latest["analysis_id"]
        if chosen not in self.analysis_sequences:
            raise UnknownAnalysisError(f"No analysis {chosen!r} in queue {self.name!r}.")
        if chosen != latest["analysis_id"] or latest["sequence"] != self.version:
            raise StaleAnalysisError()
        columns = latest["batch_columns"]
        if len(new_job_ids) != batch_count(columns):
            raise ValueError("one new job id per planned batch is needed")
        parameter_sets = latest["parameter_sets"]
        new_jobs = []
        for index, job_id in enumerate(new_job_ids):
            runs = batch_runs(columns, index, self.items)
            new_jobs.append(
                {
                    "job_id": job_id,
                    "run_ids": [run.run_id for run in runs],
                    "prompt_ids": [run.prompt_id for run in runs],
                    "weights_list": [dict(run.weights) for run in runs],
                    "seeds": [run.seed for run in runs],
                    "parameters": dict(parameter_sets[columns["parameter_set"][index]]),
                    "controls": columns["controls"][index],
                    "source_job_ids": columns["source_job_ids"][index],
                    "priority": columns["priority"][index],
                    "position": [
                        columns["position"][index][0],
                        slot_start(columns["position"][index][1]) + index + 1,
                    ],
                }
            )
        retired = list(dict.fromkeys(j for sources in columns["source_job_ids"] for j in sources))
        self._reorganized(
            analysis_id=chosen, retired_job_ids=retired, new_jobs=new_jobs, actor=actor
        )
        return {
            "mode": latest["mode"],
            "analysis_id": chosen,
            "retired": retired,
            "new_jobs": new_jobs,
        }

    class Reorganized(Event):
        """The analysed jobs were retired and replaced by batch jobs (nothing was deleted)."""

        TOPIC = "batchlog.queue:Queue.Reorganized"
        class_version = 1
        analysis_id: str
        retired_job_ids: list[str]
        new_jobs: list[dict[str, Any]]
        actor: str

    @event(Reorganized)
    def _reorganized(
        self,
        analysis_id: str,
        retired_job_ids: list[str],
        new_jobs: list[dict[str, Any]],
        actor: str,
    ) -> None:
        runs = {run.run_id: run for job_id in retired_job_ids for run in self.items[job_id].runs}
        submitters = {job_id: self.items[job_id].submitter for job_id in retired_job_ids}
        for job_id in retired_job_ids:
            del self.items[job_id]
        for new in new_jobs:
            self.items[new["job_id"]] = QueueItem(
                job_id=new["job_id"],
                job_type="batch_inference",
                runs=tuple(runs[run_id] for run_id in new["run_ids"]),
                priority=int(new["priority"]),
                position=(int(new["position"][0]), int(new["position"][1])),
                submitter=", ".join(dict.fromkeys(submitters[j] for j in new["source_job_ids"])),
                source_job_ids=tuple(new["source_job_ids"]),
                analysis_id=analysis_id,
            )
        self.latest_analysis = None

    def claim(
        self,
        job_id: str,
        runner_id: str,
        token: str,
        claimed_at: datetime,
        lease_expires_at: datetime,
        settled_job_ids: Iterable[str] = (),
    ) -> QueueItem:
        """Claim a queued item for a runner; settle finished items in the same event."""
        if self.paused:
            raise QueueNotPausedError("The queue is paused; runners take no new items.")
        item = self.item(job_id)
        if item.status != "queued":
            raise ItemAlreadyClaimedError(f"Job {job_id!r} is already claimed.")
        settled = [
            j for j in settled_job_ids if j in self.items and self.items[j].status == "claimed"
        ]
        self._item_claimed(
            job_id=job_id,
            runner_id=runner_id,
            claim_token=token,
            claimed_at=claimed_at,
            lease_expires_at=lease_expires_at,
            attempt=item.attempt + 1,
            settled_job_ids=settled,
        )
        return self.items[job_id]

    class ItemClaimed(Event):
        """A runner claimed an item with a token and a lease."""

        TOPIC = "batchlog.queue:Queue.ItemClaimed"
        class_version = 1
        job_id: str
        runner_id: str
        claim_token: str
        claimed_at: datetime
        lease_expires_at: datetime
        attempt: int
        settled_job_ids: list[str]

    @event(ItemClaimed)
    def _item_claimed(
        self,
        job_id: str,
        runner_id: str,
        claim_token: str,
        claimed_at: datetime,
        lease_expires_at: datetime,
        attempt: int,
        settled_job_ids: list[str],
    ) -> None:
        for settled in settled_job_ids:
            self.items.pop(settled, None)
        claim = Claim(runner_id, claim_token, lease_expires_at, claimed_at)
        self.items[job_id] = self.items[job_id].with_changes(
            status="claimed", claim=claim, attempt=attempt
        )

    def requeue(self, job_id: str, token: str, reason: str, not_before: datetime | None) -> None:
        """Put a claimed item back in the queue (failure with retries left, or lease expired)."""
        self._check_token(job_id, token)
        self._item_requeued(
            job_id=job_id,
            claim_token=token,
            reason=reason,
            attempt=self.items[job_id].attempt,
            not_before=not_before,
        )

    class ItemRequeued(Event):
        """A claimed item went back to the queue."""

        TOPIC = "batchlog.queue:Queue.ItemRequeued"
        class_version = 1
        job_id: str
        claim_token: str
        reason: str
        attempt: int
        not_before: datetime | None

    @event(ItemRequeued)
    def _item_requeued(
        self, job_id: str, claim_token: str, reason: str, attempt: int, not_before: datetime | None
    ) -> None:
        self.items[job_id] = self.items[job_id].with_changes(
            status="queued", claim=None, not_before=not_before
        )

    def dead_letter(self, job_id: str, token: str, reason: str, error: str) -> None:
        """Give up on a claimed item after its last attempt."""
        self._check_token(job_id, token)
        self._item_dead_lettered(
            job_id=job_id,
            claim_token=token,
            reason=reason,
            error=error,
            attempt=self.items[job_id].attempt,
        )

    class ItemDeadLettered(Event):
        """A claimed item failed for good and left the queue."""

        TOPIC = "batchlog.queue:Queue.ItemDeadLettered"
        class_version = 1
        job_id: str
        claim_token: str
        reason: str
        error: str
        attempt: int

    @event(ItemDeadLettered)
    def _item_dead_lettered(
        self, job_id: str, claim_token: str, reason: str, error: str, attempt: int
    ) -> None:
        del self.items[job_id]

    def split_item(
        self, job_id: str, token: str, reason: str, new_job_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Replace a claimed item by two queued halves at its position (e.g. out of memory)."""
        self._check_token(job_id, token)
        item = self.items[job_id]
        if len(item.runs) < 2:
            raise ValueError(f"item {job_id!r} has one run; it cannot be split")
        if len(new_job_ids) != 2:
            raise ValueError("two new job ids are needed to split an item")
        half = (len(item.runs) + 1) // 2
        parts = (item.runs[:half], item.runs[half:])
        new_jobs = [
            {
                "job_id": new_id,
                "run_ids": [run.run_id for run in part],
                "position": list(item.position),
                "priority": item.priority,
            }
            for new_id, part in zip(new_job_ids, parts, strict=True)
        ]
        self._item_split(job_id=job_id, claim_token=token, reason=reason, new_jobs=new_jobs)
        return new_jobs

    class ItemSplit(Event):
        """A claimed item was replaced by two queued halves that keep its position."""

        TOPIC = "batchlog.queue:Queue.ItemSplit"
        class_version = 1
        job_id: str
        claim_token: str
        reason: str
        new_jobs: list[dict[str, Any]]

    @event(ItemSplit)
    def _item_split(
        self, job_id: str, claim_token: str, reason: str, new_jobs: list[dict[str, Any]]
    ) -> None:
        item = self.items.pop(job_id)
        runs = {run.run_id: run for run in item.runs}
        for new in new_jobs:
            self.items[new["job_id"]] = QueueItem(
                job_id=new["job_id"],
                job_type="batch_inference" if item.batchable else item.job_type,
                runs=tuple(runs[run_id] for run_id in new["run_ids"]),
                priority=int(new["priority"]),
                position=(int(new["position"][0]), int(new["position"][1])),
                submitter=item.submitter,
                options=dict(item.options),
                source_job_ids=item.source_job_ids or (item.job_id,),
                analysis_id=item.analysis_id,
            )

    def settle(self, job_ids: Iterable[str], actor: str) -> list[str]:
        """Remove claimed items whose execution finished; records nothing if none qualify.

        Claims settle finished items for free (`ItemClaimed.settled_job_ids`); this event is
        for an idle runner, and is refused while the queue is paused so a pending analysis
        stays fresh.
        """
        self._require_running("settle finished items")
        settled = [j for j in job_ids if j in self.items and self.items[j].status == "claimed"]
        if settled:
            self._items_settled(job_ids=settled, actor=actor)
        return settled

    class ItemsSettled(Event):
        """Claimed items whose executions finished left the queue (outcomes are on Execution)."""

        TOPIC = "batchlog.queue:Queue.ItemsSettled"
        class_version = 1
        job_ids: list[str]
        actor: str

    @event(ItemsSettled)
    def _items_settled(self, job_ids: list[str], actor: str) -> None:
        for job_id in job_ids:
            self.items.pop(job_id, None)

    # ---- helpers -------------------------------------------------------------------------

    def require_paused(self, action: str) -> None:
        """Refuse an action that needs a paused queue."""
        if not self.paused:
            raise QueueNotPausedError(
                f"The queue is running; pause it first (set_queue_paused(True)) to {action}."
            )

    def _require_running(self, action: str) -> None:
        if self.paused:
            raise QueueNotPausedError(f"The queue is paused; cannot {action} now.")

    def _check_token(self, job_id: str, token: str) -> None:
        item = self.item(job_id)
        if item.status != "claimed" or item.claim is None or item.claim.token != token:
            raise ClaimSupersededError()
