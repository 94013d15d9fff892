"""Worker processes for rebuilds: groups of views side by side, each reading the log itself.

A rebuild is Python CPU per event and per view, so views rebuilt in separate processes (fresh
interpreters, given only the caller's sys.path, the database URL and the view names) run side by
side; the costliest group runs in the caller, which need not wait for a process to start. The
first error, here or in a worker, is raised in the caller as it was raised; the workers are then
stopped.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import IO, Any, TypeVar

from batchlog.projections.base import ProjectionError

T = TypeVar("T")
Task = Callable[[str, dict[str, int]], T]
JOIN_SECONDS = 10.0  # how long a finished or stopped worker may take to exit
# The worker's first lines: the caller's sys.path before anything of batchlog is imported (the
# caller may have found batchlog, or the task's module, through a path it added itself).
WORKER_BOOTSTRAP = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from batchlog.adapters.views.worker_process import main; main(int(sys.argv[1]))"
)
# What a rebuild costs, in thousands of CPU instructions (callgrind, 5,000 events of the
# benchmark's history): reading and decoding the log, once per process; each view's own fold and
# writes per event; and starting a worker process (the interpreter and its imports), once.
READ_COST = 48.4
VIEW_COST = {"queue": 42.9, "history": 27.2, "stats": 11.4}
START_COST = 1_510_000.0


def default_jobs(views: int) -> int:
    """One worker per view, at most one per CPU."""
    return max(1, min(views, os.cpu_count() or 1))


def view_groups(
    names: Sequence[str], jobs: int | None, events: int | None = None
) -> list[list[str]]:
    """The views split into groups that take about as long, the caller's group first (it runs
    in the calling process, the others in workers, which start later by their start-up cost).

    `jobs` is the number of groups (at most one per view); by default, as many as the model of
    costs above says finishes first for a log of `events` events, at most one per CPU: a short
    log is rebuilt in one process, since a worker's start-up outweighs what it would share."""
    if jobs is not None:
        return _balanced(names, max(1, min(jobs, len(names))), events)[0]
    counts = range(1, default_jobs(len(names)) + 1)
    return min((_balanced(names, count, events) for count in counts), key=lambda g: g[1])[0]


def _balanced(
    names: Sequence[str], count: int, events: int | None
) -> tuple[list[list[str]], float]:
    """`count` groups, the costliest views first, one to each, then each to the least loaded
    group; and the largest group's cost per event (start-up spread over the events)."""
    start = START_COST / max(events, 1) if events is not None else 0.0  # None: unknown
    loads = [READ_COST] + [READ_COST + start] * (count - 1)
    groups: list[list[str]] = [[] for _ in range(count)]
    for index, name in enumerate(sorted(names, key=lambda n: -VIEW_COST.get(n, 10.0))):
        chosen = index if index < count else loads.index(min(loads))
        groups[chosen].append(name)
        loads[chosen] += VIEW_COST.get(name, 10.0)
    return [[name for name in names if name in group] for group in groups], max(loads)


def run_side_by_side(task: Task[T], database_url: str, parts: Sequence[dict[str, int]]) -> list[T]:
    """Run `task(database_url, part)` for each part side by side: the first here (it starts at
    once, while the others' processes start), each other one in a worker process of its own.
    Their results in order, or the first error raised (every worker then stopped and reaped)."""
    if not parts:
        return []
    workers: list[_Worker] = []
    try:
        for part in parts[1:]:
            workers.append(_Worker(task, database_url, part))
        here = task(database_url, parts[0])
        results = _collect(workers)
        return [here, *(results[index] for index in range(len(workers)))]
    finally:
        for worker in workers:
            worker.stop()


class _Worker:
    """A fresh interpreter running `worker_process` on one part: the caller's sys.path and the
    task go in on its stdin, the outcome comes back on a pipe of its own (so nothing the
    worker prints can garble it; POSIX: the pipe is passed as a file descriptor).

    Not multiprocessing's spawn, which runs the caller's main script again in the worker: a
    script that calls `rebuild` without an `if __name__ == "__main__"` guard then fails, and
    every worker paid for that script's imports (the command line's cost a worker 0.15 s)."""

    def __init__(self, task: Task[Any], database_url: str, part: dict[str, int]) -> None:
        self.name = f"batchlog-rebuild-{'-'.join(part)}"
        given = pickle.dumps(sys.path) + pickle.dumps((task, database_url, part))  # may raise
        readable, writable = os.pipe()
        try:
            self.process = subprocess.Popen(
                # -P: the caller's working directory is not searched for the bootstrap's imports
                [sys.executable, "-P", "-c", WORKER_BOOTSTRAP, str(writable)],
                stdin=subprocess.PIPE,
                pass_fds=(writable,),
            )
        except BaseException:
            os.close(readable)
            raise
        finally:
            os.close(writable)
        self.results: IO[bytes] = os.fdopen(readable, "rb")
        assert self.process.stdin is not None
        try:
            with self.process.stdin as stdin:
                stdin.write(given)
        except OSError as error:  # it exited before it read its task
            self.stop()
            raise ProjectionError(
                f"the rebuild worker {self.name} did not start (exit code "
                f"{self.process.returncode}): {error}"
            ) from None

    def outcome(self) -> tuple[str, Any]:
        """("ok", result) or ("error", exception), read once the worker has written it."""
        sent = self.results.read()
        try:
            exit_code: int | None = self.process.wait(JOIN_SECONDS)
        except subprocess.TimeoutExpired:  # its result is in; `stop` ends it
            exit_code = None
        try:
            outcome: tuple[str, Any] = pickle.loads(sent)
        except Exception:
            got = f"{len(sent)} bytes that are not a result" if sent else "no result"
            raise ProjectionError(
                f"the rebuild worker {self.name} sent {got} (exit code {exit_code})"
            ) from None
        return outcome

    def stop(self) -> None:
        """Terminate the worker if it still runs (killing it if it lingers) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(JOIN_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):  # nothing more to do
                    self.process.wait(JOIN_SECONDS)
        self.results.close()


def _collect(workers: Sequence[_Worker]) -> dict[int, Any]:
    """Each worker's result by index, as they arrive; raises the first error."""
    pending = {worker.results.fileno(): index for index, worker in enumerate(workers)}
    results: dict[int, Any] = {}
    while pending:
        for ready in wait(list(pending)):
            assert isinstance(ready, int)
            index = pending.pop(ready)
            outcome, value = workers[index].outcome()
            if outcome == "error":
                raise value
            results[index] = value
    return results


def work(task: Task[Any], database_url: str, part: dict[str, int]) -> tuple[str, Any]:
    """A worker's body: ("ok", the task's result) or ("error", the exception it raised)."""
    try:
        return ("ok", task(database_url, part))
    except Exception as error:
        return ("error", _portable(error))


def outcome_bytes(outcome: tuple[str, Any]) -> bytes:
    """An outcome pickled; a result that cannot be pickled becomes an error that can."""
    try:
        return pickle.dumps(outcome)
    except Exception as error:
        return pickle.dumps(("error", ProjectionError(f"cannot send the result back: {error}")))


def _portable(error: Exception) -> Exception:
    """The error itself if it survives pickling, else a ProjectionError with its message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return ProjectionError(f"{type(error).__name__}: {error}")
    return error
