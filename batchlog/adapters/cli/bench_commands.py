"""`batchlog bench` (the benchmark suite) and `batchlog report` (estimates against measurements)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from batchlog.adapters.cli.app import (
    DatabaseOption,
    JsonOption,
    QueueOption,
    app,
    console,
    print_json,
    service,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
# name -> (script, title); scripts written by other parts of the project run when present.
SUITE: dict[str, tuple[str, str]] = {
    "enqueue": ("bench_enqueue.py", "1. Enqueue"),
    "analysis": ("bench_analysis.py", "2. Analysis and staleness check"),
    "projections": ("bench_projections.py", "3. Projection rebuild rate and live lag"),
    "runner": ("bench_runner.py", "4. Event to claim latency"),
    "batching": ("bench_batching.py", "5. Batched against sequential torch execution"),
    "estimates": ("bench_estimates.py", "6. Estimate against measurement"),
}
SCRIPT_TIMEOUT_S = 1800


OUTPUT_FLAGS = ("--output", "--json", "--out", "--output-json")
POSTGRES_FLAGS = ("--postgres-url", "--postgres", "--database-url", "--pg-url")


def _script_flags(path: Path, env: dict[str, str]) -> set[str]:
    """The long options a script accepts, read from its --help (scripts of other authors vary)."""
    try:
        shown = subprocess.run(
            [sys.executable, str(path), "--help"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
    except subprocess.TimeoutExpired:
        return set()
    return {word.strip(",[]=") for word in shown.split() if word.startswith("--")}


def _command_for(
    path: Path, flags: set[str], quick: bool, postgres_url: str | None, output: Path
) -> tuple[list[str], bool]:
    """The command line for a script, and whether it writes its JSON to a file."""
    command = [sys.executable, str(path)]
    output_flag = next((flag for flag in OUTPUT_FLAGS if flag in flags), None)
    if output_flag:
        command += [output_flag, str(output)]
    if quick and "--quick" in flags:
        command.append("--quick")
    postgres_flag = next((flag for flag in POSTGRES_FLAGS if flag in flags), None)
    if postgres_url and postgres_flag:
        command += [postgres_flag, postgres_url]
    return command, output_flag is not None


def _last_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object printed on stdout, for scripts that only print their result."""
    decoder = json.JSONDecoder()
    found = None
    for index, char in enumerate(text):
        if char == "{" and (index == 0 or text[index - 1] == "\n"):
            try:
                value, _ = decoder.raw_decode(text[index:])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found = value
    return found


def _run_script(name: str, quick: bool, postgres_url: str | None, out_dir: Path) -> dict[str, Any]:
    script, title = SUITE[name]
    path = REPO_ROOT / "benchmarks" / script
    if not path.exists():
        return {"status": "absent", "script": f"benchmarks/{script}", "title": title}
    output = out_dir / f"{name}.json"
    output.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg"}
    flags = _script_flags(path, env)
    if quick and "--quick" not in flags:
        return {
            "status": "skipped",
            "script": f"benchmarks/{script}",
            "title": title,
            "reason": f"it has no --quick option; run `batchlog bench --only {name}`",
        }
    command, writes_file = _command_for(path, flags, quick, postgres_url, output)
    console.print(f"[bold]{title}[/bold]: {' '.join(command[1:])}")
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )
        stdout, text, code = (
            done.stdout or "",
            (done.stdout or "") + (done.stderr or ""),
            done.returncode,
        )
    except subprocess.TimeoutExpired as error:
        stdout, text, code = "", str(error), -1
    result: dict[str, Any] | None = None
    if code == 0 and writes_file and output.exists():
        result = json.loads(output.read_text(encoding="utf-8"))
    elif code == 0:
        result = _last_json_object(stdout) or {"status": "printed", "output": stdout[-6000:]}
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if result is None:
        return {
            "status": "failed",
            "script": f"benchmarks/{script}",
            "title": title,
            "command": " ".join(command[1:]),
            "output": text[-3000:],
        }
    result["title"] = title
    shown = [arg.replace(f"{REPO_ROOT}/", "") for arg in command[2:]]
    result["command"] = "PYTHONPATH=. python " + " ".join(
        [str(path.relative_to(REPO_ROOT)), *shown]
    )
    output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"  done in {time.monotonic() - started:.1f} s")
    return result


