"""Composition root for runners: a Runner wired to an event store, a waiter and a backend.

The CLI, the demo and the UI build runners here, so they all agree on defaults.
"""

from __future__ import annotations

import os
import socket
import uuid
from importlib import import_module
from pathlib import Path
from typing import Any

from batchlog.adapters.execution_service import ExecutionService
from batchlog.adapters.inference import create_backend
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import open_store
from batchlog.adapters.wakeup import waiter_for
from batchlog.domain.errors import ValidationError
from batchlog.runner.backend import InferenceBackend
from batchlog.runner.loop import Runner, RunnerConfig

DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "auto")


def default_runner_id() -> str:
    """A runner id that names the host and process: host:pid:xxxx."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def check_device(device: str) -> str:
    """Accept cpu, cuda, cuda:N or auto; refuse anything else naming the allowed values."""
    if device in ("cpu", "cuda", "auto"):
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise ValidationError("device", f"{device!r} is unknown; allowed: {', '.join(DEVICE_CHOICES)}")


def load_backend(name: str, **options: Any) -> InferenceBackend:
    """A registered backend by name, or `module:factory` for a backend outside the package."""
    if ":" in name:
        module_name, _, factory_name = name.partition(":")
        try:
            factory = getattr(import_module(module_name), factory_name)
        except (ImportError, AttributeError) as error:
            raise ValidationError("backend", f"cannot import {name!r}: {error}") from None
        backend: InferenceBackend = factory(**options)
        return backend
    return create_backend(name, **options)


def build_runner(
    database_url: str | None,
    backend_name: str = "torch",
    device: str = "cpu",
    artifacts_dir: str | Path | None = None,
    runner_id: str | None = None,
    lease_seconds: float = 30,
    max_attempts: int = 3,
    queue_name: str | None = None,
    *,
    backend: InferenceBackend | None = None,
    backoff_seconds: float = 1.0,
    grace_seconds: float = 30.0,
    poll_seconds: float = 1.0,
    max_batch_seconds: float | None = None,
    settings: Settings | None = None,
) -> Runner:
    """A Runner for the queue behind a database URL; call `run()`, then `close()`."""
    base = (settings or Settings.from_environment()).with_database_url(database_url)
    if lease_seconds <= 0:
        raise ValidationError("lease_seconds", f"is {lease_seconds}; must be > 0")
    if max_attempts < 1:
        raise ValidationError("max_attempts", f"is {max_attempts}; must be >= 1")
    if max_batch_seconds is not None and max_batch_seconds <= 0:
        raise ValidationError("max_batch_seconds", f"is {max_batch_seconds}; must be > 0")
    artifacts = Path(artifacts_dir) if artifacts_dir else base.data_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    chosen = backend or load_backend(
        backend_name, device=check_device(device), artifacts_dir=artifacts
    )
    store = open_store(base.database_url)
    try:
        service = ExecutionService(
            store,
            queue_name or base.queue_name,
            runner_id or default_runner_id(),
            artifacts,
            waiter_for(base.database_url, store, poll_seconds=min(0.2, poll_seconds)),
        )
    except BaseException:
        store.close()
        raise
    config = RunnerConfig(
        lease_seconds=float(lease_seconds),
        max_attempts=int(max_attempts),
        backoff_seconds=float(backoff_seconds),
        poll_seconds=float(poll_seconds),
        grace_seconds=float(grace_seconds),
        max_batch_seconds=None if max_batch_seconds is None else float(max_batch_seconds),
    )
    return Runner(service, chosen, config, device=device)
