"""Tasks for run_side_by_side's tests: module-level, so that a worker process can import them."""

from __future__ import annotations

import os


def print_then_answer(database_url: str, part: dict[str, int]) -> str:
    """Writes to stdout (which must not garble the result) and answers with its part's name."""
    print("noise from the task", flush=True)
    return ",".join(part)


def die_in_a_worker(database_url: str, part: dict[str, int]) -> str:
    """Answers in the calling process; a worker running it exits at once, sending nothing."""
    if "caller" not in part:
        os._exit(3)
    return "caller"
