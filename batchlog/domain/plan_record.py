"""The plan as an Analyzed event records it (version 2), how to read it, and the v1 upcast.

Version 2 names every distinct parameter set of the plan once (`parameter_sets`), and each
batch names its runs by where they were queued instead of repeating run ids:

    {"source_job_ids": ["job_a", "batch_b"], "runs": [[0, 0], [1, 2], [1, 3]],
     "controls": ["vis", "edge"], "parameter_set": 0, "priority": 50, "position": [3, 0],
     "estimated_seconds": 1.84}

A run reference `[s, i]` is the i-th run of source job s (an index into `source_job_ids`) as
the queue held it at the analysed sequence; an event upcast from version 1 keeps v1's run ids
as its references (v1 did not record where each run came from). The preview is not stored: it
is rendered from the batches. Version 1 repeated each batch's full parameters and every run id,
and stored the rendered preview: ~14 MB for a 100k-run plan, against ~6 MB now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchlog.domain.jobs import QueueItem, Run

RunRef = list[int] | str


def batch_run_count(batch: Mapping[str, Any]) -> int:
    """How many runs a recorded batch has."""
    return len(batch["runs"])


def batch_runs(batch: Mapping[str, Any], items: Mapping[str, QueueItem]) -> list[Run]:
    """A recorded batch's runs, from the queue items as they were at the analysed sequence."""
    sources = [items[job_id].runs for job_id in batch["source_job_ids"]]
    refs = batch["runs"]
    if refs and type(refs[0]) is str:  # upcast from v1: the references are run ids
        by_id = {run.run_id: run for source in sources for run in source}
        return [by_id[ref] for ref in refs]
    return [sources[source][index] for source, index in refs]


def batch_run_ids(batch: Mapping[str, Any], items: Mapping[str, QueueItem]) -> list[str]:
    """A recorded batch's run ids (batch_runs' ids, without building the list of runs)."""
    refs = batch["runs"]
    if refs and type(refs[0]) is str:
        return list(refs)
    sources = [items[job_id].runs for job_id in batch["source_job_ids"]]
    return [sources[source][index].run_id for source, index in refs]


def expanded_batches(
    batches: Sequence[Mapping[str, Any]],
    parameter_sets: Sequence[Mapping[str, Any]],
    items: Mapping[str, QueueItem],
) -> list[dict[str, Any]]:
    """Recorded batches as analyze returns them: numbered, with run ids and full parameters.

    Like v1's view, the lists of the recorded batch (sources, controls, position) are shared,
    not copied; each batch gets its own parameters dict.
    """
    expanded = []
    for index, batch in enumerate(batches, start=1):
        run_ids = batch_run_ids(batch, items)
        expanded.append(
            {
                "index": index,
                "size": len(run_ids),
                "run_ids": run_ids,
                "source_job_ids": batch["source_job_ids"],
                "controls": batch["controls"],
                "parameters": dict(parameter_sets[batch["parameter_set"]]),
                "priority": batch["priority"],
                "position": batch["position"],
                "estimated_seconds": batch["estimated_seconds"],
            }
        )
    return expanded


def upcast_v1_batches(state: dict[str, Any]) -> None:
    """Turn a v1 plan (full batches, a stored preview) into v2 fields, in place.

    Used by the Analyzed event's upcast and by the Queue snapshot's (its latest analysis).
    """
    table: dict[tuple[tuple[str, Any], ...], int] = {}
    parameter_sets: list[dict[str, Any]] = []
    batches = []
    for old in state["batches"]:
        key = tuple(old["parameters"].items())
        index = table.get(key)
        if index is None:
            index = table[key] = len(parameter_sets)
            parameter_sets.append(dict(old["parameters"]))
        batches.append(
            {
                "source_job_ids": list(old["source_job_ids"]),
                "runs": list(old["run_ids"]),
                "controls": list(old["controls"]),
                "parameter_set": index,
                "priority": old["priority"],
                "position": list(old["position"]),
                "estimated_seconds": old["estimated_seconds"],
            }
        )
    state["batches"] = batches
    state["parameter_sets"] = parameter_sets
    state.pop("preview", None)
