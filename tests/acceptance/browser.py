"""Helpers for the browser tests: serve the UI on a free loopback port, drive headless chromium."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_ui(service, refresh_seconds: float = 0.5, hosted_runner=None) -> Iterator[str]:
    """Serve the UI for a service on a free loopback port in this process; yield its URL."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from batchlog.adapters.ui.app import build_app, launch

    ui = build_app(service, refresh_seconds=refresh_seconds, hosted_runner=hosted_runner)
    port = free_port()
    launch(ui, host="127.0.0.1", port=port, block=False, allowed_paths=["/tmp"])
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        ui.blocks.close()


@contextmanager
def chromium() -> Iterator[object]:
    """Headless Debian chromium driven by Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: install Debian's package (apt-get install -y chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def local_page(browser, outside_requests: list[str]) -> Iterator[object]:
    """A page that refuses, and records, every request to a host other than this machine."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            outside_requests.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll a condition (bounded) and fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or condition}")


def field(page, elem_id: str):
    """The input or textarea inside a Gradio component."""
    return page.locator(f"#{elem_id}").locator("input, textarea").first


def text_of(page, elem_id: str) -> str:
    """The visible text of a component."""
    return str(page.locator(f"#{elem_id}").inner_text())


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot into docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def write_scene(path: Path, frames: int = 4, size: int = 16) -> Path:
    """A tiny real video: a bright square moving across a dark frame."""
    import imageio.v2 as imageio
    import numpy as np

    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for index in range(frames):
        video[index, 4:10, 2 + 2 * index : 8 + 2 * index] = 220
    imageio.mimwrite(path, list(video), fps=8, macro_block_size=1)
    return path
