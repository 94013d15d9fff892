"""The plan as an Analyzed event records it (version 2), how to read it, and the v1 upcast.

Version 2 lists every distinct parameter set of the plan once (`parameter_sets`) and records
the batches as a table of columns (`batch_columns`): batch k is the k-th entry of each column.

    "batch_columns": {
        "source_job_ids": [["job_a", "batch_b"], ...],
        "run_sources": [[0, 1, 1], ...],     each run's source, an index into source_job_ids
        "run_indexes": [[0, 2, 3], ...],     and which run of that source (as queued then)
        "controls": [["vis", "edge"], ...],
        "parameter_set": [0, ...],           an index into parameter_sets
        "priority": [50, ...],
        "position": [[3, 0], ...],
        "estimated_seconds": [1.84, ...],
    }

Runs are named by where they were queued at the analysed sequence; an event upcast from
version 1 has a `run_ids` column instead of run_sources/run_indexes (v1 recorded run ids, not
where each run came from). The preview is not stored: it is rendered from the columns.
Version 1 repeated each batch's keys and full parameters and every run id, and stored the
rendered preview: ~14 MB for a 100k-run plan, against ~4 MB now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchlog.domain.jobs import QueueItem, Run

Columns = Mapping[str, Any]


def batch_count(columns: Columns) -> int:
    """How many batches a recorded plan has."""
    return len(columns["source_job_ids"])


def batch_run_counts(columns: Columns) -> list[int]:
    """How many runs each recorded batch has."""
    refs = columns["run_ids"] if "run_ids" in columns else columns["run_indexes"]
    return [len(runs) for runs in refs]


def batch_runs(columns: Columns, index: int, items: Mapping[str, QueueItem]) -> list[Run]:
    """The runs of the index-th recorded batch, from the queue items at the analysed sequence."""
    sources = [items[job_id].runs for job_id in columns["source_job_ids"][index]]
    if "run_ids" in columns:
        by_id = {run.run_id: run for source in sources for run in source}
        return [by_id[run_id] for run_id in columns["run_ids"][index]]
    return [
        sources[source][position]
        for source, position in zip(
            columns["run_sources"][index], columns["run_indexes"][index], strict=True
        )
    ]


def expanded_batches(
    columns: Columns,
    parameter_sets: Sequence[Mapping[str, Any]],
    run_ids: Sequence[list[str]],
) -> list[dict[str, Any]]:
    """Recorded batches as analyze returns them: numbered, with run ids and full parameters.

    run_ids: each batch's run ids (batch_runs', or the plan's). As in v1's view, the recorded
    lists (sources, controls, position) are shared, not copied; each batch gets its own
    parameters dict.
    """
    return [
        {
            "index": index,
            "size": len(ids),
            "run_ids": ids,
            "source_job_ids": sources,
            "controls": controls,
            "parameters": dict(parameter_sets[parameter_set]),
            "priority": priority,
            "position": position,
            "estimated_seconds": seconds,
        }
        for index, (ids, sources, controls, parameter_set, priority, position, seconds) in (
            enumerate(
                zip(
                    run_ids,
                    columns["source_job_ids"],
                    columns["controls"],
                    columns["parameter_set"],
                    columns["priority"],
                    columns["position"],
                    columns["estimated_seconds"],
                    strict=True,
                ),
                start=1,
            )
        )
    ]


def recorded_run_ids(columns: Columns, items: Mapping[str, QueueItem]) -> list[list[str]]:
    """Each recorded batch's run ids, from the queue items at the analysed sequence."""
    if "run_ids" in columns:
        return [list(ids) for ids in columns["run_ids"]]
    return [
        [run.run_id for run in batch_runs(columns, index, items)]
        for index in range(batch_count(columns))
    ]


def upcast_v1_batches(state: dict[str, Any]) -> None:
    """Turn a v1 plan (a list of full batches, a stored preview) into v2 fields, in place.

    Used by the Analyzed event's upcast and by the Queue snapshot's (its latest analysis).
    """
    table: dict[tuple[tuple[str, Any], ...], int] = {}
    parameter_sets: list[dict[str, Any]] = []
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "source_job_ids",
            "run_ids",
            "controls",
            "parameter_set",
            "priority",
            "position",
            "estimated_seconds",
        )
    }
    for batch in state.pop("batches"):
        key = tuple(batch["parameters"].items())
        if key not in table:
            table[key] = len(parameter_sets)
            parameter_sets.append(dict(batch["parameters"]))
        columns["source_job_ids"].append(list(batch["source_job_ids"]))
        columns["run_ids"].append(list(batch["run_ids"]))
        columns["controls"].append(list(batch["controls"]))
        columns["parameter_set"].append(table[key])
        columns["priority"].append(batch["priority"])
        columns["position"].append(list(batch["position"]))
        columns["estimated_seconds"].append(batch["estimated_seconds"])
    state["parameter_sets"] = parameter_sets
    state["batch_columns"] = columns
    state.pop("preview", None)
