"""Helpers for QueueService integration tests on real stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batchlog import QueueService
from batchlog.domain.ids import new_claim_token

VED = {"vis": 0.5, "edge": 0.3, "depth": 0.2}


def prompts(service: QueueService, n: int) -> list[str]:
    """Create n prompts with depth and seg inputs."""
    return [
        service.create_prompt(
            f"a scene {i}",
            input_video=f"video_{i}.mp4",
            control_inputs={"depth": "d.png", "seg": "s.png"},
        )
        for i in range(n)
    ]


def queue_guide_jobs(service: QueueService) -> list[str]:
    """The guide's example queue: 8 runs from 5 jobs."""
    p = prompts(service, 8)
    return [
        service.add_job(p[0:2], config={"weights": VED}),
        service.add_job(p[2:4], config={"weights": {"vis": 0.3, "edge": 0.5, "depth": 0.2}}),
        service.add_job(p[4:6], config={"weights": {"vis": 0.5, "depth": 0.5}}),
        service.add_job(p[6:7], config={"weights": {"vis": 0.7, "depth": 0.3, "edge": 0.0}}),
        service.add_job(p[7:8], config={"weights": {"edge": 0.4, "seg": 0.6}}),
    ]


def claim_directly(service: QueueService, job_id: str, runner_id: str = "runner-test") -> str:
    """Append an ItemClaimed for a job, as a runner would; returns the claim token."""
    token = new_claim_token()
    now = datetime.now(UTC)

    def command(queue):
        queue.claim(job_id, runner_id, token, now, now + timedelta(seconds=30))

    service._command(command, retry=False)
    return token
