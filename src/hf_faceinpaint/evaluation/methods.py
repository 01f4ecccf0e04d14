"""The methods under evaluation and how each one inpaints an evaluation frame.

A method is "telea" / "ns" (OpenCV), a preset name (built with random weights and labelled "(untrained)"), a shipped
checkpoint, a `save_pretrained` folder or a Hub repo id. Evaluation frames are square (R×R): classic methods run on
the frame itself; a network runs on the whole frame, resized to its `config.resolution` when that differs from R
(bicubic for the image, `pipeline.resize_mask` for the hole, which covers every pixel the resampling could blur hole
content into) and its output is resized back. Either way only hole pixels are taken from the method: every pixel
outside the mask is the ground truth exactly. This is the papers' protocol (the network sees the whole face), not
`pipeline.inpaint`'s crop around the hole, which would zoom into small holes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import parse_device
from ..models.classic import CLASSIC_METHODS, ClassicInpainter
from ..models.registry import PRESETS, SHIPPED, Inpainter, list_presets, load_model, shipped_checkpoint
from ..pipeline import resize_image, resize_mask, to_image, to_tensor

UNTRAINED_SUFFIX = " (untrained)"


@dataclass
class EvalMethod:
    """A loaded method.

    Args:
        name: The spec as given on the command line ("telea", "msl-tiny-128", a folder, ...).
        untrained: Whether its weights are a random initialisation (a bare preset name).
        source: Where its weights come from, in words.
        inpainter: The `ClassicInpainter` or network.
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
        """The network's working side, or None for a classic method (which works at any size)."""
        return None if isinstance(self.inpainter, ClassicInpainter) else int(self.inpainter.config.resolution)


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


def _is_untrained_preset(spec: str) -> bool:
    """A bare preset name, as `load_model` resolves it (an existing path of that name wins)."""
    return spec in PRESETS and not os.path.exists(spec)


def _source(spec: str, seed: int) -> str:
    """Where a method's weights come from, in words."""
    if spec in CLASSIC_METHODS:
        return "OpenCV classic inpainting, no weights"
    if spec in SHIPPED and not os.path.exists(spec):
        return f"shipped checkpoint {shipped_checkpoint(spec)}"
    if _is_untrained_preset(spec):
        return f"UNTRAINED preset: random initialisation (torch seed {seed}), not a trained model"
    if os.path.isdir(spec):
        return f"local directory {os.path.abspath(spec)}"
    return f"Hugging Face Hub repo {spec}"


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
        inpainter = load_model(spec, device=device, allow_untrained=True)
    return EvalMethod(spec, _is_untrained_preset(spec), _source(spec, seed), inpainter)


def run_method(method: EvalMethod, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Inpaint a batch of evaluation frames and composite: hole pixels from the method, the rest from the input.

    Args:
        method: The method.
        images: Ground-truth frames, (B, R, R, 3) uint8.
        masks: Holes, (B, R, R) bool, True = hole.

    Returns:
        (B, R, R, 3) uint8; equal to `images` wherever `masks` is False.
    """
    inpainter = method.inpainter
    if isinstance(inpainter, ClassicInpainter):
        filled = np.stack([inpainter(image, mask) for image, mask in zip(images, masks)])  # (B, R, R, 3)
    else:
        side, work = images.shape[1], method.resolution
        resized = work != side
        frames = np.stack([resize_image(image, work) for image in images]) if resized else images  # (B, W, W, 3)
        holes = np.stack([resize_mask(mask, work) for mask in masks]) if resized else masks  # (B, W, W)
        param = next(inpainter.parameters())
        x = to_tensor(frames, param.device, param.dtype)  # (B, 3, W, W)
        m = torch.from_numpy(holes[:, None]).to(device=param.device, dtype=param.dtype)  # (B, 1, W, W)
        with torch.inference_mode():
            filled = to_image(inpainter(x, m))  # (B, W, W, 3)
        if resized:
            filled = np.stack([resize_image(out, side) for out in filled])  # (B, R, R, 3)
    return np.where(masks[..., None], filled, images)
