"""The jobs an add event queued: one for JobAdded, each entry of a bulk JobsAdded.

Every projection folds a bulk add as the JobAdded of each of its jobs, so one fold serves both:
a JobsAdded entry is expanded to JobAdded's shape (its runs get their job id and their
execution parameters back from the event's shared list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchlog.domain.queue import POSITION_SLOT

AddedJob = tuple[int, Mapping[str, Any]]  # (minor position, JobAdded-shaped payload)


def added_jobs(event_type: str, payload: Mapping[str, Any]) -> list[AddedJob]:
    """The jobs a JobAdded or JobsAdded payload queued, in order; [] for any other event."""
    if event_type == "JobAdded":
        return [(0, payload)]
    if event_type == "JobsAdded":
        submitter, parameters = payload["submitter"], payload["parameters"]
        return [
            (
                index * POSITION_SLOT,
                {
                    **job,
                    "runs": [
                        {
                            "run_id": run["run_id"],
                            "job_id": job["job_id"],
                            "prompt_id": run["prompt_id"],
                            "weights": run["weights"],
                            "seed": run["seed"],
                            "parameters": parameters[run["parameters"]],
                        }
                        for run in job["runs"]
                    ],
                    "submitter": submitter,
                },
            )
            for index, job in enumerate(payload["jobs"])
        ]
    return []
