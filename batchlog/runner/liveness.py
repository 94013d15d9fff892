"""How a runner keeps the log showing it alive: the item's lease while it works, its session's
lease otherwise.

A runner killed with SIGKILL records nothing more, so readers judge liveness by the age of the
last sign of life against the lease it promised (`batchlog.domain.runner_session`).
"""

from __future__ import annotations

import logging
import threading
import time

from batchlog.runner.ports import ClaimedItem, RunnerStore

logger = logging.getLogger("batchlog.runner")


class LeaseKeeper(threading.Thread):
    """Extends the lease every `interval` seconds until stopped or the claim is lost."""

    def __init__(
        self, store: RunnerStore, claimed: ClaimedItem, lease_seconds: float, interval: float
    ) -> None:
        super().__init__(name=f"lease-{claimed.item_id}", daemon=True)
        self._store = store
        self._claimed = claimed
        self._lease_seconds = lease_seconds
        self._interval = interval
        self._stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        """Extend until stopped; stop early when the store says the claim was superseded."""
        while not self._stopped.wait(self._interval):
            try:
                if not self._store.extend_lease(self._claimed, self._lease_seconds):
                    self.lost = True
                    logger.warning("lease of %s was lost", self._claimed.item_id)
                    return
            except Exception:
                logger.exception("extending the lease of %s failed", self._claimed.item_id)

    def stop(self) -> None:
        """Stop extending and wait for the thread."""
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


class SessionHeartbeat:
    """Renews the runner session's lease when nothing has shown the runner alive for `interval`.

    The runner calls it on idle steps and when a batch ends (that batch's lease stops counting
    once its outcome is recorded); while a batch runs, the lease keeper's extensions are the
    heartbeat, so a working runner adds no events for it.
    """

    def __init__(self, store: RunnerStore, lease_seconds: float, interval: float) -> None:
        self._store = store
        self._lease_seconds = lease_seconds
        self._interval = interval
        self._renewed = time.monotonic()

    def restart(self) -> None:
        """The session was just announced (with its first heartbeat)."""
        self._renewed = time.monotonic()

    def seconds_until_due(self) -> float:
        """How long an idle runner may wait before its next heartbeat."""
        return self._renewed + self._interval - time.monotonic()

    def beat_if_due(self) -> None:
        """Record a heartbeat when the last one is `interval` old."""
        if self.seconds_until_due() <= 0:
            self._store.renew_session(self._lease_seconds)
            self._renewed = time.monotonic()

    def beat_if_due_or_log(self) -> None:
        """The same, where a failure must not stop what follows (recording a batch's outcome)."""
        try:
            self.beat_if_due()
        except Exception:
            logger.exception("recording the runner's heartbeat failed")
