"""The views on real SQLite and PostgreSQL: exactly once, resumable, verifiable, stoppable."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

import batchlog
from batchlog import QueueService, ViewLagError
from batchlog.adapters.settings import Settings
from batchlog.adapters.store import EventStore, open_store
from batchlog.adapters.views import ProjectionHost, ProjectionStoppedError, TrackingConflictError
from batchlog.adapters.views import log_rows as log_rows_module
from batchlog.adapters.views import replay as replay_module
from batchlog.adapters.views.log_rows import LogRows
from batchlog.adapters.views.replay import rebuild, rebuild_into_scratch, verify
from batchlog.adapters.views.store import BULK_ROWS, SCRATCH_PREFIX, ViewStore
from batchlog.adapters.views.workers import run_side_by_side, view_groups
from batchlog.projections import PROJECTION_NAMES, HistoryProjection, QueueProjection
from batchlog.projections import queue_view as queue_view_module
from batchlog.projections.base import Changes, EventRecord, ProjectionError
from batchlog.projections.history_view import EVENTS as HISTORY_EVENTS
from tests.integration import worker_tasks
from tests.workload import World

SCRIPT = [
    ("add", 0), ("add", 1), ("add", 2), ("add", 3), ("pause", 0), ("batch_size", 2),
    ("analyze_mixed", 0), ("execute", 0), ("add", 1), ("cancel", 4), ("resume", 0),
    ("claim", 0), ("start", 0), ("run_ok", 0), ("run_failed", 0), ("finish", 0),
    ("claim", 0), ("start", 0), ("fail_retry", 0), ("claim", 1), ("start", 0),
    ("lease_expired", 0), ("claim", 0), ("start", 0), ("fail_dead", 0), ("claim", 0),
]  # fmt: skip


@pytest.fixture
def store(database_url: str) -> Iterator[EventStore]:
    event_store = open_store(database_url)
    yield event_store
    event_store.close()


@pytest.fixture
def service(database_url: str, settings: Settings) -> Iterator[QueueService]:
    queue_service = QueueService(database_url, settings=settings)
    yield queue_service
    queue_service.close()


def _world(store: EventStore) -> World:
    world = World(save=store.save)
    world.run(SCRIPT)
    return world


def _count(host: ProjectionHost, table: str) -> int:
    return int(host.views.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def _inject(store: EventStore, topic: str) -> int:
    """Append a raw event of a type this code does not know (as a newer version might write)."""
    state = store.mapper.transcoder.encode({"timestamp": datetime.now(UTC), "what": "future"})
    store.recorder.insert_events(
        [StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic=topic, state=state)]
    )
    return int(store.recorder.max_notification_id() or 0)


def test_rebuild_equals_live_and_a_tampered_row_is_reported(database_url, store):
    world = _world(store)
    assert world.executions, "the script should have run executions"
    with ProjectionHost(database_url) as host:
        host.catch_up()
        report = verify(store, host.views, list(PROJECTION_NAMES))
        assert report.ok, report.differences[:3]
        assert report.rebuild.events == store.recorder.max_notification_id()
        some_job = host.views.query("SELECT job_id FROM queue_view_items LIMIT 1")[0]["job_id"]
        host.views.execute(
            "UPDATE queue_view_items SET priority = priority + 1 WHERE job_id = ?", (some_job,)
        )
        (difference,) = verify(store, host.views, ["queue"]).differences
    assert difference["table"] == "queue_view_items"
    assert difference["key"] == {"job_id": some_job}
    assert difference["columns"] == ["priority"]


def test_a_parallel_rebuild_equals_the_sequential_one_and_reports_a_tampered_row(
    database_url, store
):
    _world(store)
    head = int(store.recorder.max_notification_id() or 0)
    targets = dict.fromkeys(PROJECTION_NAMES, head)
    children = _child_processes()
    with ProjectionHost(database_url) as host:
        host.catch_up()
        rows = {jobs: rebuild(database_url, targets, jobs).rows for jobs in (1, 2, 3)}
        assert rows[1] > 0 and rows[2] == rows[1] and rows[3] == rows[1], rows
        for jobs in (2, 3):
            report = verify(store, host.views, list(PROJECTION_NAMES), jobs=jobs)
            assert report.ok, report.differences[:3]
            assert report.rebuild.targets == targets and report.rebuild.events == head
        host.views.execute("UPDATE stats_batches SET num_steps = num_steps + 1")
        host.views.execute("UPDATE queue_view_items SET priority = priority + 1")
        differences = verify(store, host.views, list(PROJECTION_NAMES), jobs=3).differences
    assert {d["table"] for d in differences} == {"stats_batches", "queue_view_items"}
    assert _child_processes() <= children  # every worker reaped


def test_a_rebuild_in_many_small_pages_equals_the_live_views(database_url, store, monkeypatch):
    """Reading ahead, the write after each page and the job index expanded page by page, with
    the log cut into pages of 7 events (a skipped event inside one of them)."""
    monkeypatch.setattr(replay_module, "PAGE_SIZE", 7)
    monkeypatch.setattr(replay_module, "FLUSH_EVERY", 7)
    _world(store)
    skipped = _inject(store, "batchlog.queue:Queue.FromTheFuture")
    World(save=store.save, queue_name="other").run([("add", 0), ("add", 1), ("cancel", 0)])
    head = int(store.recorder.max_notification_id() or 0)
    assert head > 4 * 7 and skipped % 7 not in (0, 1)
    with ProjectionHost(database_url) as host:
        host.catch_up()
        host.views.skip("queue", skipped, "from a newer version", "operator")
        host.catch_up()
        report = verify(store, host.views, list(PROJECTION_NAMES), jobs=1)
        assert report.ok, report.differences[:3]
        assert report.rebuild.events == head
        assert _count(host, "scratch_history_event_jobs") == _count(host, "history_event_jobs") > 0


def test_a_script_without_a_main_guard_can_rebuild_side_by_side(database_url, store, tmp_path):
    """The workers are fresh interpreters that do not run the caller's main script again (as
    multiprocessing's spawn does: there, such a script fails in each worker)."""
    _world(store)
    targets = dict.fromkeys(PROJECTION_NAMES, int(store.recorder.max_notification_id() or 0))
    script = tmp_path / "rebuild_views.py"
    script.write_text(
        "from batchlog.adapters.views.replay import rebuild\n"
        f"print('rebuilt', rebuild({database_url!r}, {targets!r}, 2).events)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"rebuilt {targets['queue']}"]


def test_what_a_worker_prints_does_not_garble_its_result():
    children = _child_processes()
    parts = [{"caller": 0}, {"first": 0}, {"second": 0}]
    assert run_side_by_side(worker_tasks.print_then_answer, "sqlite:///unused", parts) == [
        "caller", "first", "second",
    ]  # fmt: skip
    assert _child_processes() <= children


def test_a_worker_that_dies_without_a_result_is_named_with_its_exit_code():
    children = _child_processes()
    with pytest.raises(
        ProjectionError, match=r"batchlog-rebuild-gone sent no result \(exit code 3\)"
    ):
        run_side_by_side(
            worker_tasks.die_in_a_worker, "sqlite:///unused", [{"caller": 0}, {"gone": 0}]
        )
    assert _child_processes() <= children


def test_a_worker_finds_batchlog_where_its_caller_found_it(database_url, store, tmp_path):
    """A caller that found batchlog on a path it added itself, in an interpreter where batchlog is
    not installed, still gets its workers: they take the caller's sys.path before importing it."""
    _world(store)
    targets = dict.fromkeys(PROJECTION_NAMES, int(store.recorder.max_notification_id() or 0))
    found = [str(Path(batchlog.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    script = tmp_path / "rebuild_from_a_checkout.py"
    script.write_text(
        f"import sys\nsys.path[:0] = {found!r}\n"
        "from batchlog.adapters.views.replay import rebuild\n"
        f"print('rebuilt', rebuild({database_url!r}, {targets!r}, 2).events)\n"
    )
    interpreter = getattr(sys, "_base_executable", sys.executable)  # the venv's base Python
    if interpreter == sys.executable:
        pytest.skip("not run from a virtual environment: batchlog may be installed for any Python")
    done = subprocess.run(
        [interpreter, str(script)], capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"rebuilt {targets['queue']}"]


def test_a_rebuild_worker_imports_no_validation():
    """A worker folds stored events: pydantic (job validation) would add a tenth of a second
    to every worker's start and nothing to its work."""
    modules = ["batchlog.adapters.views.worker_process", "batchlog.adapters.views.replay"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('pydantic' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False"]


def _child_processes() -> set[int]:
    """The ids of this process's child processes not yet reaped (Linux)."""
    listed = list(Path("/proc/self/task").glob("*/children"))
    assert listed, "this kernel does not list a process's children"
    return {int(pid) for children in listed for pid in children.read_text().split()}


def test_a_restarted_host_resumes_from_its_tracking_position(database_url, store):
    world = World(save=store.save)
    world.run([("add", 0), ("add", 1)])
    with ProjectionHost(database_url) as host:
        first = host.catch_up()
    world.run([("add", 2), ("pause", 0)])
    with ProjectionHost(database_url) as host:
        second = host.catch_up()
        assert host.catch_up() == 0
        assert _count(host, "history_events") == store.recorder.max_notification_id()
    assert first == 3 * 3  # queue created + 2 jobs, for each of the three views
    assert second == 2 * 3


def test_reapplying_an_event_is_refused(database_url, store):
    World(save=store.save).run([("add", 0)])
    with ProjectionHost(database_url, ["history"]) as host:
        host.catch_up()
        head = int(store.recorder.max_notification_id() or 0)
        with pytest.raises(TrackingConflictError):
            host.views.commit("history", (), Changes(), head - 1, head)
        assert int(host.views.tracking()["history"]["position"]) == head


def test_two_hosts_on_one_view_never_apply_an_event_twice(database_url, store):
    world = World(save=store.save)
    with ProjectionHost(database_url) as one, ProjectionHost(database_url) as two:
        for round_ in range(6):
            world.run([("add", round_), ("add", round_ + 1)])
            (one if round_ % 2 else two).catch_up()
            one.catch_up()
            two.catch_up()
        events = int(store.recorder.max_notification_id() or 0)
        assert _count(one, "history_events") == events
        assert _count(one, "queue_view_items") == 12
        assert verify(store, one.views, list(PROJECTION_NAMES)).ok


def test_a_poison_event_stops_the_view_with_the_event_named_until_skipped(
    database_url, store, service
):
    World(save=store.save).run([("add", 0)])
    poison = _inject(store, "batchlog.queue:Queue.Frobnicated")
    service.add_job([service.create_prompt("a cat")], job_type="upscale")
    with ProjectionHost(database_url) as host:
        host.catch_up()
        status = {row["name"]: row for row in host.status()}
        assert status["queue"]["state"] == "stopped"
        assert status["queue"]["position"] == poison - 1
        assert status["queue"]["error"]["position"] == poison
        assert status["queue"]["error"]["topic"] == "batchlog.queue:Queue.Frobnicated"
        assert "does not know event topic" in status["queue"]["error"]["message"]
        assert status["history"]["error"] is None  # the audit trail records unknown events
        with pytest.raises(ProjectionStoppedError, match=f"stopped at event {poison}"):
            service.get_queue_status()
        assert host.catch_up(["queue"]) == 0  # stopped: it neither loops nor skips by itself

        host.views.skip("queue", poison, "event from a newer version", "operator")
        host.catch_up()
        status = {row["name"]: row for row in host.status()}
        assert status["queue"]["state"] == "current"
        assert status["queue"]["skips"][0]["position"] == poison
        assert status["queue"]["skips"][0]["reason"] == "event from a newer version"
        assert verify(store, host.views, list(PROJECTION_NAMES)).ok
    assert service.get_queue_status()["total_queued"] == 2


class _FailsOnce(QueueProjection):
    failures = 0

    def apply(self, event: EventRecord) -> None:
        if event.event_type == "Paused" and _FailsOnce.failures == 0:
            _FailsOnce.failures += 1
            raise RuntimeError("transient")
        super().apply(event)


def test_retry_applies_the_failed_event_again(database_url, store):
    _FailsOnce.failures = 0
    World(save=store.save).run([("add", 0), ("pause", 0), ("add", 1)])
    factories = {"queue": _FailsOnce}
    with ProjectionHost(database_url, ["queue"], factories=factories) as host:
        host.catch_up()
        (row,) = host.status()
        assert row["error"]["topic"] == "batchlog.queue:Queue.Paused"
        assert "RuntimeError: transient" in row["error"]["message"]
        assert host.views.clear_error("queue")
        host.catch_up()
        (row,) = host.status()
        assert row["error"] is None and row["lag"] == 0
    with QueueService(database_url) as service:
        status = service.get_queue_status()
    assert status["paused"] is True and status["total_queued"] == 2


def test_status_shows_the_callers_own_write_at_once(service):
    prompt = service.create_prompt("a cat")
    job_id = service.add_job([prompt], config={"weights": {"vis": 0.5}})
    status = service.get_queue_status()
    assert [job["id"] for job in status["queued_jobs"]] == [job_id]
    assert status["sequence"] == service.last_sequence


def test_a_read_that_cannot_catch_up_raises_view_lag_error(service, monkeypatch):
    service.add_job([service.create_prompt("a cat")], job_type="upscale")
    reader = service.views()
    reader.wait_seconds = 0.1
    monkeypatch.setattr(reader.host, "catch_up", lambda *a, **k: 0)
    service.last_sequence += 5
    with pytest.raises(ViewLagError, match="did not catch up"):
        service.get_queue_status()


def test_queue_at_from_a_checkpoint_equals_the_status_seen_at_that_time(
    database_url, store, service, monkeypatch
):
    monkeypatch.setattr(queue_view_module, "CHECKPOINT_INTERVAL", 4)
    world = World(save=store.save)
    seen = {}
    for step in SCRIPT:
        before = world.queue.version
        world.run([step])
        if world.queue.version != before:
            seen[world.queue.version] = service.get_queue_status()
    checkpoints = service.views().views.query("SELECT sequence FROM queue_view_checkpoints")
    assert {row["sequence"] for row in checkpoints} >= {4, 8, 12}
    for sequence, status in seen.items():
        assert service.queue_at(sequence) == status, sequence


def test_history_and_lineage_follow_a_job_into_its_batch_and_its_outputs(store, service):
    world = World(save=store.save)
    world.run(
        [("add", 0), ("add", 0), ("pause", 0), ("analyze_strict", 0), ("execute", 0),
         ("resume", 0), ("claim", 0), ("start", 0), ("run_ok", 0), ("run_ok", 0), ("finish", 0)]
    )  # fmt: skip
    lineage = service.lineage("job_00001")
    batch = lineage["merged_into"]
    assert batch is not None and batch.startswith("batch_")
    types = [row["event_type"] for row in lineage["events"]]
    assert types[:2] == ["JobAdded", "Analyzed"]
    assert {"Reorganized", "ItemClaimed", "Started", "RunSucceeded", "Finished"} <= set(types)
    (run,) = lineage["runs"]
    assert run["status"] == "succeeded" and run["batch_job_id"] == batch
    assert run["output_path"].endswith(".mp4") and len(run["sha256"]) == 64
    (claim,) = lineage["claims"]
    assert claim["runner_id"] == "runner0" and claim["outcome"].startswith("finished")
    batch_lineage = service.lineage(batch)
    assert batch_lineage["source_job_ids"] == ["job_00001", "job_00002"]
    assert {r["source_job_id"] for r in batch_lineage["runs"]} == {"job_00001", "job_00002"}
    rows = service.history(since=3, limit=2)
    assert [row["position"] for row in rows] == [4, 5]
    assert set(rows[0]) >= {"position", "sequence", "stream", "timestamp", "topic",
                            "event_type", "actor", "job_ids", "summary", "payload"}  # fmt: skip
    (stat,) = service.batch_stats()
    assert stat["batch_size"] == 2 and stat["seconds"] == 1.5
    assert stat["analysis_id"] == lineage["analyses"][0] and stat["num_steps"] == 10


def test_a_started_host_follows_the_log_until_stopped(database_url, store):
    world = World(save=store.save)
    with ProjectionHost(database_url, poll_interval=0.05) as host:
        host.start()
        world.run([("add", 0), ("add", 1)])
        head = int(store.recorder.max_notification_id() or 0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _count(host, "history_events") < head:
            time.sleep(0.05)
        assert _count(host, "history_events") == head
        host.stop()
        assert not host.following
        world.run([("add", 2)])
        time.sleep(0.3)
        assert _count(host, "history_events") == head  # stopped means stopped


def test_an_unmigrated_sqlite_file_gets_its_views_on_first_read(tmp_path, settings):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    with QueueService(url, settings=settings) as service:
        job_id = service.add_job([service.create_prompt("a cat")], job_type="upscale")
        assert [job["id"] for job in service.get_queue_status()["queued_jobs"]] == [job_id]


def test_large_commits_write_many_changed_rows_at_once_and_equal_a_rebuild(database_url, store):
    """More than BULK_ROWS rows of a table in one commit: on PostgreSQL they go by COPY (new
    rows) and through a staging table (changed rows); the view still equals a rebuild."""
    world = World(save=store.save)
    with ProjectionHost(database_url) as host:
        world.run([("add", k) for k in range(45)])
        host.catch_up()  # 45 new items in one commit
        world.run([("claim", k) for k in range(30)] + [("cancel", k) for k in range(5)])
        world.run([("start", k) for k in range(25)])
        host.catch_up()  # the same items changed again, in one commit; 25 new executions
        world.run([("run_ok", k) for k in range(25)] + [("finish", k) for k in range(25)])
        host.catch_up()  # the staging tables again, in a later transaction
        statuses = {
            row["status"]: int(row["n"])
            for row in host.views.query(
                "SELECT status, COUNT(*) AS n FROM queue_view_items GROUP BY status"
            )
        }
        assert sum(statuses.values()) == 45
        assert statuses["cancelled"] == 5
        assert statuses.get("queued", 0) == 10
        assert _count(host, "queue_view_executions") == 25
        report = verify(store, host.views, list(PROJECTION_NAMES))
        assert report.ok, report.differences[:3]


def test_an_event_the_reader_cannot_decode_leaves_the_rest_of_the_history_readable(
    database_url, store, service
):
    World(save=store.save).run([("add", 0), ("add", 1), ("cancel", 0)])
    before = service.history()
    (added,) = [
        row for row in before if row["event_type"] == "JobAdded" and row["job_ids"] == ["job_00002"]
    ]
    events = store.recorder.events_table_name
    with ViewStore(database_url) as views:  # what a reader without the writer's set-up meets
        views.execute(
            f"UPDATE {events} SET state = ? WHERE "
            + ("rowid = ?" if views.dialect == "sqlite" else "notification_id = ?"),
            (b"not json", added["position"]),
        )
    after = service.history()
    assert [row["position"] for row in after] == [row["position"] for row in before]
    (broken,) = [row for row in after if row["position"] == added["position"]]
    assert broken["payload"] is None
    assert broken["decode_error"].startswith(f"cannot decode event {added['position']} (")
    kept = {key: value for key, value in broken.items() if key not in {"payload", "decode_error"}}
    assert kept == {key: value for key, value in added.items() if key != "payload"}
    assert [row for row in after if row is not broken] == [row for row in before if row != added]
    with pytest.raises(ProjectionError, match=r"lineage of job_00002 needs event \d+, which"):
        service.lineage("job_00002")  # it would be incomplete without that event
    assert service.lineage("job_00001")["events"]  # the other jobs' lineages stay readable


def test_the_job_index_holds_exactly_the_job_ids_of_each_history_row(database_url, store):
    """The database writes history_event_jobs from each row's job_ids, live and in a rebuild."""
    world = _world(store)
    world.run([("add", 5), ("add_bulk", 1), ("cancel", 5)])
    head = int(store.recorder.max_notification_id() or 0)
    with ProjectionHost(database_url, ["history"], page_size=7) as host:
        host.catch_up()
        rows = host.views.query("SELECT position, job_ids FROM history_events")
        expected = sorted(
            (job, int(row["position"])) for row in rows for job in json.loads(row["job_ids"])
        )
        assert len(expected) > len(rows) / 2, "the script should touch jobs in most events"
        assert any(len(json.loads(row["job_ids"])) >= 3 for row in rows), "a bulk add"
        rebuilt = rebuild_into_scratch(store, host.views, {"history": head})
        assert rebuilt.rows == len(rows) + len(expected) + len(world.executions)
        for table in ("history_event_jobs", "scratch_history_event_jobs"):
            index = host.views.query(f"SELECT job_id, position FROM {table}")
            assert sorted((row["job_id"], int(row["position"])) for row in index) == expected


def test_a_rebuild_stops_at_an_undecodable_event_unless_every_view_skipped_it(database_url, store):
    World(save=store.save).run([("add", 0)])
    store.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=1,
                topic="batchlog.queue:Queue.Paused",
                state=b"not json",
            )
        ]
    )
    broken = int(store.recorder.max_notification_id() or 0)
    World(save=store.save, queue_name="other").run([("add", 1)])
    head = int(store.recorder.max_notification_id() or 0)
    with ProjectionHost(database_url) as host:
        host.catch_up()
        assert {rt["error"]["position"] for rt in host.status()} == {broken}
        with pytest.raises(ProjectionError, match=f"cannot decode event {broken}"):
            rebuild_into_scratch(store, host.views, dict.fromkeys(PROJECTION_NAMES, head))
        named = rf"^cannot decode event {broken} \(batchlog.queue:Queue.Paused\): "
        children = _child_processes()
        for jobs in (2, 3):  # side by side: the same error, and no worker left behind
            with pytest.raises(ProjectionError, match=named):
                rebuild(database_url, dict.fromkeys(PROJECTION_NAMES, head), jobs)
            assert _child_processes() <= children
        here, elsewhere = view_groups(PROJECTION_NAMES, 2, head)
        for name in here:  # the views rebuilt in the caller now pass it
            host.views.skip(name, broken, "corrupt test event", "operator")
        with pytest.raises(ProjectionError, match=named):  # raised in the worker
            rebuild(database_url, dict.fromkeys(PROJECTION_NAMES, head), 2)
        assert _child_processes() <= children
        for name in elsewhere:
            host.views.skip(name, broken, "corrupt test event", "operator")
        host.catch_up()
        assert verify(store, host.views, list(PROJECTION_NAMES)).ok
        assert _count(host, "history_events") == head - 1


class _WritesOneHistoryRowTwice(HistoryProjection):
    """A faulty fold: its rows are not unique by the table's key."""

    def apply(self, event: EventRecord) -> None:
        super().apply(event)
        if event.position == 3:
            super().apply(event)


class _WritesOneCheckpointTwice(QueueProjection):
    """A faulty fold that writes one checkpoint twice (a table keyed once it is loaded)."""

    def apply(self, event: EventRecord) -> None:
        super().apply(event)
        if event.position == 3:
            for _ in range(2):
                self._checkpoint(next(iter(self.queues.values())), event.position)


def test_a_rebuild_that_writes_one_key_twice_fails_naming_the_table(database_url, store):
    _world(store)
    head = int(store.recorder.max_notification_id() or 0)
    with ProjectionHost(database_url, ["history", "queue"]) as host:
        host.catch_up()
        assert rebuild_into_scratch(store, host.views, {"history": head}).rows > head
        with pytest.raises(ProjectionError, match="two rows with one key into history_events"):
            rebuild_into_scratch(  # keyed while it is loaded (the job index is expanded from it)
                store, host.views, {"history": head}, {"history": _WritesOneHistoryRowTwice}
            )
        with pytest.raises(ProjectionError, match="one key into queue_view_checkpoints: "):
            rebuild_into_scratch(  # keyed when the load is sealed, on PostgreSQL
                store, host.views, {"queue": head}, {"queue": _WritesOneCheckpointTwice}
            )


def test_bulk_rows_with_a_number_in_a_text_column_are_written_as_before(database_url, store):
    """Binary COPY takes no int for a TEXT column; such rows still land, as the text "5"."""
    _world(store)
    rows = [
        {
            "position": 10_000 + index,
            "stream": "queue",
            "originator_id": "q",
            "sequence": index,
            "recorded_at": "2026-01-01T00:00:00+00:00",
            "topic": "batchlog.queue:Queue.Paused",
            "event_type": "Paused",
            "actor": 5 if index % 2 else "ops",
            "job_ids": "[]",
            "summary": "queue paused",
            "payload": "{}",
        }
        for index in range(BULK_ROWS + 5)
    ]
    with ProjectionHost(database_url, ["history"]) as host:
        host.views.create_scratch([HISTORY_EVENTS])
        with host.views.transaction() as cursor:
            written = host.views.write(
                cursor, [HISTORY_EVENTS], Changes(inserts={HISTORY_EVENTS.name: rows}),
                prefix=SCRATCH_PREFIX, empty=True,
            )  # fmt: skip
        actors = host.views.query("SELECT actor FROM scratch_history_events ORDER BY position")
    assert written == len(rows)
    assert [row["actor"] for row in actors] == [str(row["actor"]) for row in rows]


def test_log_rows_pages_stop_at_the_stop_position_and_match_the_notifications(store):
    _world(store)
    head = int(store.recorder.max_notification_id() or 0)
    rows = LogRows(store)
    expected = [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in store.recorder.select_notifications(start=3, limit=head, inclusive_of_start=False)
    ]
    page = rows.page(3, head - 2, 1000)
    assert [(p, str(o), v, t, bytes(s)) for p, o, v, t, s in page] == expected[:-2]
    assert [row[0] for row in rows.page(3, None, 4)] == [4, 5, 6, 7]
    assert rows.page(head, None, 10) == []


def test_log_rows_at_positions_are_the_notifications_in_the_order_asked(store, monkeypatch):
    _world(store)
    head = int(store.recorder.max_notification_id() or 0)
    by_id = {
        n.id: (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in store.recorder.select_notifications(start=1, limit=head)
    }
    wanted = [head, 2, 7, head + 5, 1]  # any order; one the log does not hold
    monkeypatch.setattr(log_rows_module, "AT_ONCE", 2)  # several statements (on SQLite)
    rows = LogRows(store)
    got = [(p, str(o), v, t, bytes(s)) for p, o, v, t, s in rows.at(wanted)]
    assert got == [by_id[head], by_id[2], by_id[7], by_id[1]]
    assert rows.at([]) == []
    rows._at = None  # a recorder this module does not know: read the span, keep the asked
    assert [row[0] for row in rows.at(wanted)] == [head, 2, 7, 1]
