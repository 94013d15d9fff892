"""The four Cosmos-Transfer controls and the control signature of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Literal, get_args

Control = Literal["vis", "edge", "depth", "seg"]
CONTROLS: tuple[Control, ...] = get_args(Control)
CONTROLS_NEEDING_INPUT_FILES: frozenset[str] = frozenset({"depth", "seg"})


def control_signature(weights: Mapping[str, float]) -> frozenset[str]:
    """The controls that are on (weight > 0); a zero weight is off, not a control."""
    return frozenset(name for name, weight in weights.items() if weight > 0)


def ordered_controls(controls: Iterable[str]) -> list[str]:
    """Controls in canonical order (vis, edge, depth, seg)."""
    chosen = controls if isinstance(controls, frozenset) else frozenset(controls)
    return list(_canonical(chosen))


@lru_cache(maxsize=64)
def _canonical(chosen: frozenset[str]) -> tuple[str, ...]:
    return tuple(name for name in CONTROLS if name in chosen)


def describe_controls(controls: Iterable[str]) -> str:
    """Controls as the preview shows them: 'vis, edge, depth'."""
    return ", ".join(ordered_controls(controls)) or "no controls"
