"""Worker processes for rebuilds: groups of views side by side, each reading the log itself.

A rebuild is Python CPU per event and per view, so views rebuilt in separate processes (spawned:
nothing is inherited but the database URL and the view names) run side by side; the costliest
group runs in the caller, which need not wait for a process to start. The first error, here or
in a worker, is raised in the caller as it was raised; the workers are then stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from batchlog.projections.base import ProjectionError

T = TypeVar("T")
Task = Callable[[str, dict[str, int]], T]
JOIN_SECONDS = 10.0  # how long a finished or stopped worker may take to exit
# CPU per event of each view in a rebuild (µs, from its rate alone); balances the groups.
VIEW_COST = {"queue": 15.0, "history": 17.5, "stats": 7.7}


def default_jobs(views: int) -> int:
    """One worker per view, at most one per CPU."""
    return max(1, min(views, os.cpu_count() or 1))


def view_groups(names: Sequence[str], jobs: int | None) -> list[list[str]]:
    """The views split into at most `jobs` groups of about equal cost, the costliest first."""
    count = default_jobs(len(names)) if jobs is None else max(1, min(jobs, len(names)))
    groups: list[list[str]] = [[] for _ in range(count)]
    costs = [0.0] * count
    for name in sorted(names, key=lambda n: -VIEW_COST.get(n, 10.0)):
        cheapest = costs.index(min(costs))
        groups[cheapest].append(name)
        costs[cheapest] += VIEW_COST.get(name, 10.0)
    by_cost = sorted(range(count), key=lambda index: -costs[index])
    return [[name for name in names if name in groups[index]] for index in by_cost if groups[index]]


def run_side_by_side(task: Task[T], database_url: str, parts: Sequence[dict[str, int]]) -> list[T]:
    """Run `task(database_url, part)` for each part side by side: the first here (it starts at
    once, while the others' processes start), each other one in a spawned process of its own.
    Their results in order, or the first error raised (every worker then stopped and joined)."""
    if not parts:
        return []
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for part in parts[1:]:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_work,
                args=(task, database_url, part, sender),
                name=f"batchlog-rebuild-{'-'.join(part)}",
                daemon=True,
            )
            process.start()
            sender.close()
            workers.append((process, receiver))
        here = task(database_url, parts[0])
        results = _collect(workers)
        for worker, _ in workers:
            worker.join(JOIN_SECONDS)
        return [here, *(results[index] for index in range(len(workers)))]
    finally:
        _stop(workers)


def _collect(workers: Sequence[tuple[multiprocessing.process.BaseProcess, Connection]]) -> dict:
    """Each worker's result by index, as they arrive; raises the first error."""
    pending = {receiver: index for index, (_, receiver) in enumerate(workers)}
    results: dict[int, Any] = {}
    while pending:
        for ready in wait(list(pending)):
            assert isinstance(ready, Connection)
            index = pending.pop(ready)
            try:
                outcome, value = ready.recv()
            except EOFError:
                process = workers[index][0]
                process.join(JOIN_SECONDS)
                raise ProjectionError(
                    f"the rebuild worker {process.name} exited without a result "
                    f"(exit code {process.exitcode})"
                ) from None
            if outcome == "error":
                raise value
            results[index] = value
    return results


def _stop(workers: Sequence[tuple[multiprocessing.process.BaseProcess, Connection]]) -> None:
    """Terminate the workers still running, then wait for each (killing one that lingers)."""
    for process, _ in workers:
        if process.is_alive():
            process.terminate()
    for process, receiver in workers:
        process.join(JOIN_SECONDS)
        if process.is_alive():
            process.kill()
            process.join(JOIN_SECONDS)
        receiver.close()


def _work(task: Task[Any], database_url: str, part: dict[str, int], sender: Connection) -> None:
    """A worker's body: run the task and send back ("ok", result) or ("error", exception)."""
    try:
        outcome: tuple[str, Any] = ("ok", task(database_url, part))
    except Exception as error:
        outcome = ("error", _portable(error))
    try:
        sender.send(outcome)
    finally:
        sender.close()


def _portable(error: Exception) -> Exception:
    """The error itself if it survives pickling, else a ProjectionError with its message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return ProjectionError(f"{type(error).__name__}: {error}")
    return error
