"""The Prompt aggregate: a prompt's text, input video, per-control inputs and negative prompt."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from batchlog.domain.ids import prompt_aggregate_id
from batchlog.domain.validated import PromptFacts


class Prompt(Aggregate):
    """A registered prompt, referenced by jobs through its public id."""

    TOPIC = "batchlog.prompt:Prompt"

    class Event(Aggregate.Event):
        """Base class of the prompt's events."""

        TOPIC = "batchlog.prompt:Prompt.Event"

    class Created(Event, Aggregate.Created):
        """A prompt was registered."""

        TOPIC = "batchlog.prompt:Prompt.PromptCreated"
        class_version = 1
        prompt_id: str
        text: str
        input_video: str
        control_inputs: dict[str, str]
        negative_prompt: str
        actor: str

    @staticmethod
    def create_id(prompt_id: str, **_: object) -> UUID:
        """Prompt aggregate ids are derived from the public prompt id."""
        return prompt_aggregate_id(prompt_id)

    @event(Created)
    def __init__(
        self,
        prompt_id: str,
        text: str,
        input_video: str,
        control_inputs: dict[str, str],
        negative_prompt: str,
        actor: str,
    ) -> None:
        self.prompt_id = prompt_id
        self.text = text
        self.input_video = input_video
        self.control_inputs = dict(control_inputs)
        self.negative_prompt = negative_prompt
        self.actor = actor

    def facts(self) -> PromptFacts:
        """What job validation needs of this prompt."""
        return PromptFacts(self.prompt_id, self.negative_prompt, dict(self.control_inputs))
