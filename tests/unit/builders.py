"""Builders for pure domain tests: queue items with runs, without a store."""

from __future__ import annotations

from itertools import count
from typing import Any

from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.jobs import QueueItem

_positions = count(1)
PROMPTS = {
    f"ps_{i:03d}": PromptFacts(f"ps_{i:03d}", "", {"depth": "d.png", "seg": "s.png"})
    for i in range(200)
}


def job(
    runs: int = 1,
    weights: dict[str, float] | None = None,
    *,
    job_type: str = "inference",
    priority: int = 50,
    job_id: str | None = None,
    weights_list: list[dict[str, float]] | None = None,
    **config: Any,
) -> QueueItem:
    """A queued item as the queue aggregate would hold it."""
    position = next(_positions)
    jid = job_id or f"job_{position:04d}"
    cfg: dict[str, Any] = dict(config)
    if weights_list is not None:
        cfg["weights_list"] = weights_list
        runs = len(weights_list)
    elif job_type in {"inference", "batch_inference"}:
        cfg["weights"] = weights or {"vis": 0.5}
    prompt_ids = [f"ps_{(position * 7 + i) % 200:03d}" for i in range(runs)]
    validated = validate_job(jid, prompt_ids, job_type, cfg, priority, PROMPTS)
    return QueueItem(
        job_id=jid,
        job_type=job_type,
        runs=validated.runs,
        priority=priority,
        position=(position, 0),
        submitter="tester",
        options=validated.options,
    )
