"""Pure pieces of the UI and the `ui` command: renderings, form mapping, bind and auth rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchlog.adapters.cli.ui_commands import (
    UnprotectedBindError,
    is_loopback,
    resolve_auth,
)
from batchlog.adapters.settings import Settings
from batchlog.adapters.ui import views
from batchlog.adapters.ui.forms import job_spec
from batchlog.domain.errors import ValidationError

PREVIEW = """⚡ Smart Batching Analysis (Strict Mode):
- 8 runs from 5 jobs → 3 batches
- Estimated speedup: 2.7x

Batch breakdown:
  Batch 1: 4 runs from 2 jobs (vis, edge, depth)
  Batch 2: 3 runs from 2 jobs (vis, depth)
  Batch 3: 1 run from 1 job (edge, seg)"""


def _settings(auth: str | None = None) -> Settings:
    env = {"BATCHLOG_DATA_DIR": "/tmp/unused"}
    if auth is not None:
        env["BATCHLOG_UI_AUTH"] = auth
    return Settings.from_environment(env)


def test_the_preview_puts_each_batch_on_its_own_marked_line() -> None:
    html = views.preview_html({"preview": PREVIEW})
    assert html.count('class="bl-line bl-batch"') == 3
    assert "Batch breakdown:" in html and html.count("<div") == PREVIEW.count("\n") + 2


def test_preview_text_is_escaped() -> None:
    assert "<script>" not in views.preview_html({"preview": "Batch 1: <script>"})


def test_an_analysis_is_marked_stale_when_the_head_moved() -> None:
    analysis = {"analysis_id": "an_1", "sequence": 7, "mode": "strict"}
    assert views.STALE_NOTE in views.analysis_state_note(analysis, 8)
    assert "fresh at sequence 7" in views.analysis_state_note(analysis, 7)
    assert "Stale" not in views.analysis_state_note(None, 7)


def test_the_queue_table_lists_running_items_then_queued_ones_with_their_claim_holder() -> None:
    job = {
        "id": "job_a",
        "position": 1,
        "type": "inference",
        "runs": 2,
        "controls": ["vis", "depth"],
        "parameters": {"num_steps": 35, "guidance": 5.0, "width": 64, "height": 64},
        "priority": 50,
        "status": "queued",
    }
    running = {**job, "id": "batch_b", "position": None, "status": "claimed", "claimed_by": "r1"}
    rows = views.queue_rows({"queued_jobs": [job], "running": [running]})
    assert [row[1] for row in rows] == ["batch_b", "job_a"]
    assert rows[0][-1] == "r1" and rows[1][4] == "vis, depth"
    assert rows[1][5] == "num_steps=35 guidance=5.0 64x64"


def test_the_runners_table_shows_the_lease_left_and_progress() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    item = {
        "id": "batch_b",
        "type": "batch_inference",
        "runs": 4,
        "controls": ["vis"],
        "claimed_by": "gpu-1",
        "lease_expires_at": (now + timedelta(seconds=25)).isoformat(),
        "progress": {"done": 2, "failed": 1, "total": 4},
    }
    html = views.runners_table({"running": [item]}, now=now)
    assert "gpu-1" in html and "+25s" in html and "2/4 done, 1 failed" in html


def test_the_speedup_chart_draws_estimated_and_measured_bars() -> None:
    report = {
        "batches": [
            {"estimated_seconds": 4.0, "measured_seconds": 3.0},
            {"estimated_seconds": 2.0, "measured_seconds": None},
        ],
        "estimated_speedup": 2.5,
        "measured_speedup": 2.1,
    }
    html = views.speedup_chart(report)
    assert html.count("<rect") == 3
    assert "estimated speedup: 2.50x · measured speedup: 2.10x" in html


def test_the_add_job_form_becomes_add_job_arguments_with_zero_weights_left_out() -> None:
    spec = job_spec("ps_1, ps_2  ps_3", "inference", [0.5, 0, 0.2, None], 20, 7, 60)
    assert spec == {
        "prompt_ids": ["ps_1", "ps_2", "ps_3"],
        "job_type": "inference",
        "config": {"weights": {"vis": 0.5, "depth": 0.2}, "num_steps": 20, "seed": 7},
        "priority": 60,
    }
    assert job_spec("ps_1", "upscale", [0.5, 0, 0, 0], 20, 7, None)["config"] == {}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_need_no_credentials(host: str) -> None:
    assert is_loopback(host)
    assert resolve_auth(host, None, _settings()) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_a_network_address_without_credentials_is_refused_with_the_reason(host: str) -> None:
    with pytest.raises(UnprotectedBindError, match="without credentials"):
        resolve_auth(host, None, _settings())


def test_credentials_come_from_the_flag_first_then_the_settings() -> None:
    assert resolve_auth("0.0.0.0", "ana:pw", _settings("bob:x")) == ("ana", "pw")
    assert resolve_auth("0.0.0.0", None, _settings("bob:x:y")) == ("bob", "x:y")
    assert resolve_auth("127.0.0.1", None, _settings("bob:x")) == ("bob", "x")


@pytest.mark.parametrize("bad", ["nocolon", ":pw", "user:"])
def test_malformed_credentials_are_a_validation_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="user:password"):
        resolve_auth("0.0.0.0", bad, _settings())


def test_a_long_queue_shows_its_first_rows_and_says_how_many_more() -> None:
    job = {
        "id": "j",
        "position": 1,
        "type": "upscale",
        "runs": 1,
        "priority": 50,
        "status": "queued",
    }
    status = {"queued_jobs": [{**job, "id": f"job_{n}"} for n in range(5)], "running": []}
    html = views.queue_table(status, limit=3)
    assert "job_2" in html and "job_3" not in html and "… and 2 more" in html
