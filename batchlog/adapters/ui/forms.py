"""What the page's forms mean as QueueService arguments (validation stays with the service)."""

from __future__ import annotations

import re
from typing import Any

from batchlog.domain.controls import CONTROLS


def job_spec(
    prompt_ids: str,
    job_type: str,
    weights: list[float | None],
    num_steps: float | None,
    seed: float | None,
    priority: float | None,
) -> dict[str, Any]:
    """The add-job form as an add_job() argument dict (validation is the service's)."""
    config: dict[str, Any] = {}
    if job_type in ("inference", "batch_inference"):
        config["weights"] = {
            control: float(weight)
            for control, weight in zip(CONTROLS, weights, strict=True)
            if weight
        }
        if num_steps is not None:
            config["num_steps"] = int(num_steps)
        if seed is not None:
            config["seed"] = int(seed)
    return {
        "prompt_ids": [pid for pid in re.split(r"[\s,]+", prompt_ids or "") if pid],
        "job_type": job_type,
        "config": config,
        "priority": 50 if priority is None else int(priority),
    }
