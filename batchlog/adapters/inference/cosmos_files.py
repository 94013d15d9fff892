"""The files of one Cosmos-Transfer1 invocation: spec, batch JSONL, weight maps, outputs.

Formats (confirmed against nvidia-cosmos/cosmos-transfer1, see docs/cosmos-transfer.md):

- spec JSON: one object per control (`{"control_weight": ..., "ckpt_path": ...}`) plus
  top-level keys that upstream's transfer.py copies onto its arguments when the same flag is
  not on the command line (num_steps, guidance, sigma_max, seed, fps, blur_strength, ...);
- batch JSONL: one line per run, `{"visual_input", "prompt", "control_overrides"}`, where each
  control's override carries `input_control` (null = computed upstream from the input video)
  and `control_weight`: the path of a constant `.pt` weight map written for that run, because
  upstream stacks weight maps per sample but uses sample 0's scalar weights for the batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchlog.domain.jobs import ExecutionParameters
from batchlog.runner.backend import BackendError, RunInput, RunOutcome

# Control -> checkpoint file under --checkpoint_dir (upstream cosmos_transfer1/checkpoints.py).
CHECKPOINT_FILES: Mapping[str, str] = {
    "vis": "nvidia/Cosmos-Transfer1-7B/vis_control.pt",
    "edge": "nvidia/Cosmos-Transfer1-7B/edge_control.pt",
    "depth": "nvidia/Cosmos-Transfer1-7B/depth_control.pt",
    "seg": "nvidia/Cosmos-Transfer1-7B/seg_control.pt",
    "upscale": "nvidia/Cosmos-Transfer1-7B/4kupscaler_control.pt",
}
UPSCALE_CONTROL = "upscale"
LATENT_STRIDE = 8  # the Cosmos tokenizer's spatial compression; maps are written at that size
# Upstream's batch path always guides against a negative prompt and fails on an empty one;
# a single space encodes like the empty text (plain guidance against no text).
BLANK_NEGATIVE_PROMPT = " "


def upstream_negative_prompt(negative_prompt: str) -> str:
    """The negative prompt as upstream gets it: an empty one becomes a single space."""
    return negative_prompt if negative_prompt.strip() else BLANK_NEGATIVE_PROMPT


@dataclass(frozen=True)
class InvocationFiles:
    """Where one invocation's inputs and outputs live, and which run is on which line."""

    directory: Path
    spec_path: Path
    batch_jsonl_path: Path
    out_dir: Path
    manifest_path: Path
    runs: tuple[RunInput, ...]
    seed: int
    batch_size: int

    def output_dir(self, line: int) -> Path:
        """Upstream's output folder for a JSONL line: <out_dir>/video_<line>."""
        return self.out_dir / f"video_{line}"


def weight_map_shape(parameters: ExecutionParameters) -> tuple[int, int]:
    """The [H, W] shape of a weight map: the batch's frame size at latent resolution."""
    return (
        max(1, math.ceil(parameters.height / LATENT_STRIDE)),
        max(1, math.ceil(parameters.width / LATENT_STRIDE)),
    )


def write_invocation(
    directory: Path,
    *,
    runs: Sequence[RunInput],
    controls: Sequence[str],
    parameters: ExecutionParameters,
    seed: int,
    batch_size: int,
    num_gpus: int,
    checkpoint_dir: str | None,
    checkpoint_paths: Mapping[str, str],
    upscale_weight: float | None = None,
) -> InvocationFiles:
    """Write spec, JSONL and weight maps for these runs into a fresh folder; return where."""
    directory.mkdir(parents=True, exist_ok=False)
    files = InvocationFiles(
        directory=directory,
        spec_path=directory / "controlnet_spec.json",
        batch_jsonl_path=directory / "batch_input.jsonl",
        out_dir=directory / "outputs",
        manifest_path=directory / "manifest.json",
        runs=tuple(runs),
        seed=seed,
        batch_size=batch_size,
    )
    files.out_dir.mkdir()
    upscale = upscale_weight is not None
    spec = controlnet_spec(
        controls=[UPSCALE_CONTROL] if upscale else controls,
        parameters=parameters,
        seed=seed,
        batch_size=batch_size,
        num_gpus=num_gpus,
        input_video=runs[0].input_video,
        checkpoint_dir=checkpoint_dir,
        checkpoint_paths=checkpoint_paths,
        default_weight=upscale_weight if upscale_weight is not None else 0.0,
    )
    if upscale_weight is not None:
        lines = [_upscale_line(run, upscale_weight) for run in runs]
        weight_maps: list[dict[str, str]] = [{} for _ in runs]
    else:
        weight_maps = _write_weight_maps(directory / "weights", runs, controls, parameters)
        lines = [
            _inference_line(run, controls, maps)
            for run, maps in zip(runs, weight_maps, strict=True)
        ]
    _write_json(files.spec_path, spec)
    files.batch_jsonl_path.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
    )
    _write_json(
        files.manifest_path,
        {
            "seed": seed,
            "batch_size": batch_size,
            "parameters": parameters.to_payload(),
            "runs": [
                {
                    "line": index,
                    "run_id": run.run_id,
                    "job_id": run.job_id,
                    "prompt_id": run.prompt_id,
                    "seed": run.seed,
                    "weights": dict(run.weights),
                    "weight_maps": maps,
                    "output": str(files.output_dir(index) / "output.mp4"),
                }
                for index, (run, maps) in enumerate(zip(runs, weight_maps, strict=True))
            ],
        },
    )
    return files


