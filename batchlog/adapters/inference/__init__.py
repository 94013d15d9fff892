"""Concrete inference backends and the registry that builds one by name."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from batchlog.runner.backend import InferenceBackend

# name -> "module:factory"; factories take keyword options (device, artifacts_dir, ...).
BACKENDS: dict[str, str] = {
    "torch": "batchlog.adapters.inference.torch_backend:create_backend",
    "cosmos-transfer": "batchlog.adapters.inference.cosmos_transfer:create_backend",
}


def create_backend(name: str, **options: Any) -> InferenceBackend:
    """Build the backend registered under this name."""
    try:
        target = BACKENDS[name]
    except KeyError:
        from batchlog.domain.errors import ValidationError

        raise ValidationError(
            "backend", f"{name!r} is unknown; allowed: {', '.join(BACKENDS)}"
        ) from None
    module_name, factory_name = target.split(":")
    factory: Callable[..., InferenceBackend] = getattr(import_module(module_name), factory_name)
    return factory(**options)
