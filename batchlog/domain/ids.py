"""Identifier types and how they are made (outside event methods, so replays never mint new ids)."""

from __future__ import annotations

import secrets
import uuid
from typing import NewType

JobId = NewType("JobId", str)
PromptId = NewType("PromptId", str)
RunId = NewType("RunId", str)
AnalysisId = NewType("AnalysisId", str)
RunnerId = NewType("RunnerId", str)
ClaimToken = NewType("ClaimToken", str)

_QUEUE_NAMESPACE = uuid.UUID("6f1d3c52-8a8e-4d0e-9c1b-5b7a2f0d9e11")
_PROMPT_NAMESPACE = uuid.UUID("0b8f0a9e-3c4d-4e21-9a57-1f2e3d4c5b6a")


def queue_aggregate_id(queue_name: str) -> uuid.UUID:
    """The stable aggregate id of the queue with this name."""
    return uuid.uuid5(_QUEUE_NAMESPACE, queue_name)


def prompt_aggregate_id(prompt_id: str) -> uuid.UUID:
    """The stable aggregate id of the prompt with this public id."""
    return uuid.uuid5(_PROMPT_NAMESPACE, prompt_id)


def new_job_id() -> JobId:
    """A fresh job id."""
    return JobId(f"job_{secrets.token_hex(8)}")


def new_batch_job_id() -> JobId:
    """A fresh id for a batch job created by a reorganization."""
    return JobId(f"batch_{secrets.token_hex(8)}")


def new_prompt_id() -> PromptId:
    """A fresh prompt id."""
    return PromptId(f"ps_{secrets.token_hex(8)}")


def new_analysis_id() -> AnalysisId:
    """A fresh analysis id."""
    return AnalysisId(f"an_{secrets.token_hex(8)}")


def new_claim_token() -> ClaimToken:
    """A fresh claim token."""
    return ClaimToken(uuid.uuid4().hex)


def run_id_for(job_id: str, index: int) -> RunId:
    """The id of the index-th run (one prompt) of a job."""
    return RunId(f"{job_id}:{index}")
