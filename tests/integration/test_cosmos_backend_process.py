"""The cosmos-transfer backend's program handling and configuration: timeouts, kills, templates."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

pytest.importorskip("torch")

from batchlog.adapters.inference import create_backend as create_named_backend
from batchlog.adapters.inference.cosmos_transfer import create_backend
from batchlog.adapters.settings import Settings
from batchlog.domain.errors import ValidationError
from batchlog.runner.backend import (
    BackendError,
    BackendOutOfMemoryError,
    InferenceBackend,
)
from tests.fixtures.cosmos import (
    BASE_TEMPLATE,
    batch_of,
    run_input,
)


def test_a_program_past_its_timeout_is_stopped_and_the_batch_fails_retryably(tmp_path):
    pid_file = tmp_path / "child.pid"
    sleeper = (
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    )
    backend = create_backend(
        artifacts_dir=tmp_path / "artifacts",
        command=[
            sys.executable,
            "-c",
            sleeper,
            str(pid_file),
            "{spec}",
            "{batch_jsonl}",
            "{out_dir}",
        ],
        timeout_seconds_base=1.0,
        timeout_seconds_per_run=0.5,
    )

    with pytest.raises(BackendError, match="limit") as caught:
        backend.run_batch(batch_of(tmp_path, [run_input(0, {"vis": 0.5})], ("vis",)))

    assert caught.value.retryable
    assert not isinstance(caught.value, BackendOutOfMemoryError)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_closing_the_backend_stops_a_program_still_running(tmp_path):
    pid_file = tmp_path / "child.pid"
    sleeper = (
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    )
    backend = create_backend(
        artifacts_dir=tmp_path / "artifacts",
        command=[
            sys.executable,
            "-c",
            sleeper,
            str(pid_file),
            "{spec}",
            "{batch_jsonl}",
            "{out_dir}",
        ],
    )
    errors: list[BaseException] = []

    def work() -> None:
        try:
            backend.run_batch(batch_of(tmp_path, [run_input(0, {"vis": 0.5})], ("vis",)))
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    for _ in range(200):  # bounded: up to 20 s for the child to start
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    backend.close()
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert errors and isinstance(errors[0], BackendError)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_program_killed_by_the_oom_killer_counts_as_out_of_memory(tmp_path):
    killer = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    backend = create_backend(
        artifacts_dir=tmp_path / "artifacts",
        command=[sys.executable, "-c", killer, "{spec}", "{batch_jsonl}", "{out_dir}"],
    )

    with pytest.raises(BackendOutOfMemoryError, match="status -9"):
        backend.run_batch(batch_of(tmp_path, [run_input(0, {"vis": 0.5})], ("vis",)))


@pytest.mark.parametrize(
    ("command", "field_text"),
    [
        (["prog", "{spec}", "{batch_jsonl}"], "must use {out_dir}"),
        (["prog", "{spec}", "{batch_jsonl}", "{out_dir}", "{nope}"], "unknown placeholder {nope}"),
        (
            ["prog", "{spec}", "{batch_jsonl}", "{out_dir}", "--num_steps", "10"],
            "--num_steps {num_steps}",
        ),
        (["prog", "{spec}", "{batch_jsonl}", "{out_dir}", "--seed=3"], "--seed {seed}"),
    ],
)
def test_a_command_template_that_would_lose_a_value_is_refused(tmp_path, command, field_text):
    with pytest.raises(ValidationError, match="cosmos_command") as caught:
        create_backend(artifacts_dir=tmp_path, command=command)
    assert field_text in str(caught.value)


def test_the_command_comes_from_the_settings_when_not_given(tmp_path):
    settings = Settings.from_environment(
        {
            "HOME": str(tmp_path),
            "BATCHLOG_COSMOS_COMMAND": "python transfer.py --controlnet_specs {spec} "
            "--batch_input_path {batch_jsonl} --video_save_folder {out_dir} "
            "--checkpoint_dir {checkpoint_dir}",
            "BATCHLOG_COSMOS_CHECKPOINT_DIR": "/ckpt",
        }
    )

    backend = create_backend(artifacts_dir=tmp_path, settings=settings)

    assert backend.command.arguments[:2] == ("python", "transfer.py")
    assert backend.checkpoint_dir == "/ckpt"
    with pytest.raises(ValidationError, match="BATCHLOG_COSMOS_COMMAND"):
        create_backend(artifacts_dir=tmp_path, settings=Settings.from_environment({"HOME": "/x"}))


def test_the_registry_builds_a_backend_that_follows_the_protocol(tmp_path):
    backend = create_named_backend(
        "cosmos-transfer",
        device="cpu",
        artifacts_dir=tmp_path,
        command=BASE_TEMPLATE,
        checkpoint_dir="/ckpt",
    )

    assert isinstance(backend, InferenceBackend)
    assert backend.name == "cosmos-transfer"
    assert [
        backend.supports(t) for t in ("inference", "batch_inference", "upscale", "enhancement")
    ] == [True, True, True, False]
    assert backend.max_batch_size("upscale") == 1


def test_an_unknown_backend_option_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="timeout_second_per_run"):
        create_backend(artifacts_dir=tmp_path, command=BASE_TEMPLATE, timeout_second_per_run=5)
