"""The `batchlog` command line: one typer app; each command group lives in its own module."""

from __future__ import annotations

from batchlog.adapters.cli import (
    bench_commands,  # noqa: F401  (registers commands)
    demo_commands,  # noqa: F401  (registers `demo`)
    projection_commands,  # noqa: F401  (registers commands)
    queue_commands,  # noqa: F401  (registers commands)
    runner_commands,  # noqa: F401  (registers commands)
    ui_commands,  # noqa: F401  (registers commands)
)
from batchlog.adapters.cli.app import app


def main() -> None:
    """Entry point of the `batchlog` console script."""
    app()


__all__ = ["app", "main"]
