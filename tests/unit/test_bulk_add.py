"""Bulk adds in the queue aggregate: one JobsAdded per chunk of jobs, each job at its own place."""

from __future__ import annotations

from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.queue import (
    MAX_JOBS_PER_EVENT,
    POSITION_SLOT,
    Queue,
    job_payload,
    slot_start,
)
from batchlog.projections.added_jobs import added_jobs

PROMPTS = {f"p{i}": PromptFacts(f"p{i}", "", {}) for i in range(4)}


def _jobs(count: int, start: int = 0, priorities: tuple[int, ...] = (50,)) -> list:
    return [
        (
            f"job_{n}",
            validate_job(
                f"job_{n}",
                [f"p{n % 4}"],
                "inference",
                {"weights": {"vis": 0.5}, "seed": n},
                priorities[n % len(priorities)],
                PROMPTS,
            ),
        )
        for n in range(start, start + count)
    ]


def _replayed(queue: Queue) -> Queue:
    replayed = None
    for event in queue.collect_events():
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Queue)
    return replayed


def test_one_job_is_a_job_added_and_several_are_one_jobs_added() -> None:
    queue = Queue(name="unit")
    queue.add_jobs(_jobs(1), "tester")
    queue.add_jobs(_jobs(3, start=1), "tester")
    events = queue.pending_events[1:]
    assert [type(e).__name__ for e in events] == ["JobAdded", "JobsAdded"]
    bulk = events[1]
    assert isinstance(bulk, Queue.JobsAdded)
    assert [job["job_id"] for job in bulk.jobs] == ["job_1", "job_2", "job_3"]
    assert bulk.submitter == "tester" and "submitter" not in bulk.jobs[0]
    positions = [queue.items[f"job_{n}"].position for n in range(4)]
    assert positions == [(2, 0), (3, 0), (3, POSITION_SLOT), (3, 2 * POSITION_SLOT)]


def test_a_large_bulk_is_split_into_events_of_at_most_the_chunk_size() -> None:
    queue = Queue(name="unit")
    count = 2 * MAX_JOBS_PER_EVENT + 5
    queue.add_jobs(_jobs(count), "tester")
    sizes = [len(e.jobs) for e in queue.pending_events if isinstance(e, Queue.JobsAdded)]
    assert sizes == [MAX_JOBS_PER_EVENT, MAX_JOBS_PER_EVENT, 5]
    assert [i.job_id for i in queue.queued_in_order()] == [f"job_{n}" for n in range(count)]


def test_bulk_jobs_keep_priority_then_bulk_order_and_survive_replay() -> None:
    queue = Queue(name="unit")
    queue.add_jobs(_jobs(6, priorities=(10, 90)), "tester")
    queue.add_job(*_jobs(1, start=6, priorities=(90,))[0], "tester")
    order = [i.job_id for i in queue.queued_in_order()]
    assert order == ["job_1", "job_3", "job_5", "job_6", "job_0", "job_2", "job_4"]
    replayed = _replayed(queue)
    assert [i.to_payload() for i in replayed.queued_in_order()] == [
        i.to_payload() for i in queue.queued_in_order()
    ]


def test_a_minor_position_lies_in_the_slot_of_its_bulk_job() -> None:
    assert slot_start(0) == 0 and slot_start(7) == 0
    assert slot_start(3 * POSITION_SLOT) == 3 * POSITION_SLOT
    assert slot_start(3 * POSITION_SLOT + 12) == 3 * POSITION_SLOT


def test_a_bulk_names_each_parameter_set_once_and_expands_to_job_added_payloads() -> None:
    queue = Queue(name="unit")
    jobs = _jobs(3)
    negative = validate_job(
        "job_9", ["p0"], "inference", {"weights": {"vis": 1}, "negative_prompt": "x"}, 50, PROMPTS
    )
    queue.add_jobs([*jobs, ("job_9", negative)], "tester")
    (bulk,) = [e for e in queue.pending_events if isinstance(e, Queue.JobsAdded)]
    assert len(bulk.parameters) == 2
    assert [job["runs"][0]["parameters"] for job in bulk.jobs] == [0, 0, 0, 1]
    payload = {k: v for k, v in vars(bulk).items() if k in {"jobs", "parameters", "submitter"}}
    expanded = added_jobs("JobsAdded", payload)
    assert [minor for minor, _ in expanded] == [
        0,
        POSITION_SLOT,
        2 * POSITION_SLOT,
        3 * POSITION_SLOT,
    ]
    assert [job for _, job in expanded] == [
        {**job_payload(job_id, job), "submitter": "tester"}
        for job_id, job in [*jobs, ("job_9", negative)]
    ]
