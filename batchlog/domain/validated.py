"""What job validation takes in and gives out, as plain data.

Apart from `config` (which validates with pydantic), so that the aggregates, and a process that
only folds their events (a rebuild worker), import no validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchlog.domain.jobs import Run


@dataclass(frozen=True)
class PromptFacts:
    """What job validation needs to know of a prompt."""

    prompt_id: str
    negative_prompt: str
    control_inputs: Mapping[str, str]


@dataclass(frozen=True)
class ValidatedJob:
    """A job that passed validation: its normalized config and its runs."""

    job_type: str
    prompt_ids: tuple[str, ...]
    config: dict[str, Any]
    runs: tuple[Run, ...]
    options: dict[str, Any]
    priority: int
