"""Tensor filters the face stages share: Gaussian low-pass, hole erosion and depth, shifts, known-pixel resampling."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass with standard deviation `sigma` pixels (radius 3σ, reflected at the borders).

    Args:
        x: (B, C, H, W).
        sigma: Standard deviation in pixels; 0 returns `x`.
    """
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return x
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1)  # (C, 1, 2r+1)
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel[:, :, None, :], groups=channels)  # along the width
    return F.conv2d(x, kernel[:, :, :, None], groups=channels)  # along the height


def erode(hole: torch.Tensor) -> torch.Tensor:
    """A (B, 1, H, W) hole eroded by one pixel (its 3×3 minimum; pixels beyond the frame count as hole), as minima of
    shifted slices: about 8 times faster on a CPU than `max_pool2d` of the negated hole."""
    padded = F.pad(hole, (1, 1, 1, 1), value=1.0)  # (B, 1, H + 2, W + 2)
    rows = torch.minimum(torch.minimum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])  # (B, 1, H + 2, W)
    return torch.minimum(torch.minimum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])  # (B, 1, H, W)


def hole_depth(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Chessboard distance of every hole pixel to the nearest known pixel (1 next to one), counted up to `steps`
    (pixels beyond the frame count as hole); 0 at known pixels. OpenCV's two-pass distance transform: the same as
    `steps` erosions, at a fraction of their cost.

    Args:
        mask: (B, 1, H, W), 1 = hole.
        steps: Largest distance counted (the result is at most steps + 1).

    Returns:
        (B, 1, H, W), same dtype and device.
    """
    holes = (mask[:, 0] > 0.5).to("cpu", torch.uint8).numpy()  # (B, H, W)
    depth = np.stack([cv2.distanceTransform(hole, cv2.DIST_C, 3) for hole in holes])  # (B, H, W) float32
    return torch.from_numpy(np.minimum(depth, steps + 1))[:, None].to(mask)


def ramp(mask: torch.Tensor, length: float) -> torch.Tensor:
    """The weight of a stage's change at each pixel: 0 outside the hole, rising linearly with the depth into it
    (`hole_depth`) to 1 from `length` pixels in. (B, 1, H, W)."""
    return (hole_depth(mask, math.ceil(length)) / length).clamp(max=1.0)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved by dy rows and dx columns, zero where nothing moved in: out[..., i, j] = x[..., i − dy, j − dx]."""
    height, width = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dy) >= height or abs(dx) >= width:
        return out
    rows_in, rows_out = slice(max(-dy, 0), height - max(dy, 0)), slice(max(dy, 0), height + min(dy, 0))
    cols_in, cols_out = slice(max(-dx, 0), width - max(dx, 0)), slice(max(dx, 0), width + min(dx, 0))
    out[..., rows_out, cols_out] = x[..., rows_in, cols_in]
    return out


def known_cells(image: torch.Tensor, known: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Area resampling of the known pixels alone to a side×side grid: the mean known pixel of each cell (0 where
    none is known) and the known share of each cell.

    Args:
        image: (B, 3, H, W).
        known: (B, 1, H, W), 1 = known pixel.
        side: The grid's side.

    Returns:
        (cells (B, 3, side, side), share (B, 1, side, side)).
    """
    share = F.adaptive_avg_pool2d(known, side)
    return F.adaptive_avg_pool2d(image * known, side) / share.clamp_min(1e-6), share
