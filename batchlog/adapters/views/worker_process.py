"""A rebuild worker process, started by `workers.WORKER_BOOTSTRAP` (which first sets the
caller's sys.path from stdin).

Reads (task, database URL, part) as a pickle on stdin, runs the task and writes ("ok", result)
or ("error", exception) as one pickle to the file descriptor it was given.
"""

from __future__ import annotations

import os
import pickle
import sys


def main(results_fd: int) -> None:
    """Run the task sent on stdin and send its outcome back on `results_fd`."""
    from batchlog.adapters.views.workers import outcome_bytes, work

    task, database_url, part = pickle.load(sys.stdin.buffer)
    sent = outcome_bytes(work(task, database_url, part))  # whole, before a byte is written
    with os.fdopen(results_fd, "wb") as results:
        results.write(sent)
