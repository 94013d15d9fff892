"""The torch reference backend, for real: batch invariance, per-sample weights, files, failures.

Sizes are tiny (32x32, 4 frames, 3 steps) so the whole file runs in seconds on one core.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from batchlog.adapters.inference import create_backend as create_named_backend
from batchlog.adapters.inference.control_maps import edge_map, vis_map
from batchlog.adapters.inference.reference_model import build_reference_model, fingerprint
from batchlog.adapters.inference.torch_backend import TorchBackend, create_backend, resolve_device
from batchlog.domain.config import default_parameters
from batchlog.domain.errors import ValidationError
from batchlog.runner.backend import (
    BackendError,
    BackendOutOfMemoryError,
    BatchInput,
    InferenceBackend,
    RunInput,
)

pytestmark = pytest.mark.torch

TOLERANCE = 1e-5
PARAMETERS = replace(
    default_parameters(), width=32, height=32, frames=4, num_steps=3, negative_prompt="blurry"
)


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    torch.set_num_threads(1)
    loaded = create_backend(device="cpu")
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 48, dtype=np.float64)
    paths = {}
    for index in range(3):
        frames = np.stack(
            [
                np.stack([np.add.outer(ramp, ramp * (index + 1)) % 256] * 3, axis=-1)
                + rng.integers(0, 30, (48, 48, 3))
                for _ in range(6)
            ]
        ).clip(0, 255)
        paths[f"video{index}"] = str(root / f"video{index}.mp4")
        iio.imwrite(paths[f"video{index}"], frames.astype(np.uint8), fps=8, codec="libx264")
    paths["gif"] = str(root / "clip.gif")
    iio.imwrite(paths["gif"], (rng.random((3, 40, 40, 3)) * 255).astype(np.uint8))
    folder = root / "frames"
    folder.mkdir()
    for index in range(5):
        iio.imwrite(folder / f"{index:03d}.png", (rng.random((24, 24, 3)) * 255).astype(np.uint8))
    paths["folder"] = str(folder)
    paths["depth"] = str(root / "depth.png")
    iio.imwrite(paths["depth"], (rng.random((40, 40)) * 255).astype(np.uint8))
    paths["seg"] = str(root / "seg.mp4")
    iio.imwrite(paths["seg"], (rng.random((4, 32, 32, 3)) * 255).astype(np.uint8), fps=8)
    return paths


def make_run(
    media: dict[str, str], index: int, weights: dict[str, float], seed: int | None = None, **changes
) -> RunInput:
    run = RunInput(
        run_id=f"job_t:{index}",
        job_id="job_t",
        prompt_id=f"ps_{index}",
        prompt_text=f"a red car number {index} drives through rain",
        input_video=media[f"video{index % 3}"],
        control_inputs={"depth": media["depth"], "seg": media["seg"]},
        weights=weights,
        seed=index if seed is None else seed,
    )
    return replace(run, **changes)


def make_batch(
    runs: list[RunInput], tmp_path: Path, job_type: str = "inference", **options
) -> BatchInput:
    controls = tuple(
        c for c in ("vis", "edge", "depth", "seg") if any(r.weights.get(c, 0) > 0 for r in runs)
    )
    return BatchInput(
        "item_t", job_type, PARAMETERS, controls, tuple(runs), tmp_path, options=options
    )


def outputs(backend: TorchBackend, runs: list[RunInput], tmp_path: Path) -> dict[str, torch.Tensor]:
    generation = backend.generate(make_batch(runs, tmp_path))
    assert not generation.errors
    return generation.videos


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_the_backend_implements_the_protocol_and_is_registered_as_torch() -> None:
    backend = create_named_backend("torch", device="cpu")
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "torch"
    assert [
        backend.supports(t) for t in ("inference", "batch_inference", "upscale", "enhancement")
    ] == [
        True,
        True,
        True,
        False,
    ]


def test_an_unknown_device_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValidationError, match=r"device.*allowed: cpu, cuda, cuda:N, auto"):
        create_backend(device="tpu")


def test_auto_picks_cuda_when_torch_sees_it_and_cuda_is_refused_without_one() -> None:
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(resolve_device("auto")) == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="no CUDA device"):
            create_backend(device="cuda:0")


def test_weights_are_deterministic_from_the_fixed_seed_and_a_few_megabytes() -> None:
    first, second = build_reference_model(), build_reference_model()
    assert fingerprint(first) == fingerprint(second)
    assert 100_000 < sum(p.numel() for p in first.parameters()) * 4 < 8_000_000


def test_batched_outputs_match_one_at_a_time(backend: TorchBackend, media, tmp_path: Path) -> None:
    runs = [make_run(media, i, {"vis": 0.3 + 0.1 * i, "edge": 0.5}) for i in range(4)]
    batched = outputs(backend, runs, tmp_path)
    for run in runs:
        solo = outputs(backend, [run], tmp_path)[run.run_id]
        assert max_difference(batched[run.run_id], solo) <= TOLERANCE
    assert max_difference(batched[runs[0].run_id], batched[runs[1].run_id]) > 1e-2


def test_padding_a_run_with_zero_weight_branches_changes_nothing(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    strict = make_run(media, 0, {"vis": 0.6})
    padded = replace(strict, weights={"vis": 0.6, "edge": 0.0, "depth": 0.0, "seg": 0.0})
    others = [
        make_run(media, 1, {"edge": 0.4, "depth": 0.7}),
        make_run(media, 2, {"seg": 0.9, "vis": 0.2}),
    ]
    solo = outputs(backend, [strict], tmp_path)[strict.run_id]
    mixed = outputs(backend, [padded, *others], tmp_path)[strict.run_id]
    assert max_difference(mixed, solo) <= TOLERANCE


def test_a_branch_whose_weights_are_all_zero_contributes_exactly_zero(
    backend: TorchBackend,
) -> None:
    model, generator = backend.model, torch.Generator().manual_seed(3)
    latents = torch.randn(2, 48, 2, 4, 4, generator=generator)
    hints = {c: torch.randn(2, 48, 2, 4, 4, generator=generator) for c in ("vis", "depth")}
    text = model.encode_text(["a", "b"], torch.device("cpu"))
    with torch.inference_mode():
        embedded = model.embed_hints(hints)
        with_zero = model(
            latents, 0.3, text, embedded, {"vis": torch.tensor([0.5, 0.7]), "depth": torch.zeros(2)}
        )
        without = model(
            latents, 0.3, text, {"vis": embedded["vis"]}, {"vis": torch.tensor([0.5, 0.7])}
        )
        depth_on = model(
            latents, 0.3, text, embedded, {"vis": torch.tensor([0.5, 0.7]), "depth": torch.ones(2)}
        )
    assert torch.equal(with_zero, without)
    assert max_difference(depth_on, without) > 1e-3
    vis = torch.tensor([0.5, 0.7])
    assert torch.equal(
        model.prior(hints, {"vis": vis, "depth": torch.zeros(2)}),
        model.prior({"vis": hints["vis"]}, {"vis": vis}),
    )


def test_changing_one_samples_weight_changes_only_that_sample(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    runs = [make_run(media, i, {"vis": 0.5, "depth": 0.5}) for i in range(3)]
    changed = [runs[0], replace(runs[1], weights={"vis": 0.5, "depth": 0.9}), runs[2]]
    before, after = outputs(backend, runs, tmp_path), outputs(backend, changed, tmp_path)
    assert max_difference(before[runs[0].run_id], after[runs[0].run_id]) <= TOLERANCE
    assert max_difference(before[runs[2].run_id], after[runs[2].run_id]) <= TOLERANCE
    assert max_difference(before[runs[1].run_id], after[runs[1].run_id]) > 1e-3


def test_two_runs_with_different_seeds_in_one_batch_match_their_solo_outputs(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    same_prompt = {"prompt_text": "one prompt", "input_video": media["video0"]}
    first = make_run(media, 0, {"vis": 0.5}, seed=11, **same_prompt)
    second = make_run(media, 1, {"vis": 0.5}, seed=12345, **same_prompt)
    together = outputs(backend, [first, second], tmp_path)
    for run in (first, second):
        assert (
            max_difference(together[run.run_id], outputs(backend, [run], tmp_path)[run.run_id])
            <= TOLERANCE
        )
    assert max_difference(together[first.run_id], together[second.run_id]) > 1e-2


def test_run_batch_writes_one_video_per_run_whose_sha256_matches(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    runs = [make_run(media, i, {"vis": 0.5, "edge": 0.2}) for i in range(2)]
    outcome = backend.run_batch(make_batch(runs, tmp_path))
    assert outcome.device == "cpu" and outcome.peak_memory_bytes is None and outcome.seconds > 0
    for run, result in zip(runs, outcome.runs, strict=True):
        assert result.ok and result.run_id == run.run_id and result.output_path is not None
        path = Path(result.output_path)
        assert path.parent == tmp_path and "job_t" in path.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == result.sha256
        frames = iio.imread(path)
        assert frames.shape == (PARAMETERS.frames, PARAMETERS.height, PARAMETERS.width, 3)
    assert outcome.runs[0].sha256 != outcome.runs[1].sha256


def test_a_missing_depth_file_fails_only_that_run(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    good = make_run(media, 0, {"vis": 0.5, "depth": 0.5})
    missing = make_run(
        media, 1, {"vis": 0.5, "depth": 0.5}, control_inputs={"depth": str(tmp_path / "nope.png")}
    )
    outcome = backend.run_batch(make_batch([good, missing], tmp_path))
    ok, failed = outcome.runs
    assert ok.ok and Path(ok.output_path or "").exists()
    assert not failed.ok and "nope.png" in (failed.error or "") and failed.output_path is None
    solo = outputs(backend, [good], tmp_path)[good.run_id]
    assert (
        max_difference(
            backend.generate(make_batch([good, missing], tmp_path)).videos[good.run_id], solo
        )
        <= TOLERANCE
    )


def test_an_unreadable_input_video_fails_only_its_run(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    runs = [
        make_run(media, 0, {"edge": 0.5}),
        make_run(media, 1, {"edge": 0.5}, input_video=str(broken)),
    ]
    outcome = backend.run_batch(make_batch(runs, tmp_path))
    assert outcome.runs[0].ok
    assert not outcome.runs[1].ok and "broken.mp4" in (outcome.runs[1].error or "")


def test_gif_and_png_folder_inputs_are_resized_to_the_batch_size(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    runs = [
        make_run(media, 0, {"vis": 0.5}, input_video=media["gif"]),
        make_run(media, 1, {"vis": 0.5}, input_video=media["folder"]),
    ]
    videos = outputs(backend, runs, tmp_path)
    assert {tuple(v.shape) for v in videos.values()} == {(4, 32, 32, 3)}


def test_a_resolution_with_an_odd_latent_grid_is_padded_and_cropped(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    batch = replace(
        make_batch([make_run(media, 0, {"vis": 0.5})], tmp_path),
        parameters=replace(PARAMETERS, width=40, height=24),
    )
    (video,) = backend.generate(batch).videos.values()
    assert tuple(video.shape) == (4, 24, 40, 3)


def test_vis_blurs_and_edge_finds_the_edge_of_a_step() -> None:
    video = torch.zeros(1, 3, 1, 32, 32)
    video[..., 16:] = 1.0
    blurred = vis_map(video, "high")
    assert 0.0 < float(blurred[0, 0, 0, 10, 15]) < 1.0 and float(
        blurred[0, 0, 0, 10, 2]
    ) == pytest.approx(0.0)
    edges = edge_map(video, "medium")[0, 0, 0]
    assert edges[:, 15:17].sum() >= 32 and edges[:, :12].sum() == 0 and edges[:, 20:].sum() == 0


def test_upscale_writes_a_larger_refined_video_of_the_source(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    run = make_run(media, 0, {})
    outcome = backend.run_batch(
        make_batch([run], tmp_path, "upscale", scale=3, source_videos={run.prompt_id: media["seg"]})
    )
    (result,) = outcome.runs
    assert result.ok and result.output_path is not None and result.output_path.endswith("__x3.mp4")
    assert iio.imread(result.output_path).shape == (4, 96, 96, 3)
    assert hashlib.sha256(Path(result.output_path).read_bytes()).hexdigest() == result.sha256


def test_bfloat16_runs_the_same_model_close_to_float32(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    runs = [make_run(media, i, {"vis": 0.5, "edge": 0.5}) for i in range(2)]
    half = create_backend(device="cpu", dtype="bfloat16")
    low, full = half.generate(make_batch(runs, tmp_path)), outputs(backend, runs, tmp_path)
    assert all(v.dtype == torch.float32 for v in low.videos.values())
    assert 0.0 < max_difference(low.videos[runs[0].run_id], full[runs[0].run_id]) < 0.25


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
    ],
)
def test_out_of_memory_becomes_backend_out_of_memory(
    backend: TorchBackend, media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def out_of_memory(batch: BatchInput):
        raise error

    monkeypatch.setattr(backend, "generate", out_of_memory)
    with pytest.raises(BackendOutOfMemoryError, match="did not fit"):
        backend.run_batch(make_batch([make_run(media, 0, {"vis": 0.5})], tmp_path))


def test_other_torch_errors_fail_the_batch_as_retryable(
    backend: TorchBackend, media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(batch: BatchInput):
        raise RuntimeError("a kernel failed")

    monkeypatch.setattr(backend, "generate", broken)
    with pytest.raises(BackendError, match="a kernel failed") as raised:
        backend.run_batch(make_batch([make_run(media, 0, {"vis": 0.5})], tmp_path))
    assert raised.value.retryable and not isinstance(raised.value, BackendOutOfMemoryError)


def test_an_unsupported_job_type_is_refused_for_good(
    backend: TorchBackend, media, tmp_path: Path
) -> None:
    with pytest.raises(BackendError, match="enhancement") as raised:
        backend.run_batch(make_batch([make_run(media, 0, {})], tmp_path, "enhancement"))
    assert not raised.value.retryable
