"""Smart batching's packing: jobs cut into units, and units placed into batches.

A unit is the runs of one job that share execution parameters (in strict mode, and a control
signature). Strict mode places units first-fit; mixed mode packs them by control-set overlap.
Both place units in queue order, so a batch's first source job is its earliest. Pure.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence

from batchlog.domain.cost_model import memory_safe_batch_size
from batchlog.domain.jobs import ExecutionParameters, QueueItem, Run

_OPEN_BATCHES_SEARCHED = 8
_BUCKET_DEPTH_SEARCHED = 4


class Unit:
    """Runs of one job that share execution parameters (strict: and a control signature)."""

    __slots__ = ("controls", "job", "parameters", "runs")

    def __init__(
        self,
        job: QueueItem,
        parameters: ExecutionParameters,
        runs: tuple[Run, ...],
        controls: frozenset[str] | None = None,
    ) -> None:
        self.job = job
        self.parameters = parameters
        self.runs = runs
        if controls is None:
            controls = (
                runs[0].controls
                if len(runs) == 1
                else frozenset().union(*(run.controls for run in runs))
            )
        self.controls = controls


def units_of(jobs: Sequence[QueueItem]) -> list[Unit]:
    """Cut jobs (in queue order) into units: a job's runs, split by execution parameters."""
    # Equal parameters become one object, found by identity first, so later grouping keys on
    # id() (a C-level hash) instead of the 11-field dataclass hash and comparison.
    by_id: dict[int, ExecutionParameters] = {}
    by_value: dict[ExecutionParameters, ExecutionParameters] = {}

    def canonical(parameters: ExecutionParameters) -> ExecutionParameters:
        found = by_value.setdefault(parameters, parameters)
        by_id[id(parameters)] = found
        return found

    units: list[Unit] = []
    append = units.append
    for job in jobs:
        runs = job.runs
        if len(runs) == 1:
            run = runs[0]
            parameters = by_id.get(id(run.parameters)) or canonical(run.parameters)
            append(Unit(job, parameters, runs, run.controls))
            continue
        first = runs[0].parameters
        if all(run.parameters is first or run.parameters == first for run in runs):
            append(Unit(job, by_id.get(id(first)) or canonical(first), runs))
            continue
        by_parameters: dict[ExecutionParameters, list[Run]] = defaultdict(list)
        for run in runs:
            by_parameters[by_id.get(id(run.parameters)) or canonical(run.parameters)].append(run)
        units.extend(Unit(job, params, tuple(part)) for params, part in by_parameters.items())
    return units


@functools.lru_cache(maxsize=1024)
def capped_batch_size(max_batch_size: int, control_count: int) -> int:
    """The batch size, capped by the memory-safe size for this many controls (at least 1)."""
    return max(1, min(max_batch_size, memory_safe_batch_size(control_count)))


def chunks(unit: Unit, size: int) -> Sequence[Unit]:
    """The unit cut into pieces of at most size runs (the unit itself when it fits)."""
    if len(unit.runs) <= size:
        return (unit,)
    return [
        Unit(unit.job, unit.parameters, unit.runs[i : i + size])
        for i in range(0, len(unit.runs), size)
    ]


class Building:
    """A batch being filled: its runs and where each was queued, its source jobs in order
    (each with its index), the best priority among them and the union of their controls.

    Units are placed in queue order and a batch is opened by (first-fit) or seeded with
    (mixed) the earliest of the runs it gets, so its first source job is its earliest.
    """

    __slots__ = (
        "controls",
        "count",
        "first",
        "jobs",
        "parameters",
        "priority",
        "run_indexes",
        "run_sources",
        "runs",
        "serial",
    )

    def __init__(self, first: Unit, serial: int) -> None:
        self.parameters = first.parameters
        self.serial = serial
        self.first = first.job
        self.priority = first.job.priority
        self.runs: list[Run] = []
        self.run_sources: list[int] = []
        self.run_indexes: list[int] = []
        self.count = 0
        self.jobs: dict[str, int] = {}
        self.controls: frozenset[str] = first.controls
        self.add(first)

    def add(self, unit: Unit) -> None:
        """Put a unit's runs in the batch (the caller checked that they fit)."""
        runs, job = unit.runs, unit.job
        jobs = self.jobs
        source = jobs.get(job.job_id)
        if source is None:
            source = jobs[job.job_id] = len(jobs)
            if job.priority > self.priority:
                self.priority = job.priority
        if len(runs) == 1 and runs is job.runs:
            self.runs.append(runs[0])
            self.run_sources.append(source)
            self.run_indexes.append(0)
            self.count += 1
        else:
            self.runs.extend(runs)
            self.count += len(runs)
            self.run_sources.extend([source] * len(runs))
            if runs is job.runs:
                self.run_indexes.extend(range(len(runs)))
            else:
                where = {id(run): index for index, run in enumerate(job.runs)}
                self.run_indexes.extend(where[id(run)] for run in runs)
        controls = unit.controls
        if controls is not self.controls and not controls <= self.controls:
            self.controls = self.controls | controls


