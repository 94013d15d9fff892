"""From a claimed queue item to a backend's BatchInput, and checking what the backend returned.

The batch carries every run with its prompt's text, input video and per-control input files, its
own weights and seed; the item's execution parameters; the union of controls in canonical order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from batchlog.adapters.store import EventStore
from batchlog.domain.controls import ordered_controls
from batchlog.domain.errors import BatchlogError
from batchlog.domain.execution import Execution
from batchlog.domain.ids import prompt_aggregate_id
from batchlog.domain.jobs import QueueItem
from batchlog.domain.prompt import Prompt
from batchlog.runner.backend import BatchInput, RunInput, RunOutcome


def build_batch_input(
    store: EventStore,
    item: QueueItem,
    attempt: int,
    artifacts_dir: Path,
    prompt_cache: dict[str, Prompt] | None = None,
) -> BatchInput:
    """The batch a backend runs for this item (prompts never change, so they may be cached)."""
    cache = {} if prompt_cache is None else prompt_cache
    for pid in dict.fromkeys(item.prompt_ids):
        if pid not in cache:
            cache[pid] = _prompt(store, pid)
    prompts = {pid: cache[pid] for pid in item.prompt_ids}
    runs = tuple(
        RunInput(
            run_id=run.run_id,
            job_id=run.job_id,
            prompt_id=run.prompt_id,
            prompt_text=prompts[run.prompt_id].text,
            input_video=prompts[run.prompt_id].input_video,
            control_inputs=dict(prompts[run.prompt_id].control_inputs),
            weights=dict(run.weights),
            seed=run.seed,
        )
        for run in item.runs
    )
    options = dict(item.options)
    if item.job_type == "upscale":
        options["source_videos"] = latest_outputs(
            store, set(item.prompt_ids), options.get("source_job_id")
        )
    return BatchInput(
        item_id=item.job_id,
        job_type=item.job_type,
        parameters=item.runs[0].parameters,
        controls=tuple(ordered_controls(item.controls)),
        runs=runs,
        artifacts_dir=artifacts_dir,
        attempt=attempt,
        options=options,
    )


def latest_outputs(
    store: EventStore, prompt_ids: set[str], source_job_id: str | None
) -> dict[str, str]:
    """The latest accepted output of each prompt (of one source job, when given)."""
    latest: dict[str, str] = {}
    start = 1
    topics = [Execution.RunSucceeded.TOPIC]
    while True:
        page = store.recorder.select_notifications(start, 500, topics=topics)
        if not page:
            return latest
        for notification in page:
            event: Any = store.mapper.to_domain_event(notification)
            if event.prompt_id not in prompt_ids:
                continue
            job_id = str(event.run_id).rsplit(":", 1)[0]
            if source_job_id is None or job_id == source_job_id:
                latest[event.prompt_id] = event.output_path
        start = page[-1].id + 1


def _prompt(store: EventStore, prompt_id: str) -> Prompt:
    try:
        prompt: Prompt = store.repository.get(prompt_aggregate_id(prompt_id))
    except AggregateNotFoundError:
        raise BatchlogError(f"Prompt {prompt_id!r} of a queued run does not exist.") from None
    return prompt


def checked_outcome(run: RunInput, reported: RunOutcome | None) -> RunOutcome:
    """A run's outcome after checking that its output file exists and matches its checksum."""
    if reported is None:
        return RunOutcome(run.run_id, False, 0.0, error="the backend returned no outcome")
    if not reported.ok:
        return reported
    if not reported.output_path or not Path(reported.output_path).is_file():
        return RunOutcome(
            run.run_id,
            False,
            reported.seconds,
            output_path=reported.output_path,
            error=f"output file is missing: {reported.output_path!r}",
        )
    digest = sha256_of(Path(reported.output_path))
    if reported.sha256 and reported.sha256 != digest:
        return RunOutcome(
            run.run_id,
            False,
            reported.seconds,
            output_path=reported.output_path,
            error=f"output checksum mismatch: backend said {reported.sha256}, file is {digest}",
        )
    return RunOutcome(run.run_id, True, reported.seconds, reported.output_path, digest)


def refused_payload(outcome: RunOutcome) -> dict[str, Any]:
    """A refused run outcome as recorded on ResultRefused."""
    return {
        "run_id": outcome.run_id,
        "ok": outcome.ok,
        "output_path": outcome.output_path,
        "sha256": outcome.sha256,
        "error": outcome.error,
    }


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
