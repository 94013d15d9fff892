"""Settings: the only place that reads the process environment, once, when asked."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where the queue lives and who is acting."""

    database_url: str
    data_dir: Path
    queue_name: str
    actor: str
    ui_auth: str | None = None
    cosmos_command: str | None = None
    cosmos_checkpoint_dir: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read BATCHLOG_* variables (the process environment by default)."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("BATCHLOG_DATA_DIR") or _default_data_dir(env)).expanduser()
        url = env.get("BATCHLOG_DATABASE_URL") or f"sqlite:///{data_dir / 'batchlog.sqlite3'}"
        return cls(
            database_url=url,
            data_dir=data_dir,
            queue_name=env.get("BATCHLOG_QUEUE") or "default",
            actor=env.get("BATCHLOG_ACTOR") or _default_actor(),
            ui_auth=env.get("BATCHLOG_UI_AUTH") or None,
            cosmos_command=env.get("BATCHLOG_COSMOS_COMMAND") or None,
            cosmos_checkpoint_dir=env.get("BATCHLOG_COSMOS_CHECKPOINT_DIR") or None,
        )

    def with_database_url(self, url: str | None) -> Settings:
        """The same settings with another database URL (None keeps this one)."""
        return self if url is None else replace(self, database_url=url)


def _default_data_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or "~") / ".local" / "share")
    return str(Path(base) / "batchlog")


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
