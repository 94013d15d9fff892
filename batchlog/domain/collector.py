"""Pausing CPython's cyclic garbage collector around work whose allocations all survive."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; nesting is fine.

    A plan or a rebuild allocates objects that all survive until it ends, so each collection
    would rescan all of them for nothing (half the analysis time at 100k runs, ~15% of a
    rebuild). Only the outermost pause turns the collector back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
