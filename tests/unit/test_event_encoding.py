"""The job-add events written by orjson read back exactly as eventsourcing's own encoding does."""

from __future__ import annotations

import json
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Mapper

from batchlog.adapters.event_encoding import JobEventMapper
from batchlog.domain.config import PromptFacts, validate_job
from batchlog.domain.queue import Queue

PROMPTS = {"p0": PromptFacts("p0", "", {}), "p1": PromptFacts("p1", "no blur", {})}


def _mappers() -> tuple[Mapper[Any], JobEventMapper]:
    transcoder = Application[Any]().mapper.transcoder  # eventsourcing's, with its transcodings
    assert isinstance(transcoder, JSONTranscoder)
    return Mapper(transcoder=transcoder), JobEventMapper(transcoder=transcoder)


def _queue_with_adds() -> Queue:
    queue = Queue(name="unit")
    config = {"weights": {"vis": 0.25, "edge": 1e-7}, "guidance": 7.5, "seed": 2**63 - 1}
    jobs = [
        (f"job_{n}", validate_job(f"job_{n}", ["p0", "p1"], "inference", config, 50, PROMPTS))
        for n in range(3)
    ]
    queue.add_jobs(jobs[:1], "Zoë ✓")
    queue.add_jobs(jobs[1:], "Zoë ✓")
    queue.set_paused(True, "Zoë ✓", "for the test")
    return queue


def test_job_add_events_decode_to_the_same_event_and_the_same_json() -> None:
    standard, fast = _mappers()
    events = _queue_with_adds().collect_events()
    added = [e for e in events if isinstance(e, Queue.JobAdded | Queue.JobsAdded)]
    assert len(added) == 2
    for event in added:
        mine, theirs = fast.to_stored_event(event), standard.to_stored_event(event)
        assert (mine.originator_id, mine.originator_version, mine.topic) == (
            theirs.originator_id,
            theirs.originator_version,
            theirs.topic,
        )
        assert json.loads(mine.state) == json.loads(theirs.state)
        assert vars(standard.to_domain_event(mine)) == vars(event)


def test_other_events_and_what_orjson_refuses_keep_eventsourcings_encoding() -> None:
    standard, fast = _mappers()
    events = _queue_with_adds().collect_events()
    paused = [e for e in events if isinstance(e, Queue.Paused)]
    assert [fast.to_stored_event(e).state for e in paused] == [
        standard.to_stored_event(e).state for e in paused
    ]
    (single,) = [e for e in events if isinstance(e, Queue.JobAdded)]
    object.__setattr__(single, "priority", 2**70)  # more than orjson's 64-bit integers
    assert fast.to_stored_event(single).state == standard.to_stored_event(single).state
