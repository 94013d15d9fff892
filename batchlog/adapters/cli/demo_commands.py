"""`batchlog demo`: the guided tour on the embedded SQLite default, no set-up."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import typer

from batchlog.adapters.bootstrap import check_device
from batchlog.adapters.cli.app import EXIT_USER_ERROR, app, console, error_console, user_errors
from batchlog.adapters.settings import Settings

TORCH_EXTRA = ("torch", "numpy", "imageio", "imageio_ffmpeg")


@app.command("demo")
def demo_command(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Write everything under DIR, with its own SQLite file DIR/batchlog.sqlite3 (default: the data folder and configured database)",
    ),
    quick: bool = typer.Option(False, "--quick", help="A reduced size that finishes in seconds"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto"),
) -> None:
    """Render sample scenes, queue a realistic mix, smart-batch it, run it, measure, report."""
    missing = [name for name in TORCH_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        error_console.print(
            f"Error: batchlog demo needs the torch extra ({missing[0]} is missing): "
            "pip install 'batchlog[torch]'",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(EXIT_USER_ERROR)
    from batchlog.adapters.demo.pipeline import redacted, run_demo
    from batchlog.adapters.demo.scenario import FULL, QUICK

    started = time.perf_counter()
    with user_errors():
        check_device(device)
        settings = Settings.from_environment()
        if data_dir is not None:
            root = data_dir.expanduser().resolve()
            url = f"sqlite:///{root / 'batchlog.sqlite3'}"
        else:
            root, url = settings.data_dir, settings.database_url
        settings = settings.with_database_url(url)
        result = run_demo(url, root / "demo", QUICK if quick else FULL, device, console, settings)
    console.print(f"\nReport: {result.report_path}", soft_wrap=True, highlight=False)
    console.print(
        f"Queue {result.queue_name} in {redacted(result.database_url)}",
        soft_wrap=True,
        highlight=False,
    )
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    console.print(f"batchlog demo finished in {time.perf_counter() - started:.1f} s ({parts}).")
