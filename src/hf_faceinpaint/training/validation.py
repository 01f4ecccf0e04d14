"""Validation during training: a fixed, seeded set of (image, mask) pairs scored by PSNR, SSIM and L1, the same
pairs inpainted by OpenCV Telea for reference, and PNG grids of masked input / output / ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io import atomic_path, frames_to_tensor, tensor_to_frames
from ..masks import MaskGenerator, parse_buckets
from ..metrics import l1, psnr, ssim
from ..models.classic import ClassicInpainter
from ..pipeline import predict

VAL_BUCKETS = "10-20,20-30,30-40,40-50"  # the MSL paper's Table 1 buckets
VAL_MASK_SEED = 2024  # fixed, so runs with different training seeds are scored on the same pairs


def validation_masks(count: int, resolution: int, kind: str = "irregular") -> torch.Tensor:
    """The fixed validation masks: (N, 1, R, R), 1 = hole.

    Args:
        count: Number of masks.
        resolution: Their side.
        kind: "irregular" cycles through the MSL paper's hole-ratio buckets; "square" draws squares of side 1/4 to
            1/2 of the image at random positions (the two-stage paper's square masks).
    """
    buckets = parse_buckets(VAL_BUCKETS) if kind == "irregular" else None
    generator = MaskGenerator(kind, resolution, buckets, seed=VAL_MASK_SEED)
    return torch.from_numpy(np.stack([generator(i) for i in range(count)]))[:, None].float()


def score(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean PSNR, SSIM and L1 of composited outputs against the ground truth, both (N, 3, H, W) in [-1, 1]."""
    out01, gt01 = (output.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2
    return {"psnr": psnr(out01, gt01).mean().item(), "ssim": ssim(out01, gt01).mean().item(), "l1": l1(out01, gt01).mean().item()}


def inpaint_batches(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Inpaint (N, 3, R, R) images in [-1, 1] with a generator, through `pipeline.predict` (the inference path of
    `inpaint` and `evaluate`) in eval mode; returns the composited outputs on the CPU, (N, 3, R, R) in [-1, 1]."""
    frames, holes = tensor_to_frames(images), masks[:, 0].numpy() > 0.5  # (N, R, R, 3) uint8, (N, R, R) bool
    was_training = model.training
    model.eval()
    outputs = [predict(model, frames[i : i + batch_size], holes[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
    model.train(was_training)
    return frames_to_tensor(np.concatenate(outputs))


def telea_outputs(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """OpenCV Telea on the same (image, mask) pairs, for the reference row of the validation log."""
    telea = ClassicInpainter("telea")
    filled = np.stack([telea(image, mask[0].numpy() > 0.5) for image, mask in zip(tensor_to_frames(images), masks)])
    return frames_to_tensor(filled)


def save_grid(path: Path, images: torch.Tensor, masks: torch.Tensor, outputs: torch.Tensor, rows: int = 8) -> None:
    """A PNG with one row per example: masked input (hole in white), output, ground truth. Written atomically."""
    masked = torch.where(masks.bool(), torch.ones_like(images), images)
    columns = [masked[:rows], outputs[:rows], images[:rows]]
    grid = torch.cat([torch.cat(list(column), dim=1) for column in columns], dim=2)  # (3, rows·H, 3·W)
    with atomic_path(path) as tmp:
        Image.fromarray(tensor_to_frames(grid[None])[0]).save(tmp, format="PNG")
