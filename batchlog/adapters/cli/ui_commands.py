"""`batchlog ui`: serve the web UI, on 127.0.0.1 unless credentials protect it."""

from __future__ import annotations

import ipaddress
import os
import signal
from typing import Any

import typer

from batchlog.adapters.cli.app import DatabaseOption, QueueOption, app, console, user_errors
from batchlog.adapters.queue_service import QueueService
from batchlog.adapters.settings import Settings
from batchlog.domain.errors import BatchlogError, ValidationError


class UnprotectedBindError(BatchlogError):
    """Refusing to serve the UI on a network address without credentials."""


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(text: str, field: str) -> tuple[str, str]:
    """Split 'user:password' (both parts non-empty)."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValidationError(field, "must be user:password, both non-empty")
    return user, password


def resolve_auth(host: str, auth_flag: str | None, settings: Settings) -> tuple[str, str] | None:
    """The credentials to require, or None on loopback; refuse a network bind without any."""
    if auth_flag:
        return parse_auth(auth_flag, "--auth")
    if settings.ui_auth:
        return parse_auth(settings.ui_auth, "BATCHLOG_UI_AUTH")
    if is_loopback(host):
        return None
    raise UnprotectedBindError(
        f"Refusing to serve the UI on {host} without credentials: anyone who can reach it "
        "could pause, reorganize or cancel the queue. Pass --auth user:password or set "
        "BATCHLOG_UI_AUTH=user:password, or bind to 127.0.0.1."
    )


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM stops the server like Ctrl-C does, so the hosted runner is stopped cleanly."""
    raise KeyboardInterrupt(f"signal {signum}")


def _hosted_runner(settings: Settings, queue_name: str, backend: str, device: str) -> Any:
    from batchlog.adapters.bootstrap import build_runner
    from batchlog.adapters.ui.hosted_runner import HostedRunner

    runner = build_runner(
        settings.database_url,
        backend_name=backend,
        device=device,
        artifacts_dir=settings.data_dir / "artifacts",
        queue_name=queue_name,
        settings=settings,
    )
    return HostedRunner(runner)


@app.command("ui")
def ui_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (default: local only)"),
    port: int = typer.Option(7860, "--port", help="TCP port"),
    auth: str | None = typer.Option(
        None, "--auth", help="user:password (default: BATCHLOG_UI_AUTH); needed off loopback"
    ),
    with_runner: bool = typer.Option(
        False, "--with-runner", help="Host a runner in this process (single-machine use)"
    ),
    backend: str = typer.Option("torch", "--backend", help="Backend of the hosted runner"),
    device: str = typer.Option("cpu", "--device", help="Device of the hosted runner"),
    refresh: float = typer.Option(2.0, "--refresh", help="Seconds between live refreshes"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
) -> None:
    """Serve the web UI: queue, smart batching, runners, history and results."""
    with user_errors():
        settings = Settings.from_environment().with_database_url(database_url)
        credentials = resolve_auth(host, auth, settings)
        if not 0 < port < 65536:
            raise ValidationError("--port", f"is {port}; allowed: 1 to 65535")
        if not 0.2 <= refresh <= 3600:
            raise ValidationError("--refresh", f"is {refresh}; allowed: 0.2 to 3600 seconds")
        queue_service = QueueService(queue_name=queue, settings=settings)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is first imported
    from batchlog.adapters.ui.app import build_app, launch

    hosted = None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with user_errors():
            if with_runner:
                hosted = _hosted_runner(settings, queue_service.queue_name, backend, device)
                hosted.start()
            ui = build_app(queue_service, refresh_seconds=refresh, hosted_runner=hosted)
            console.print(
                f"Serving batchlog UI for queue {queue_service.queue_name!r} on http://{host}:{port}"
                + (" (login required)" if credentials else "")
            )
            try:
                launch(
                    ui,
                    host=host,
                    port=port,
                    auth=credentials,
                    allowed_paths=[str(settings.data_dir / "artifacts")],
                )
            except OSError as error:
                raise BatchlogError(f"Cannot serve on {host}:{port}: {error}") from None
    finally:
        if hosted is not None:
            hosted.stop()
        queue_service.close()
