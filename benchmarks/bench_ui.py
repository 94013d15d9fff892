"""UI benchmark: how long a click takes to show its result in the page, next to the service call.

    PYTHONPATH=. python benchmarks/bench_ui.py [--jobs 40] [--rounds 10] [--postgres URL]

Serves the UI in this process on a free 127.0.0.1 port, opens it in headless Debian chromium,
and measures, for Analyze and for Add job: click -> the page shows the new result (polled every
5 ms), against the same QueueService call made directly in the same run. The difference is
what Gradio, the browser and one refresh of the page cost on top of the queue itself; the
queue's own figures are in the other benchmarks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from batchlog import QueueService  # noqa: E402
from batchlog.adapters.migrations import migrate  # noqa: E402
from batchlog.adapters.settings import Settings  # noqa: E402
from tests.acceptance.browser import chromium, field, local_page, serve_ui, text_of  # noqa: E402


def _until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not update")
        time.sleep(0.005)


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms  max {max(samples) * 1000:7.1f} ms"


def main() -> None:
    """Run the benchmark and print the figures side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--postgres", default=None, help="a migrated PostgreSQL database URL")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="batchlog-bench-ui-"))
    url = args.postgres or f"sqlite:///{folder / 'bench.sqlite3'}"
    migrate(url)
    settings = Settings.from_environment({"BATCHLOG_DATA_DIR": str(folder), "BATCHLOG_ACTOR": "b"})
    service = QueueService(url, settings=settings)
    prompt = service.create_prompt("a red ball rolls", "scene.mp4", {"depth": "d.mp4"})
    for index in range(args.jobs):
        weights = {"vis": 0.5, "depth": 0.3} if index % 2 else {"vis": 0.5}
        service.add_job([prompt], config={"weights": weights, "seed": index})
    service.set_queue_paused(True)

    direct_analyze, direct_add = [], []
    for _ in range(args.rounds):
        began = time.perf_counter()
        service.analyze_queue_for_smart_batching(mix_controls=True)
        direct_analyze.append(time.perf_counter() - began)
        began = time.perf_counter()
        job = service.add_job([prompt], config={"weights": {"vis": 0.5}})
        direct_add.append(time.perf_counter() - began)
        service.cancel_job(job)

    page_analyze, page_add = [], []
    with chromium() as browser, serve_ui(service, refresh_seconds=2.0) as address:
        outside: list[str] = []
        with local_page(browser, outside) as page:
            page.goto(address)
            _until(lambda: "PAUSED" in text_of(page, "bl-status-line"))
            field(page, "bl-prompt-ids").fill(prompt)
            field(page, "bl-weight-vis").fill("0.5")
            for _ in range(args.rounds):
                before = text_of(page, "bl-analysis-note")
                began = time.perf_counter()
                page.click("#bl-analyze")
                _until(lambda b=before: "is fresh" in text_of(page, "bl-analysis-note") != b)
                page_analyze.append(time.perf_counter() - began)
                known = {j["id"] for j in service.get_queue_status()["queued_jobs"]}
                began = time.perf_counter()
                page.click("#bl-add-job")

                def added(known: set[str] = known) -> bool:
                    new = {j["id"] for j in service.get_queue_status()["queued_jobs"]} - known
                    return bool(new) and next(iter(new)) in text_of(page, "bl-queue")

                _until(added)
                page_add.append(time.perf_counter() - began)
        assert not outside, outside
    service.close()
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"UI round trips, {store}, {args.jobs} queued jobs, {args.rounds} rounds each")
    print(f"  analyze (mixed), service call : {_ms(direct_analyze)}")
    print(f"  analyze (mixed), click->page  : {_ms(page_analyze)}")
    print(f"  add job, service call         : {_ms(direct_add)}")
    print(f"  add job, click->row in table  : {_ms(page_add)}")
    ratio = statistics.median(page_analyze) / statistics.median(direct_analyze)
    print(f"  page/service ratio (analyze)  : {ratio:.1f}x")


if __name__ == "__main__":
    main()
