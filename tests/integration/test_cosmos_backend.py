"""The cosmos-transfer backend against a stand-in transfer program that checks our formats.

The stand-in (tests/fixtures/fake_cosmos_transfer.py) is a real process started from the
backend's argument-list template; it validates the spec, the JSONL and every weight map, and
writes one video per line the way upstream lays them out.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from batchlog.domain.jobs import ExecutionParameters  # noqa: E402
from batchlog.runner.backend import BackendError, BackendOutOfMemoryError  # noqa: E402
from tests.fixtures.cosmos import (  # noqa: E402
    PARAMETERS,
    backend_for,
    batch_of,
    invocation_dirs,
    received,
    run_input,
)


def test_strict_batch_passes_every_shared_parameter_and_gets_one_video_per_run(tmp_path):
    backend = backend_for(tmp_path)
    runs = [run_input(0, {"vis": 0.5, "edge": 0.25}), run_input(1, {"vis": 0.5, "edge": 0.25})]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis", "edge")))

    assert [r.run_id for r in outcome.runs] == ["run-0", "run-1"]
    assert all(r.ok for r in outcome.runs)
    for result in outcome.runs:
        data = Path(result.output_path).read_bytes()
        assert result.sha256 == hashlib.sha256(data).hexdigest()
    [invocation] = invocation_dirs(tmp_path)
    effective = received(invocation)["effective"]
    assert {
        key: effective[key]
        for key in (
            "num_steps",
            "guidance",
            "sigma_max",
            "seed",
            "fps",
            "blur_strength",
            "canny_threshold",
            "negative_prompt",
            "width",
            "height",
            "num_video_frames",
            "batch_size",
        )
    } == {
        "num_steps": 7,
        "guidance": 3.5,
        "sigma_max": 55.0,
        "seed": 1,
        "fps": 12,
        "blur_strength": "high",
        "canny_threshold": "low",
        "negative_prompt": "blurry, low quality",
        "width": 96,
        "height": 48,
        "num_video_frames": 5,
        "batch_size": 2,
    }
    assert effective["input_video_path"] == "/videos/input_0.mp4"
    assert (invocation / "stdout.log").exists() and (invocation / "stderr.log").exists()


def test_an_empty_negative_prompt_reaches_upstream_as_a_blank_it_can_run(tmp_path):
    backend = backend_for(tmp_path, "--negative_prompt={negative_prompt}")
    parameters = ExecutionParameters(**{**PARAMETERS.to_payload(), "negative_prompt": ""})

    outcome = backend.run_batch(
        batch_of(tmp_path, [run_input(0, {"vis": 1.0})], ("vis",), parameters=parameters)
    )

    assert outcome.runs[0].ok
    [invocation] = invocation_dirs(tmp_path)
    assert received(invocation)["effective"]["negative_prompt"] == " "
    assert json.loads((invocation / "controlnet_spec.json").read_text())["negative_prompt"] == " "


def test_strict_batch_lines_carry_each_runs_video_prompt_and_control_inputs(tmp_path):
    backend = backend_for(tmp_path)
    runs = [run_input(0, {"depth": 0.7}), run_input(1, {"depth": 0.3})]

    backend.run_batch(batch_of(tmp_path, runs, ("depth",)))

    [invocation] = invocation_dirs(tmp_path)
    lines = received(invocation)["lines"]
    assert [(line["prompt"], line["visual_input"]) for line in lines] == [
        ("prompt number 0", "/videos/input_0.mp4"),
        ("prompt number 1", "/videos/input_1.mp4"),
    ]
    assert [line["input_controls"] for line in lines] == [
        {"depth": "/videos/depth_0.mp4"},
        {"depth": "/videos/depth_1.mp4"},
    ]
    assert set(received(invocation)["controls"]) == {"depth"}


def test_each_sample_reads_its_own_weights_from_its_own_weight_maps(tmp_path):
    backend = backend_for(tmp_path)
    weights = [{"vis": 0.9, "edge": 0.1}, {"vis": 0.2, "edge": 0.8}, {"vis": 0.5, "edge": 0.5}]
    runs = [run_input(i, w) for i, w in enumerate(weights)]

    backend.run_batch(batch_of(tmp_path, runs, ("vis", "edge")))

    [invocation] = invocation_dirs(tmp_path)
    got = [line["weights"] for line in received(invocation)["lines"]]
    assert got == weights
    jsonl = [
        json.loads(line) for line in (invocation / "batch_input.jsonl").read_text().splitlines()
    ]
    maps = [line["control_overrides"]["vis"]["control_weight"] for line in jsonl]
    assert len(set(maps)) == 3
    tensor = torch.load(maps[1], weights_only=True)
    assert tuple(tensor.shape) == (6, 12)  # 48x96 frames at latent (1/8) resolution
    assert bool(torch.all(tensor == 0.2))


def test_mixed_batch_gives_a_control_a_run_did_not_ask_for_an_explicit_zero_map(tmp_path):
    backend = backend_for(tmp_path)
    runs = [run_input(0, {"vis": 0.6}), run_input(1, {"edge": 0.4, "depth": 0.3})]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis", "edge", "depth")))

    assert all(r.ok for r in outcome.runs)
    [invocation] = invocation_dirs(tmp_path)
    got = [line["weights"] for line in received(invocation)["lines"]]
    assert got == [{"vis": 0.6, "edge": 0.0, "depth": 0.0}, {"vis": 0.0, "edge": 0.4, "depth": 0.3}]
    spec = json.loads((invocation / "controlnet_spec.json").read_text())
    assert {k for k, v in spec.items() if isinstance(v, dict)} == {"vis", "edge", "depth"}


def test_prompt_with_shell_metacharacters_reaches_the_program_unchanged_and_runs_nothing(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("still here")
    pwned = tmp_path / "pwned"
    hostile = f"$(touch {pwned}); rm -rf {victim} && echo \"'`touch {pwned}`; exit 7"
    parameters = ExecutionParameters(**{**PARAMETERS.to_payload(), "negative_prompt": hostile})
    backend = backend_for(tmp_path, "--negative_prompt={negative_prompt}")

    outcome = backend.run_batch(
        batch_of(
            tmp_path, [run_input(0, {"vis": 1.0}, prompt=hostile)], ("vis",), parameters=parameters
        )
    )

    assert outcome.runs[0].ok
    [invocation] = invocation_dirs(tmp_path)
    report = received(invocation)
    assert report["lines"][0]["prompt"] == hostile
    assert f"--negative_prompt={hostile}" in report["argv"]
    assert report["effective"]["negative_prompt"] == hostile
    assert not pwned.exists()
    assert (victim / "keep.txt").read_text() == "still here"


def test_a_run_without_output_fails_alone(tmp_path):
    backend = backend_for(tmp_path)
    runs = [
        run_input(0, {"vis": 0.5}),
        run_input(1, {"vis": 0.5}, prompt="this one [[no-output]]"),
        run_input(2, {"vis": 0.5}),
    ]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis",)))

    assert [r.ok for r in outcome.runs] == [True, False, True]
    assert "no output" in (outcome.runs[1].error or "")
    assert outcome.runs[1].output_path is None
    assert outcome.runs[2].output_path.endswith("video_2/output.mp4")


def test_a_line_dropped_by_the_guardrail_fails_alone_and_later_outputs_stay_with_their_runs(
    tmp_path,
):
    backend = backend_for(tmp_path)
    runs = [
        run_input(0, {"vis": 0.5}),
        run_input(1, {"vis": 0.5}, prompt="unsafe [[blocked]]"),
        run_input(2, {"vis": 0.5}),
    ]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis",)))

    assert [r.ok for r in outcome.runs] == [True, False, True]
    third = Path(outcome.runs[2].output_path)
    assert (third.parent / "prompt.txt").read_text() == "prompt number 2"


def test_outputs_that_cannot_be_attributed_fail_their_runs_instead_of_being_misassigned(tmp_path):
    backend = backend_for(tmp_path, "--rewrite-prompts")
    runs = [
        run_input(0, {"vis": 0.5}, prompt="unsafe [[blocked]]"),
        run_input(1, {"vis": 0.5}),
    ]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis",)))

    assert [r.ok for r in outcome.runs] == [False, False]
    assert all(r.output_path is None for r in outcome.runs)
    assert "cannot be told apart" in (outcome.runs[1].error or "")


def test_out_of_memory_exit_raises_backend_out_of_memory_error(tmp_path):
    backend = backend_for(tmp_path, "--simulate-oom")
    runs = [run_input(0, {"vis": 0.5}), run_input(1, {"vis": 0.5})]

    with pytest.raises(BackendOutOfMemoryError, match="CUDA out of memory"):
        backend.run_batch(batch_of(tmp_path, runs, ("vis",)))


def test_other_nonzero_exit_fails_the_batch_with_the_log_tail(tmp_path):
    backend = backend_for(tmp_path, "--simulate-crash")

    with pytest.raises(BackendError, match="something broke in the fake") as caught:
        backend.run_batch(batch_of(tmp_path, [run_input(0, {"vis": 0.5})], ("vis",)))

    assert not isinstance(caught.value, BackendOutOfMemoryError)
    assert "status 3" in str(caught.value)


def test_two_batches_in_parallel_never_share_files(tmp_path):
    backend = backend_for(tmp_path)
    batches = [
        batch_of(tmp_path, [run_input(i, {"vis": 0.1 + 0.1 * i}, prompt=f"batch {i}")], ("vis",))
        for i in range(2)
    ]
    outcomes: list[Any] = [None, None]

    def work(index: int) -> None:
        outcomes[index] = backend.run_batch(batches[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    invocations = invocation_dirs(tmp_path)
    assert len(invocations) == 2
    files = [{p for p in inv.rglob("*") if p.is_file()} for inv in invocations]
    assert not files[0] & files[1]
    for index, outcome in enumerate(outcomes):
        output = Path(outcome.runs[0].output_path)
        assert (output.parent / "prompt.txt").read_text() == f"batch {index}"


def test_upscale_runs_at_batch_size_one_on_the_latest_output_of_each_prompt(tmp_path):
    backend = backend_for(tmp_path)
    runs = [run_input(0, {}), run_input(1, {})]
    sources = {"ps_000": "/outputs/ps_000.mp4", "ps_001": "/outputs/ps_001.mp4"}

    outcome = backend.run_batch(
        batch_of(
            tmp_path,
            runs,
            (),
            job_type="upscale",
            options={"scale": 3, "upscale_weight": 0.4, "source_outputs": sources},
        )
    )

    assert all(r.ok for r in outcome.runs)
    [invocation] = invocation_dirs(tmp_path)
    report = received(invocation)
    assert report["effective"]["batch_size"] == 1
    assert report["argv"][report["argv"].index("--batch_size") + 1] == "1"
    assert set(report["controls"]) == {"upscale"}
    assert [line["weights"] for line in report["lines"]] == [{"upscale": 0.4}] * 2
    assert [line["visual_input"] for line in report["lines"]] == list(sources.values())


def test_an_upscale_run_without_an_earlier_output_fails_alone(tmp_path):
    backend = backend_for(tmp_path)
    runs = [run_input(0, {}), run_input(1, {})]

    outcome = backend.run_batch(
        batch_of(
            tmp_path,
            runs,
            (),
            job_type="upscale",
            options={"scale": 3, "source_outputs": {"ps_001": "/outputs/ps_001.mp4"}},
        )
    )

    assert [r.ok for r in outcome.runs] == [False, True]
    assert "no earlier output" in (outcome.runs[0].error or "")


def test_an_upscale_batch_without_a_source_map_reads_each_runs_input_video(tmp_path):
    backend = backend_for(tmp_path)

    backend.run_batch(
        batch_of(tmp_path, [run_input(0, {})], (), job_type="upscale", options={"scale": 3})
    )

    [invocation] = invocation_dirs(tmp_path)
    assert received(invocation)["lines"][0]["visual_input"] == "/videos/input_0.mp4"


def test_upscale_at_a_scale_upstream_cannot_do_is_refused(tmp_path):
    backend = backend_for(tmp_path)

    with pytest.raises(BackendError, match="only upscales 3x") as caught:
        backend.run_batch(
            batch_of(tmp_path, [run_input(0, {})], (), job_type="upscale", options={"scale": 2})
        )
    assert caught.value.retryable is False


def test_runs_with_different_seeds_run_as_one_invocation_per_seed(tmp_path):
    backend = backend_for(tmp_path)
    runs = [
        run_input(0, {"vis": 0.5}, seed=11),
        run_input(1, {"vis": 0.5}, seed=22),
        run_input(2, {"vis": 0.5}, seed=11),
    ]

    outcome = backend.run_batch(batch_of(tmp_path, runs, ("vis",)))

    assert backend.seed_scope == "batch"
    assert [r.ok for r in outcome.runs] == [True, True, True]
    by_seed = {
        received(inv)["effective"]["seed"]: received(inv)["lines"]
        for inv in invocation_dirs(tmp_path)
    }
    assert {seed: [line["prompt"] for line in lines] for seed, lines in by_seed.items()} == {
        11: ["prompt number 0", "prompt number 2"],
        22: ["prompt number 1"],
    }


def test_checkpoints_under_the_checkpoint_dir_are_named_in_the_spec(tmp_path):
    backend = backend_for(tmp_path, checkpoint_dir="/ckpt")

    backend.run_batch(batch_of(tmp_path, [run_input(0, {"edge": 0.5})], ("edge",)))

    [invocation] = invocation_dirs(tmp_path)
    spec = json.loads((invocation / "controlnet_spec.json").read_text())
    assert spec["edge"]["ckpt_path"] == "/ckpt/nvidia/Cosmos-Transfer1-7B/edge_control.pt"
    assert spec["checkpoint_dir"] == "/ckpt"
