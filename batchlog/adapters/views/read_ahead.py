"""Reading the log one page ahead: the next page is fetched while the caller folds this one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Page = Sequence[Any]


class ReadAhead:
    """Pages of the log by start position; `ahead(start)` begins reading one in a thread.

    Off (`ahead` does nothing) unless enabled: only for PostgreSQL, where the read waits on the
    server; an SQLite read is in-process work, and a second thread would only contend for locks.
    """

    def __init__(self, read: Callable[[int], Page], *, enabled: bool = True) -> None:
        self._read = read
        self._enabled = enabled
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[Page]] | None = None

    def page(self, start: int) -> Page:
        """The page after `start`: the one read ahead if it was for this start, else read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead[0] == start:
                return ahead[1].result()
            ahead[1].cancel()
        return self._read(start)

    def ahead(self, start: int) -> None:
        """Start reading the page after `start` (the thread is made on first use)."""
        if not self._enabled:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchlog-read")
        self._ahead = (start, self._pool.submit(self._read, start))

    def close(self) -> None:
        """Stop the reading thread (waits for a read in progress)."""
        self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