def _earlier_result(name: str, out_dir: Path) -> dict[str, Any]:
    """The result an earlier run left for a benchmark not run this time (kept in the report)."""
    path = out_dir / f"{name}.json"
    script, title = SUITE[name]
    if not path.exists():
        present = (REPO_ROOT / "benchmarks" / script).exists()
        return {
            "status": "skipped" if present else "absent",
            "script": f"benchmarks/{script}",
            "title": title,
            "reason": f"not run this time; run `batchlog bench --only {name}`",
        }
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    result.setdefault("title", title)
    return result


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Small sizes and few rounds (for CI)"),
    postgres_url: str | None = typer.Option(
        None,
        "--postgres-url",
        help="PostgreSQL server where databases may be created; default: a throwaway server",
    ),
    output_dir: Path = typer.Option(
        REPO_ROOT / "docs" / "benchmarks", "--output-dir", help="Where JSON, PNG and report go"
    ),
    only: list[str] = typer.Option([], "--only", help=f"Run only these: {', '.join(SUITE)}"),
) -> None:
    """Run the benchmark suite side by side and write JSON, charts and a markdown report."""
    if not (REPO_ROOT / "benchmarks").is_dir():
        console.print("batchlog bench needs a source checkout (the benchmarks/ folder).")
        raise typer.Exit(1)
    unknown = [name for name in only if name not in SUITE]
    if unknown:
        console.print(f"Unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITE)}.")
        raise typer.Exit(1)
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.common import postgres_server
    from benchmarks.report import render

    output_dir.mkdir(parents=True, exist_ok=True)
    with postgres_server(postgres_url) as server_url:
        results = {
            name: _run_script(name, quick, server_url, output_dir)
            if not only or name in only
            else _earlier_result(name, output_dir)
            for name in SUITE
        }
    shown = ["batchlog bench"] + (["--quick"] if quick else []) + [f"--only {n}" for n in only]
    report = render(results, output_dir, " ".join(shown))
    failed = [name for name, result in results.items() if result.get("status") == "failed"]
    console.print(f"Report: {report}")
    if failed:
        console.print(f"Failed: {', '.join(failed)} (see the report)")
        raise typer.Exit(1)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _error(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


@app.command()
def report(
    analysis_id: str | None = typer.Argument(None, help="Analysis id (default: the latest)"),
    all_plans: bool = typer.Option(False, "--all", help="Every executed plan's estimate error"),
    database_url: str | None = DatabaseOption,
    queue: str | None = QueueOption,
    as_json: bool = JsonOption,
) -> None:
    """Estimated against measured seconds of an analysis's batches, and the measured speedup."""
    with service(database_url, queue) as queue_service:
        if all_plans:
            plans = queue_service.plan_reports()
            if as_json:
                print_json(plans)
                return
            table = Table("analysis", "mode", "batches measured", "estimated", "measured")
            for column in ("est. speedup", "measured speedup", "estimate error"):
                table.add_column(column)
            for plan in plans:
                table.add_row(
                    plan["analysis_id"],
                    plan["mode"],
                    f"{plan['measured_batches']}/{plan['total_batches']}",
                    _seconds(plan["estimated_seconds_batched"]),
                    _seconds(plan["measured_seconds_batched"]),
                    _ratio(plan["estimated_speedup"]),
                    _ratio(plan["measured_speedup"]),
                    _error(plan["estimate_error"]),
                )
            console.print(table)
            return
        plan = queue_service.get_plan_report(analysis_id)
        if as_json:
            print_json(plan)
            return
        console.print(
            f"Analysis {plan['analysis_id']} ({plan['mode']}), "
            f"{'executed' if plan['executed'] else 'not executed'}; basis: {plan['basis']}",
            markup=False,
        )
        table = Table("batch", "job", "runs", "controls", "estimated", "measured", "error", "state")
        for row in plan["batches"]:
            table.add_row(
                str(row["index"]),
                row["job_id"] or "-",
                str(row["runs"]),
                ", ".join(row["controls"]),
                _seconds(row["estimated_seconds"]),
                _seconds(row["measured_seconds"]),
                _error(row["error"]),
                row["state"],
            )
        console.print(table)
        console.print(
            f"Unbatched (estimated): {_seconds(plan['estimated_seconds_unbatched'])}; "
            f"batched estimated {_seconds(plan['estimated_seconds_batched'])}, "
            f"measured {_seconds(plan['measured_seconds_batched'])} "
            f"({plan['measured_batches']}/{plan['total_batches']} batches).",
            markup=False,
        )
        console.print(
            f"Speedup: estimated {_ratio(plan['estimated_speedup'])}, "
            f"measured {_ratio(plan['measured_speedup'])}; "
            f"estimate error {_error(plan['estimate_error'])}.",
            markup=False,
        )
