"""The methods under evaluation and how each one inpaints an evaluation frame.

A method is any model spec `registry.resolve_model` takes: "telea" / "ns" (OpenCV), a shipped checkpoint, a
`save_pretrained` folder, a Hub repo id, or a preset name (built with seeded random weights and labelled
"(untrained)"). Every method inpaints an evaluation frame exactly as `inpaint()` inpaints that frame as a photo
(`pipeline.inpaint_arrays`: the same crop, working size and paste-back), so the scores are those of what users get.
Only hole pixels are taken from the method: every pixel outside the mask is the ground truth exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import parse_device
from ..models.classic import CLASSIC_METHODS, ClassicInpainter
from ..models.registry import PRESETS, SHIPPED, Inpainter, list_presets, resolve_model
from ..pipeline import inpaint_arrays

UNTRAINED_SUFFIX = " (untrained)"


@dataclass
class EvalMethod:
    """A loaded method.

    Args:
        name: The spec as given on the command line ("telea", "msl-tiny-128", a folder, ...).
        untrained: Whether its weights are a random initialisation (a bare preset name).
        source: Where its weights come from, in words.
        inpainter: The `ClassicInpainter`, pipeline or network.
    """

    name: str
    untrained: bool
    source: str
    inpainter: Inpainter

    @property
    def label(self) -> str:
        """The name shown in tables, plots and grids; untrained networks carry "(untrained)"."""
        return self.name + (UNTRAINED_SUFFIX if self.untrained else "")

    @property
    def resolution(self) -> int | None:
        """The network's training resolution, or None for a classic method (which works at any size)."""
        if isinstance(self.inpainter, ClassicInpainter):
            return None
        return int(getattr(self.inpainter, "network", self.inpainter).config.resolution)


def parse_methods(spec: str) -> list[str]:
    """Split a comma-separated --methods value.

    Args:
        spec: E.g. "msl-tiny-128,telea,ns,runs/tiny/final".

    Raises:
        ValueError: Empty, or a method listed twice.
    """
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError("--methods is empty; expected e.g. 'telea,ns,msl-tiny-128'")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"method listed twice in --methods: {', '.join(repeated)}")
    return names


def resolve_device(name: str | None) -> torch.device:
    """A `--device` value as a device this machine has; None picks CUDA when available, else the CPU.

    Args:
        name: E.g. "cpu", "cuda", "cuda:1", "mps", or None.

    Raises:
        ValueError: Not a device name, or a device this machine lacks.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return parse_device(name)


def load_method(spec: str, device: torch.device, seed: int) -> EvalMethod:
    """Load one method; a preset is built untrained with the torch RNG seeded from `seed` (the global RNG is kept).

    Args:
        spec: "telea", "ns", a preset name, a shipped checkpoint, a save_pretrained folder or a Hub repo id.
        device: Device for a network.
        seed: Seed for an untrained preset's random weights, so reruns give the same numbers.

    Raises:
        ValueError: Unknown method (naming it and what is accepted).
        OSError, CheckpointError: A folder or Hub repo that holds no readable checkpoint, or cannot be downloaded.
    """
    known = spec in CLASSIC_METHODS or spec in PRESETS or spec in SHIPPED or os.path.exists(spec)
    if not known and "/" not in spec:  # neither a known name, a path, nor a Hub repo id ("org/name"): no network
        raise ValueError(
            f"unknown method {spec!r}: expected {', '.join(sorted(CLASSIC_METHODS))}, a preset (evaluated untrained: "
            f"{', '.join(list_presets())}), a save_pretrained folder or a Hub repo id 'org/name'"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        resolved = resolve_model(spec, device=device, allow_untrained=True)
    source = resolved.source + (f" (torch seed {seed})" if resolved.untrained else "")
    return EvalMethod(spec, resolved.untrained, source, resolved.model)


def run_method(method: EvalMethod, images: np.ndarray, masks: np.ndarray, precision: str = "auto") -> np.ndarray:
    """Inpaint a batch of evaluation frames as `inpaint()` would: hole pixels from the method, the rest the input.

    Args:
        method: The method.
        images: Ground-truth frames, (B, R, R, 3) uint8.
        masks: Holes, (B, R, R) bool, True = hole.
        precision: A neural method's arithmetic (`precision.PRECISIONS`).

    Returns:
        (B, R, R, 3) uint8; equal to `images` wherever `masks` is False.
    """
    return np.stack(inpaint_arrays(method.inpainter, list(images), list(masks), precision=precision))
