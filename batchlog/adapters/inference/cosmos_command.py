"""The Cosmos-Transfer command template: parsed once, checked, rendered per invocation.

The template is a list of arguments; each argument may hold placeholders such as `{spec}`.
Rendering substitutes values inside single arguments, so user text (prompts, negative
prompts) can never become extra arguments or shell syntax: the command runs without a shell.
"""

from __future__ import annotations

import json
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batchlog.domain.errors import ValidationError

PLACEHOLDERS: tuple[str, ...] = (
    "spec",
    "batch_jsonl",
    "out_dir",
    "batch_size",
    "num_gpus",
    "checkpoint_dir",
    "num_steps",
    "guidance",
    "sigma_max",
    "seed",
    "fps",
    "blur_strength",
    "canny_threshold",
    "negative_prompt",
    "width",
    "height",
    "frames",
)
REQUIRED_PLACEHOLDERS: tuple[str, ...] = ("spec", "batch_jsonl", "out_dir")

# Upstream transfer.py lets a command-line flag win over the same key in the spec, so a flag
# in the template must carry the batch's own value (its placeholder), never a literal.
FLAG_PLACEHOLDERS: Mapping[str, str] = {
    "--controlnet_specs": "spec",
    "--batch_input_path": "batch_jsonl",
    "--video_save_folder": "out_dir",
    "--batch_size": "batch_size",
    "--num_gpus": "num_gpus",
    "--checkpoint_dir": "checkpoint_dir",
    "--num_steps": "num_steps",
    "--guidance": "guidance",
    "--sigma_max": "sigma_max",
    "--seed": "seed",
    "--fps": "fps",
    "--blur_strength": "blur_strength",
    "--canny_threshold": "canny_threshold",
    "--negative_prompt": "negative_prompt",
}

EXAMPLE_TEMPLATE = (
    "torchrun --nproc_per_node={num_gpus} cosmos_transfer1/diffusion/inference/transfer.py "
    "--checkpoint_dir {checkpoint_dir} --controlnet_specs {spec} "
    "--batch_input_path {batch_jsonl} --video_save_folder {out_dir} "
    "--batch_size {batch_size} --num_gpus {num_gpus}"
)


@dataclass(frozen=True)
class CommandTemplate:
    """A checked argument-list template for one upstream invocation."""

    arguments: tuple[str, ...]

    @classmethod
    def parse(cls, command: str | Sequence[str]) -> CommandTemplate:
        """Accept a list of arguments, a JSON array, or a POSIX-quoted string; check it."""
        arguments = _split(command)
        _check(arguments)
        return cls(arguments)

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholder names this template uses."""
        return frozenset(name for argument in self.arguments for name in _names(argument))

    def render(self, values: Mapping[str, object]) -> list[str]:
        """The argument list with every placeholder replaced by its value (as text)."""
        text_values = {name: _as_text(value) for name, value in values.items()}
        return [argument.format_map(text_values) for argument in self.arguments]


def _split(command: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(command, str):
        stripped = command.strip()
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise ValidationError(
                    "cosmos_command", f"looks like a JSON array but is not valid JSON: {error}"
                ) from None
            if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
                raise ValidationError("cosmos_command", "a JSON command must be a list of strings")
            return tuple(parsed)
        try:
            return tuple(shlex.split(stripped))
        except ValueError as error:
            raise ValidationError(
                "cosmos_command", f"cannot be split into arguments: {error}"
            ) from None
    if not all(isinstance(argument, str) for argument in command):
        raise ValidationError("cosmos_command", "every argument must be a string")
    return tuple(command)


def _names(argument: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(argument))
    except ValueError as error:
        raise ValidationError(
            "cosmos_command",
            f"argument {argument!r} has unbalanced braces ({error}); write {{{{ and }}}} for literal braces",
        ) from None
    return [name for _, name, _, _ in parsed if name is not None]


def _check(arguments: tuple[str, ...]) -> None:
    if not arguments:
        raise ValidationError("cosmos_command", f"is empty; e.g. {EXAMPLE_TEMPLATE}")
    used: set[str] = set()
    for argument in arguments:
        for name in _names(argument):
            if name not in PLACEHOLDERS:
                raise ValidationError(
                    "cosmos_command",
                    f"unknown placeholder {{{name}}}; allowed: "
                    + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
                )
            used.add(name)
    missing = [name for name in REQUIRED_PLACEHOLDERS if name not in used]
    if missing:
        raise ValidationError(
            "cosmos_command", f"must use {{{missing[0]}}}; e.g. {EXAMPLE_TEMPLATE}"
        )
    for index, argument in enumerate(arguments):
        flag, equals, inline_value = argument.partition("=")
        if flag not in FLAG_PLACEHOLDERS:
            continue
        value = inline_value if equals else _next(arguments, index)
        expected = "{" + FLAG_PLACEHOLDERS[flag] + "}"
        if value != expected:
            raise ValidationError(
                "cosmos_command",
                f"{flag} must be given as {flag} {expected}, not {value!r}: upstream lets a "
                "command-line flag override the batch's own value from the spec",
            )


def _next(arguments: tuple[str, ...], index: int) -> str | None:
    return arguments[index + 1] if index + 1 < len(arguments) else None


def _as_text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
