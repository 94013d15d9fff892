"""How `batchlog bench` talks to benchmark scripts written by different people."""

from __future__ import annotations

import sys
from pathlib import Path

from batchlog.adapters.cli.bench_commands import _command_for, _last_json_object

SCRIPT = Path("benchmarks/bench_x.py")


def test_scripts_get_the_flags_they_accept_under_their_own_names() -> None:
    command, writes = _command_for(
        SCRIPT, {"--json", "--postgres", "--quick"}, True, "postgresql://h/db", Path("x.json")
    )
    assert command == [
        sys.executable,
        str(SCRIPT),
        "--json",
        "x.json",
        "--quick",
        "--postgres",
        "postgresql://h/db",
    ]
    assert writes is True


def test_a_script_without_options_is_run_bare_and_its_printed_json_is_taken() -> None:
    command, writes = _command_for(SCRIPT, set(), True, "postgresql://h/db", Path("x.json"))
    assert command == [sys.executable, str(SCRIPT)]
    assert writes is False
    printed = 'warming up\n{"first": 1}\nratio 2.0x\n{"speedup": {"B=8": 2.7}}\ndone\n'
    assert _last_json_object(printed) == {"speedup": {"B=8": 2.7}}
    assert _last_json_object("no json here") is None
