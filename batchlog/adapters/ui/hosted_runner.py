"""A runner hosted in the UI's process (`batchlog ui --with-runner`), on its own thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

SHOWN_EVENTS = 6


class HostedRunner:
    """Runs `Runner.run(stop_event=...)` on a daemon thread and remembers what it last reported."""

    def __init__(self, runner: Any, *, join_seconds: float = 30.0) -> None:
        self.runner = runner
        self.join_seconds = join_seconds
        self.stop_event = threading.Event()
        self.events: deque[Any] = deque(maxlen=SHOWN_EVENTS)
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="batchlog-runner", daemon=True)

    def start(self) -> None:
        """Start the runner thread."""
        self._thread.start()

    def _record(self, progress: Any) -> None:
        self.events.append(progress)

    def _run(self) -> None:
        run: Callable[..., Any] = self.runner.run
        try:
            self.summary = run(
                until_idle=False, stop_event=self.stop_event, on_progress=self._record
            )
        except Exception as error:  # the UI keeps serving; the tab shows what went wrong
            self.error = f"{type(error).__name__}: {error}"

    def describe(self) -> str:
        """Markdown for the Runners tab: the runner's state and its latest progress reports."""
        runner_id = getattr(self.runner, "runner_id", "hosted runner")
        if self.error:
            head = f"Hosted runner **{runner_id}** stopped: {self.error}"
        elif self._thread.is_alive():
            head = f"Hosted runner **{runner_id}** is running."
        elif self.summary is not None:
            head = f"Hosted runner **{runner_id}** has stopped."
        else:
            head = f"Hosted runner **{runner_id}** has not started."
        lines = [f"- {_event_text(event)}" for event in reversed(self.events)]
        return "\n".join([head, "", "Latest reports (newest first):", *lines] if lines else [head])

    def stop(self) -> None:
        """Ask the runner to stop, wait for it (bounded), then close it."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(self.join_seconds)
        self.runner.close()


def _event_text(progress: Any) -> str:
    if isinstance(progress, dict):
        details = " ".join(f"{k}={v}" for k, v in progress.items() if k != "event")
        return f"{progress.get('event', 'progress')} {details}".rstrip()
    return str(progress)
