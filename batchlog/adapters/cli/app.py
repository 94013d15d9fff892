"""The typer app, shared options, and the one place user errors become exit codes."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.errors import BatchlogError

app = typer.Typer(
    name="batchlog",
    help="Event-sourced job queue for GPU video inference with Smart Batching.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True)

DatabaseOption = typer.Option(
    None,
    "--database-url",
    "-d",
    help="sqlite:///file or postgresql://...; default: BATCHLOG_DATABASE_URL or the data folder",
)
QueueOption = typer.Option(
    None, "--queue", "-q", help="Queue name (default: BATCHLOG_QUEUE or 'default')"
)
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts")

EXIT_USER_ERROR = 1


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a BatchlogError as one readable line and exit non-zero, without a traceback."""
    try:
        yield
    except BatchlogError as error:
        error_console.print(f"Error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


@contextlib.contextmanager
def service(database_url: str | None, queue: str | None) -> Iterator[QueueService]:
    """A QueueService for one command, closed afterwards; user errors become exit codes."""
    with user_errors():
        queue_service = QueueService(
            database_url, queue_name=queue, settings=Settings.from_environment()
        )
        try:
            yield queue_service
        finally:
            queue_service.close()


def print_json(value: Any) -> None:
    """Write a value as JSON to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
