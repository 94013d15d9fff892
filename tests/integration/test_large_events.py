"""Large events on PostgreSQL: a plan of ~100k runs makes an Analyzed event of over 10 MB, which
eventsourcing's pipelined insert never finished saving (it hung holding the table lock)."""

from __future__ import annotations

import pytest

from batchlog import QueueService
from batchlog.adapters.settings import Settings


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_an_event_of_twelve_megabytes_is_saved_and_read_back(
    postgres_url: str, settings: Settings
) -> None:
    text = "a long prompt " * 900_000
    with QueueService(postgres_url, settings=settings) as service:
        prompt_id = service.create_prompt(text)
        small = service.create_prompt("a short prompt")
    with QueueService(postgres_url, settings=settings) as fresh:
        assert fresh.get_prompt(prompt_id).text == text
        assert fresh.get_prompt(small).text == "a short prompt"
