"""Running the upstream program: argument list, logs on disk, timeout, OOM detection, stop.

Each program starts in its own session (process group), so stopping it also stops what it
started (torchrun's workers).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from batchlog.runner.backend import BackendError, BackendOutOfMemoryError

LOG_TAIL_CHARS = 4000
OOM_PATTERN = re.compile(
    r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|"
    r"cudaErrorMemoryAllocation|CUDA error: out of memory",
    re.IGNORECASE,
)
# Killed by SIGKILL without our timeout: the kernel's OOM killer (host memory).
OOM_KILL_STATUSES: frozenset[int] = frozenset({-signal.SIGKILL, 128 + signal.SIGKILL})


class Programs:
    """Starts programs without a shell and keeps track of those still running."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(
        self,
        arguments: Sequence[str],
        *,
        folder: Path,
        timeout: float,
        cwd: Path | None,
        what: str,
    ) -> float:
        """Run to completion with stdout/stderr logged in `folder`; return its wall seconds.

        Raises BackendOutOfMemoryError when the exit status or the log shows out of memory,
        BackendError (with the log tail) on any other failure or past the timeout.
        """
        (folder / "command.txt").write_text("\n".join(arguments) + "\n", encoding="utf-8")
        stdout_path, stderr_path = folder / "stdout.log", folder / "stderr.log"
        started = time.monotonic()
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            try:
                process = subprocess.Popen(
                    list(arguments),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as error:
                raise BackendError(
                    f"cannot start {arguments[0]!r}: {error}; check BATCHLOG_COSMOS_COMMAND",
                    retryable=False,
                ) from error
            with self._lock:
                self._running.add(process)
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_group(process)
                raise BackendError(
                    f"cosmos-transfer ran past its {timeout:.0f}s limit for {what} and was "
                    f"stopped; logs in {folder}\n" + log_tail(stdout_path, stderr_path),
                    retryable=True,
                ) from None
            except BaseException:
                stop_group(process)
                raise
            finally:
                with self._lock:
                    self._running.discard(process)
        if status != 0:
            tail = log_tail(stdout_path, stderr_path)
            if status in OOM_KILL_STATUSES or OOM_PATTERN.search(tail):
                raise BackendOutOfMemoryError(
                    f"cosmos-transfer ran out of memory with {what} (exit status {status}); "
                    f"logs in {folder}\n{tail}"
                )
            raise BackendError(
                f"cosmos-transfer exited with status {status}; logs in {folder}\n{tail}",
                retryable=True,
            )
        return time.monotonic() - started

    def stop_all(self) -> None:
        """Stop every program still running."""
        with self._lock:
            running = list(self._running)
        for process in running:
            stop_group(process)


def log_tail(stdout_path: Path, stderr_path: Path) -> str:
    """The last characters of stderr and stdout, read from the end of the files."""
    parts = []
    for label, path in (("stderr", stderr_path), ("stdout", stdout_path)):
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_CHARS))
            text = handle.read().decode("utf-8", errors="replace")
        if text.strip():
            parts.append(f"--- {label} (tail) ---\n{text}")
    return "\n".join(parts) or "(no output on stdout or stderr)"


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the program and everything it started (torchrun workers share its group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10.0)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers that ignored SIGTERM
    except ProcessLookupError:
        return
    process.wait(timeout=5.0)