def strict_batches(units: list[Unit], max_batch_size: int) -> list[Building]:
    """Strict mode: first-fit within each (execution parameters, control signature) group."""
    groups: dict[tuple[int, frozenset[str]], list[Unit]] = {}
    for unit in units:
        first = unit.runs[0].controls
        if len(unit.runs) == 1 or all(run.controls == first for run in unit.runs):
            key = (id(unit.parameters), first)
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
            group.append(unit)
            continue
        by_signature: dict[frozenset[str], list[Run]] = defaultdict(list)
        for run in unit.runs:
            by_signature[run.controls].append(run)
        for signature, runs in by_signature.items():
            part = Unit(unit.job, unit.parameters, tuple(runs), signature)
            groups.setdefault((id(unit.parameters), signature), []).append(part)
    built: list[Building] = []
    serials = itertools.count()
    for (_, signature), group in groups.items():
        built.extend(_first_fit(group, capped_batch_size(max_batch_size, len(signature)), serials))
    return built


def _first_fit(units: list[Unit], cap: int, serials: Iterator[int]) -> list[Building]:
    """Each chunk goes to the first of the last few open batches it fits in, else a new one."""
    done: list[Building] = []
    open_batches: list[Building] = []
    for unit in units:
        for chunk in (unit,) if len(unit.runs) <= cap else chunks(unit, cap):
            size = len(chunk.runs)
            target = None
            window = (
                open_batches
                if len(open_batches) <= _OPEN_BATCHES_SEARCHED
                else open_batches[-_OPEN_BATCHES_SEARCHED:]
            )
            for candidate in window:
                if candidate.count + size <= cap:
                    target = candidate
                    break
            if target is None:
                target = Building(chunk, next(serials))
                open_batches.append(target)
                done.append(target)
            else:
                target.add(chunk)
            if target.count >= cap:
                open_batches.remove(target)
    return done


def mixed_batches(units: list[Unit], max_batch_size: int) -> list[Building]:
    """Mixed mode: pack by control-set overlap within each execution-parameters group."""
    groups: dict[int, list[Unit]] = {}
    for unit in units:
        group = groups.get(id(unit.parameters))
        if group is None:
            group = groups[id(unit.parameters)] = []
        group.append(unit)
    built: list[Building] = []
    serials = itertools.count()
    for group in groups.values():
        built.extend(_OverlapPacker(group, max_batch_size).pack(serials))
    return built


_Level = list[tuple[deque[int], int]]


class _OverlapPacker:
    """Mixed mode: seed a batch with the earliest unplaced piece, then keep adding the piece
    whose control set overlaps the batch's most (Jaccard), the earliest among equals.

    Candidates are, per control set, the first piece that fits among the first few unplaced
    ones. The buckets worth looking at for a batch's (controls, size), grouped by overlap from
    highest down, depend on nothing else and are computed once per such pair; the search stops
    at the first overlap level that has a candidate.
    """

    def __init__(self, units: list[Unit], max_batch_size: int) -> None:
        self.max_batch_size = max_batch_size
        self.pieces: list[Unit] = []
        for unit in units:
            self.pieces.extend(chunks(unit, capped_batch_size(max_batch_size, len(unit.controls))))
        self.sizes = [len(piece.runs) for piece in self.pieces]
        self.buckets: dict[frozenset[str], deque[int]] = defaultdict(deque)
        for index, piece in enumerate(self.pieces):
            self.buckets[piece.controls].append(index)
        self.assigned = [False] * len(self.pieces)
        self._levels: dict[tuple[frozenset[str], int], list[_Level]] = {}

    def pack(self, serials: Iterator[int]) -> list[Building]:
        """Every piece placed in a batch, batches numbered from serials."""
        done: list[Building] = []
        assigned = self.assigned
        for seed_index, seed in enumerate(self.pieces):
            if assigned[seed_index]:
                continue
            batch = Building(seed, next(serials))
            assigned[seed_index] = True
            while (choice := self._best_fit(batch)) is not None:
                batch.add(self.pieces[choice])
                assigned[choice] = True
            done.append(batch)
        return done

    def _best_fit(self, batch: Building) -> int | None:
        key = (batch.controls, batch.count)
        levels = self._levels.get(key)
        if levels is None:
            levels = self._levels[key] = self._levels_for(*key)
        assigned, sizes = self.assigned, self.sizes
        for level in levels:
            best: int | None = None
            for queue, room in level:
                while queue and assigned[queue[0]]:
                    queue.popleft()
                for index in itertools.islice(queue, _BUCKET_DEPTH_SEARCHED):
                    if not assigned[index] and sizes[index] <= room:
                        if best is None or index < best:
                            best = index
                        break
            if best is not None:
                return best
        return None

    def _levels_for(self, controls: frozenset[str], count: int) -> list[_Level]:
        by_overlap: dict[float, _Level] = defaultdict(list)
        for other, queue in self.buckets.items():
            union = controls | other
            room = capped_batch_size(self.max_batch_size, len(union)) - count
            if room > 0:
                overlap = len(controls & other) / len(union) if union else 1.0
                by_overlap[overlap].append((queue, room))
        return [by_overlap[overlap] for overlap in sorted(by_overlap, reverse=True)]