def controlnet_spec(
    *,
    controls: Sequence[str],
    parameters: ExecutionParameters,
    seed: int,
    batch_size: int,
    num_gpus: int,
    input_video: str,
    checkpoint_dir: str | None,
    checkpoint_paths: Mapping[str, str],
    default_weight: float,
) -> dict[str, Any]:
    """The controlnet spec: the batch's controls with checkpoints, and every shared parameter.

    `input_video_path` is the first run's video: upstream's validation refuses a spec without
    one when sigma_max < 80 or a control has no input_control, even in batch mode (where each
    line's `visual_input` is what is actually used).
    """
    spec: dict[str, Any] = {}
    for control in controls:
        entry: dict[str, Any] = {"control_weight": default_weight}
        checkpoint = checkpoint_paths.get(control)
        if checkpoint is None and checkpoint_dir is not None:
            checkpoint = str(Path(checkpoint_dir) / CHECKPOINT_FILES[control])
        if checkpoint is not None:
            entry["ckpt_path"] = checkpoint
        spec[control] = entry
    spec.update(
        {
            "input_video_path": input_video,
            "num_steps": parameters.num_steps,
            "guidance": parameters.guidance,
            "sigma_max": parameters.sigma_max,
            "seed": seed,
            "fps": parameters.fps,
            "blur_strength": parameters.blur_strength,
            "canny_threshold": parameters.canny_threshold,
            "negative_prompt": upstream_negative_prompt(parameters.negative_prompt),
            "width": parameters.width,
            "height": parameters.height,
            "num_video_frames": parameters.frames,
            "batch_size": batch_size,
            "num_gpus": num_gpus,
        }
    )
    if checkpoint_dir is not None:
        spec["checkpoint_dir"] = checkpoint_dir
    return spec


def collect_outputs(files: InvocationFiles, seconds: float) -> list[RunOutcome]:
    """Map upstream outputs to runs; a run without its output fails alone."""
    share = seconds / len(files.runs)
    assigned = _assign_outputs(files)
    outcomes = []
    for line, run in enumerate(files.runs):
        output = assigned.get(line) if assigned is not None else None
        if output is None:
            reason = (
                "produced no output (upstream wrote no video for it; its guardrail may have "
                "blocked the prompt or the video)"
                if assigned is not None
                else "has an output that cannot be told apart (prompt.txt matches no prompt)"
            )
            error = f"run {run.run_id} {reason}; see {files.directory}"
            outcomes.append(RunOutcome(run.run_id, ok=False, seconds=share, error=error))
        else:
            outcomes.append(
                RunOutcome(
                    run.run_id,
                    ok=True,
                    seconds=share,
                    output_path=str(output),
                    sha256=_sha256(output),
                )
            )
    return outcomes


def _assign_outputs(files: InvocationFiles) -> dict[int, Path] | None:
    """Line -> output video; None when the outputs cannot be attributed with certainty.

    Upstream numbers output folders by position among the videos that passed its guardrails,
    so when some are missing the others are matched, in order, by the prompt.txt upstream
    writes next to each output.
    """
    candidates = (files.output_dir(i) / "output.mp4" for i in range(len(files.runs)))
    present = [path for path in candidates if path.is_file()]
    if len(present) == len(files.runs):
        return dict(enumerate(present))
    assigned: dict[int, Path] = {}
    line = 0
    for output in present:
        text = _read_prompt(output.parent)
        while line < len(files.runs) and files.runs[line].prompt_text != text:
            line += 1
        if line == len(files.runs):
            return None
        assigned[line] = output
        line += 1
    return assigned


def _read_prompt(folder: Path) -> str | None:
    try:
        return (folder / "prompt.txt").read_text(encoding="utf-8")
    except OSError:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_weight_maps(
    folder: Path,
    runs: Sequence[RunInput],
    controls: Sequence[str],
    parameters: ExecutionParameters,
) -> list[dict[str, str]]:
    torch = _import_torch()
    folder.mkdir()
    height, width = weight_map_shape(parameters)
    maps: list[dict[str, str]] = []
    for index, run in enumerate(runs):
        paths: dict[str, str] = {}
        for control in controls:
            # A control the run did not ask for (mixed mode) gets an explicit zero map.
            weight = float(run.weights.get(control, 0.0))
            path = folder / f"line{index:04d}_{control}.pt"
            torch.save(torch.full((height, width), weight, dtype=torch.float64), path)
            paths[control] = str(path)
        maps.append(paths)
    return maps


def _inference_line(
    run: RunInput, controls: Sequence[str], weight_maps: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "visual_input": run.input_video,
        "prompt": run.prompt_text,
        "control_overrides": {
            control: {
                "input_control": run.control_inputs.get(control),
                "control_weight": weight_maps[control],
            }
            for control in controls
        },
    }


def _upscale_line(run: RunInput, weight: float) -> dict[str, Any]:
    # Upscale runs one sample per forward pass, so a scalar per-line weight is honoured exactly.
    return {
        "visual_input": run.input_video,
        "prompt": run.prompt_text,
        "control_overrides": {UPSCALE_CONTROL: {"control_weight": weight}},
    }


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise BackendError(
            "the cosmos-transfer backend writes weight maps with torch; install batchlog[torch]",
            retryable=False,
        ) from None
    return torch
