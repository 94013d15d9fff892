"""A runner hosted in the UI's process (`batchlog ui --with-runner`), on its own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class HostedRunner:
    """Runs `Runner.run(stop_event=...)` on a daemon thread and remembers what it last said."""

    def __init__(self, runner: Any, *, join_seconds: float = 30.0) -> None:
        self.runner = runner
        self.join_seconds = join_seconds
        self.stop_event = threading.Event()
        self.last_progress: Any = None
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="batchlog-runner", daemon=True)

    def start(self) -> None:
        """Start the runner thread."""
        self._thread.start()

    def _record(self, progress: Any) -> None:
        self.last_progress = progress

    def _run(self) -> None:
        run: Callable[..., Any] = self.runner.run
        try:
            self.summary = run(
                until_idle=False, stop_event=self.stop_event, on_progress=self._record
            )
        except Exception as error:  # the UI keeps serving; the tab shows what went wrong
            self.error = f"{type(error).__name__}: {error}"

    def describe(self) -> str:
        """One line for the Runners tab."""
        runner_id = getattr(self.runner, "runner_id", "hosted runner")
        if self.error:
            return f"Hosted runner **{runner_id}** stopped: {self.error}"
        if not self._thread.is_alive() and self.summary is not None:
            return f"Hosted runner **{runner_id}** finished: {self.summary}"
        state = "running" if self._thread.is_alive() else "not started"
        return f"Hosted runner **{runner_id}** is {state}{_progress_text(self.last_progress)}"

    def stop(self) -> None:
        """Ask the runner to stop, wait for it (bounded), then close it."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(self.join_seconds)
        self.runner.close()


def _progress_text(progress: Any) -> str:
    if not progress:
        return ""
    if isinstance(progress, dict):
        details = ", ".join(f"{k}={v}" for k, v in progress.items() if k != "event")
        return f"; last: {progress.get('event', 'progress')} {details}".rstrip()
    return f"; last: {progress}"
