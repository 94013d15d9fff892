"""A rebuild worker process, started by `workers.WORKER_BOOTSTRAP` (which first sets the
caller's sys.path from stdin).

Reads (task, database URL, part) as a pickle on stdin, runs the task and writes ("ok", result)
or ("error", exception) as one pickle to the stdout it was given; what the task itself prints
goes to stderr.
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> None:
    """Run the task sent on stdin and send its outcome back."""
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    task, database_url, part = pickle.load(sys.stdin.buffer)
    from batchlog.adapters.views.workers import work

    with results:
        pickle.dump(work(task, database_url, part), results)
