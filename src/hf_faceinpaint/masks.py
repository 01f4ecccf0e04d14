"""Hole masks for training and evaluating inpainting models: free-form, square and rectangular masks, a seeded
per-sample generator, and a loader for mask folders such as the NVIDIA irregular mask test set.

Conventions: a mask is a `(H, W)` numpy bool array, True = hole; a size is an int (square) or `(height, width)`.
Hole-ratio buckets are half-open intervals `(lo, hi]`, as in the MSL paper's Table 1 ("(10%, 20%]").
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Literal, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .face import geometry

Size = Union[int, tuple[int, int]]
Bucket = tuple[float, float]

#: The six hole-ratio buckets of the NVIDIA irregular mask test set: (0%, 10%], (10%, 20%], ..., (50%, 60%].
BUCKETS: list[Bucket] = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
POLARITIES = ("white-hole", "black-hole")
MASK_KINDS = ("irregular", "square", "mixed", "face")

# Free-form strokes, after DeepFill v2's generator; lengths are relative to the image (scaled by `scale`).
_STROKE_VERTICES = (4, 12)
_STROKE_WIDTH = (0.04, 0.12)  # brush width, fraction of the shorter image side
_STROKE_TURN = 2 * math.pi / 5  # largest heading change between two segments
_BLOB_RADIUS = (0.04, 0.18)  # ellipse half-axes / polygon radius, fraction of the shorter side
_BLOB_PROBABILITY = 0.2  # share of blobs among the shapes drawn
_SPECK_SIDE = (0.015, 0.05)  # speck side / diameter, fraction of the shorter side
_SPECK_COUNT = (3, 12)  # specks per cluster
_SPECK_SPREAD = 0.12  # standard deviation of speck positions around the cluster centre, fraction of the shorter side
_SHRINK = 0.7  # shape scale factor after a shape overshot the target ratio
_MAX_SHAPES = 2000  # shapes drawn (kept or discarded) before a targeted mask gives up


def _hw(size: Size) -> tuple[int, int]:
    """An int or (height, width) as a validated (height, width) of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"size must be a positive int or a (height, width) pair of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _check_range(ratio_range: Sequence[float], name: str = "ratio_range") -> Bucket:
    """Validate a hole-ratio interval (lo, hi] with 0 <= lo < hi <= 1."""
    if len(ratio_range) != 2:
        raise ValueError(f"{name} must be a (lo, hi) pair, got {ratio_range!r}")
    lo, hi = float(ratio_range[0]), float(ratio_range[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"{name} must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    return lo, hi


def hole_ratio(mask: np.ndarray) -> float:
    """Share of hole pixels in a mask.

    Args:
        mask: Array-like mask; non-zero / True entries are holes.

    Raises:
        ValueError: The mask is empty.
    """
    mask = np.asarray(mask)
    if mask.size == 0:
        raise ValueError("mask is empty")
    return np.count_nonzero(mask) / mask.size


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """A (H, W) hole mask as a float32 tensor (1, H, W), 1 = hole, 0 = known.

    Args:
        mask: (H, W) array; non-zero / True entries are holes.

    Raises:
        ValueError: The mask is not two-dimensional.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    return torch.from_numpy((mask != 0).astype(np.float32))[None]


def parse_buckets(spec: str) -> list[Bucket]:
    """Parse percent ranges such as ``"10-20,20-30"`` into hole-ratio buckets ``[(0.1, 0.2), (0.2, 0.3)]``.

    Args:
        spec: Comma-separated ``lo-hi`` pairs in percent (0 <= lo < hi <= 100); a trailing ``%`` is allowed.

    Raises:
        ValueError: The string is empty or a range is malformed or out of order.
    """
    if not spec.strip():
        raise ValueError("bucket string is empty; expected ranges in percent such as '10-20,20-30'")
    buckets = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)%?\s*-\s*(\d+(?:\.\d+)?)%?\s*", part)
        if match is None:
            raise ValueError(f"bad bucket {part.strip()!r} in {spec!r}; expected 'lo-hi' in percent, e.g. '10-20'")
        lo, hi = float(match[1]), float(match[2])
        if not lo < hi <= 100:
            raise ValueError(f"bad bucket {part.strip()!r} in {spec!r}; need 0 <= lo < hi <= 100")
        buckets.append((lo / 100, hi / 100))
    return buckets


def _draw_stroke(canvas: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    """Draw one thick random-walk brush stroke (lines joined by round caps) onto a uint8 canvas, in place."""
    height, width = canvas.shape
    short = min(height, width)
    brush = max(1, round(rng.uniform(*_STROKE_WIDTH) * short * scale))
    mean_len = math.hypot(height, width) / 8 * scale  # DeepFill v2's average segment length
    x, y = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
    heading = rng.uniform(0, 2 * math.pi)
    cv2.circle(canvas, (round(x), round(y)), brush // 2, 1, -1)
    for _ in range(rng.integers(_STROKE_VERTICES[0], _STROKE_VERTICES[1] + 1)):
        heading += rng.uniform(-_STROKE_TURN, _STROKE_TURN)
        length = np.clip(rng.normal(mean_len, mean_len / 2), 0, 2 * mean_len)
        nx = min(max(x + length * math.cos(heading), 0), width - 1)
        ny = min(max(y + length * math.sin(heading), 0), height - 1)
        cv2.line(canvas, (round(x), round(y)), (round(nx), round(ny)), 1, brush)
        cv2.circle(canvas, (round(nx), round(ny)), brush // 2, 1, -1)
        x, y = nx, ny


def _draw_blob(canvas: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    """Draw one filled random ellipse or star-shaped polygon onto a uint8 canvas, in place."""
    height, width = canvas.shape
    short = min(height, width)
    center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    if rng.random() < 0.5:
        axes = tuple(max(1, round(rng.uniform(*_BLOB_RADIUS) * short * scale)) for _ in range(2))
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return
    count = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(*_BLOB_RADIUS) * short * scale * rng.uniform(0.4, 1.0, count)
    points = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)


def _draw_specks(canvas: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    """Draw a cluster of small squares and dots onto a uint8 canvas, in place: the fragmented holes of the NVIDIA
    masks, or a user dabbing out blemishes."""
    height, width = canvas.shape
    short = min(height, width)
    cx, cy = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
    for _ in range(rng.integers(_SPECK_COUNT[0], _SPECK_COUNT[1] + 1)):
        x = int(np.clip(rng.normal(cx, _SPECK_SPREAD * short), 0, width - 1))
        y = int(np.clip(rng.normal(cy, _SPECK_SPREAD * short), 0, height - 1))
        side = max(1, round(rng.uniform(*_SPECK_SIDE) * short * scale))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + side - 1, y + side - 1), 1, -1)
        else:
            cv2.circle(canvas, (x, y), side // 2, 1, -1)


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator, scale: float, speck_share: float = 0.0) -> None:
    """Draw a stroke or, less often, a blob; with `speck_share` > 0, that share of the shapes are speck clusters."""
    if speck_share > 0 and rng.random() < speck_share:
        _draw_specks(canvas, rng, scale)
    elif rng.random() < _BLOB_PROBABILITY:
        _draw_blob(canvas, rng, scale)
    else:
        _draw_stroke(canvas, rng, scale)


def irregular_mask(
    size: Size, rng: np.random.Generator, ratio_range: tuple[float, float] | None = None, speck_share: float = 0.0
) -> np.ndarray:
    """A free-form mask of thick random brush strokes and a few elliptical / polygonal blobs, optionally with
    clusters of small specks.

    Without `ratio_range`, 1-5 strokes and 0-1 blobs are drawn (at 256²: holes of 0.7-59%, mean 20%), plus one
    speck cluster with probability `speck_share`. With it, a stopping level is drawn uniformly in (lo, hi] and
    shapes are added one at a time until the hole ratio reaches it; a shape that would push the ratio above `hi` is
    discarded and the following shapes are drawn smaller.

    Args:
        size: Mask size, an int or (height, width).
        rng: Random generator; the mask is a pure function of its state.
        ratio_range: Optional (lo, hi) target: the hole ratio of the result lies in (lo, hi].
        speck_share: Probability in [0, 1] that a shape is a cluster of small squares and dots (0: strokes and
            blobs only, the masks of earlier versions for the same seed).

    Returns:
        (H, W) bool array, True = hole.

    Raises:
        ValueError: Bad size or range, or no pixel count of this size gives a ratio in (lo, hi].
        RuntimeError: The target was not reached within the shape budget.
    """
    if not 0.0 <= speck_share <= 1.0:
        raise ValueError(f"speck_share must lie in [0, 1], got {speck_share!r}")
    height, width = _hw(size)
    canvas = np.zeros((height, width), np.uint8)
    if ratio_range is None:
        for _ in range(rng.integers(1, 6)):
            _draw_stroke(canvas, rng, 1.0)
        for _ in range(rng.integers(0, 2)):
            _draw_blob(canvas, rng, 1.0)
        if speck_share > 0 and rng.random() < speck_share:
            _draw_specks(canvas, rng, 1.0)
        return canvas.astype(bool)

    lo, hi = _check_range(ratio_range)
    total = height * width
    # Smallest pixel count above lo; the interval is unreachable when it already exceeds hi.
    first = math.floor(lo * total) + 1
    while first / total <= lo:
        first += 1
    if first > total or first / total > hi:
        raise ValueError(f"no {height}x{width} mask has a hole ratio in ({lo}, {hi}]")
    # Stop at a random level inside the interval, so ratios spread over it instead of piling up just above lo.
    stop = max(first, math.floor(rng.uniform(lo, hi) * total))
    count, scale = 0, 1.0
    for _ in range(_MAX_SHAPES):
        trial = canvas.copy()
        _draw_shape(trial, rng, scale, speck_share)
        trial_count = np.count_nonzero(trial)
        if trial_count / total > hi:
            scale *= _SHRINK  # overshoot: drop this shape, make the next ones smaller
            continue
        canvas, count = trial, trial_count
        if count >= stop:
            return canvas.astype(bool)
    raise RuntimeError(
        f"could not draw a {height}x{width} irregular mask with hole ratio in ({lo}, {hi}] in {_MAX_SHAPES} shapes "
        f"(reached {count / total:.4f})"
    )


def _square_side(side: int | float, short: int) -> int:
    """A square side in pixels from pixels (int) or a fraction of the shorter image side (float < 1)."""
    if isinstance(side, bool) or not isinstance(side, (int, float, np.integer, np.floating)):
        raise ValueError(f"side must be an int (pixels) or a float fraction < 1, got {side!r}")
    if isinstance(side, (float, np.floating)):
        if 0 < side < 1:
            side = round(side * short)
        elif side >= 1 and float(side).is_integer():
            side = int(side)
        else:
            raise ValueError(f"side must be a pixel count or a fraction in (0, 1), got {side!r}")
    if not 1 <= side <= short:
        raise ValueError(f"square side must be between 1 and {short} pixels, got {side}")
    return int(side)


def square_mask(
    size: Size, side: int | float, center: bool = True, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A square hole, centred (the two-stage paper's test protocol) or at a random position.

    The centred square's top-left corner is at ((H - side) // 2, (W - side) // 2).

    Args:
        size: Mask size, an int or (height, width).
        side: Side in pixels (int), or a fraction of the shorter image side (float in (0, 1), rounded).
        center: Centre the square; when False, `rng` picks a uniform random position inside the image.
        rng: Random generator, required when `center` is False.

    Returns:
        (H, W) bool array, True = hole.

    Raises:
        ValueError: Bad size or side, or `center=False` without `rng`.
    """
    height, width = _hw(size)
    side = _square_side(side, min(height, width))
    if center:
        top, left = (height - side) // 2, (width - side) // 2
    elif rng is None:
        raise ValueError("square_mask needs an rng when center=False")
    else:
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    mask = np.zeros((height, width), bool)
    mask[top : top + side, left : left + side] = True
    return mask


def random_rectangle_mask(
    size: Size, rng: np.random.Generator, min_frac: float = 0.25, max_frac: float = 0.5
) -> np.ndarray:
    """An axis-aligned rectangular hole of random size and position, for training.

    Args:
        size: Mask size, an int or (height, width).
        rng: Random generator.
        min_frac: Smallest rectangle height / width, as a fraction of the image height / width.
        max_frac: Largest rectangle height / width, as a fraction of the image height / width.

    Returns:
        (H, W) bool array, True = hole.

    Raises:
        ValueError: Bad size, or fractions outside 0 < min_frac <= max_frac <= 1.
    """
    height, width = _hw(size)
    if not 0 < min_frac <= max_frac <= 1:
        raise ValueError(f"need 0 < min_frac <= max_frac <= 1, got min_frac={min_frac}, max_frac={max_frac}")
    rect_h = max(1, round(rng.uniform(min_frac, max_frac) * height))
    rect_w = max(1, round(rng.uniform(min_frac, max_frac) * width))
    top, left = int(rng.integers(0, height - rect_h + 1)), int(rng.integers(0, width - rect_w + 1))
    mask = np.zeros((height, width), bool)
    mask[top : top + rect_h, left : left + rect_w] = True
    return mask


#: Face-part boxes on an aligned face frame (`face.geometry.PARTS`: the `--mask-mode parts` protocol of `evaluate`,
#: what a user paints over), as (top, bottom, left, right) fractions of the frame; training draws the lower face and
#: the other half too (`face.geometry.TRAINING_PARTS`), jittered.
FACE_PARTS: dict[str, tuple[float, float, float, float]] = {
    name: (box.top, box.bottom, box.left, box.right) for name, box in geometry.PARTS.items()}
_TRAINING_PARTS: dict[str, tuple[float, float, float, float]] = {
    name: (box.top, box.bottom, box.left, box.right) for name, box in geometry.TRAINING_PARTS.items()}
_PART_SHIFT = 0.06  # standard deviation of a training box's centre shift, fraction of the frame
_PART_SCALE = (0.8, 1.3)  # range of a training box's size factor
# LaMa-style thick masks ("thick" irregular strokes and boxes of its MixedMaskGenerator), fractions of the side.
_THICK_WIDTH = (0.08, 0.3)
_THICK_BOX = (0.15, 0.6)
# The "face" kind's mixture: face parts, thick masks, and the free-form strokes / blobs / specks of "irregular".
FACE_MIX = {"part": 0.4, "thick": 0.3, "irregular": 0.3}


def part_mask(
    size: Size, part: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The hole over a face part of an aligned face frame (`FACE_PARTS`; in training also "lower-face" and
    "right-half-face").

    Args:
        size: Mask size, an int or (height, width).
        part: The part's name.
        rng: With a generator, the box is jittered as in training: its centre shifted (σ = 6 % of the frame) and its
            size scaled by 0.8-1.3. Without, the exact evaluation box.

    Returns:
        (H, W) bool array, True = hole.
    """
    if part not in _TRAINING_PARTS:
        raise ValueError(f"unknown face part {part!r}; use one of {', '.join(_TRAINING_PARTS)}")
    height, width = _hw(size)
    top, bottom, left, right = _TRAINING_PARTS[part]
    if rng is not None:
        scale = rng.uniform(*_PART_SCALE)
        cy, cx = (top + bottom) / 2 + rng.normal(0, _PART_SHIFT), (left + right) / 2 + rng.normal(0, _PART_SHIFT)
        half_h, half_w = (bottom - top) * scale / 2, (right - left) * scale / 2
        top, bottom, left, right = cy - half_h, cy + half_h, cx - half_w, cx + half_w
    rows = slice(max(0, round(top * height)), min(height, max(round(bottom * height), round(top * height) + 1)))
    cols = slice(max(0, round(left * width)), min(width, max(round(right * width), round(left * width) + 1)))
    mask = np.zeros((height, width), bool)
    mask[rows, cols] = True
    if not mask.any():  # jittered off the frame: fall back to the exact box
        return part_mask(size, part)
    return mask


def thick_mask(size: Size, rng: np.random.Generator) -> np.ndarray:
    """A LaMa-style thick mask: 1-4 wide brush strokes or 1-3 large boxes (half the draws each).

    Args:
        size: Mask size, an int or (height, width).
        rng: Random generator.

    Returns:
        (H, W) bool array, True = hole.
    """
    height, width = _hw(size)
    short = min(height, width)
    canvas = np.zeros((height, width), np.uint8)
    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 5)):
            brush = max(1, round(rng.uniform(*_THICK_WIDTH) * short))
            points = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(rng.integers(2, 5))]
            for (x0, y0), (x1, y1) in zip(points, points[1:]):
                cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 1, brush)
                cv2.circle(canvas, (round(x1), round(y1)), brush // 2, 1, -1)
    else:
        for _ in range(rng.integers(1, 4)):
            box_h = max(1, round(rng.uniform(*_THICK_BOX) * height))
            box_w = max(1, round(rng.uniform(*_THICK_BOX) * width))
            top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
            canvas[top : top + box_h, left : left + box_w] = 1
    if canvas.all():  # nothing left to inpaint from
        canvas[: height // 2] = 0
    return canvas.astype(bool)


def face_mix_mask(size: Size, rng: np.random.Generator, speck_share: float = 0.0) -> np.ndarray:
    """A training mask that forces face semantics: a jittered face-part box (40 %), a thick mask (30 %) or a
    free-form `irregular_mask` (30 %)."""
    draw = rng.random()
    if draw < FACE_MIX["part"]:
        return part_mask(size, str(rng.choice(list(_TRAINING_PARTS))), rng)
    if draw < FACE_MIX["part"] + FACE_MIX["thick"]:
        return thick_mask(size, rng)
    return irregular_mask(size, rng, None, speck_share)


class MaskGenerator:
    """Seeded training masks: `generator(index)` is a pure function of (seed, index), so every data-loader
    worker, rank or resumed run produces the same mask for the same sample index.

    Kinds: "irregular" (`irregular_mask`), "square" (a square at a random position; side 1/4-1/2 of the shorter
    image side, or any side whose ratio lies in the bucket), "mixed" (either, with equal probability per index),
    "face" (`face_mix_mask`: face parts, thick masks and free-form strokes; buckets do not apply).
    With buckets, index i targets bucket ``buckets[i % len(buckets)]``, so consecutive indices cycle through them.
    """

    def __init__(
        self,
        kind: Literal["irregular", "square", "mixed", "face"] = "irregular",
        size: Size = 128,
        buckets: Sequence[Sequence[float]] | str | None = None,
        seed: int = 0,
        speck_share: float = 0.0,
    ) -> None:
        """Args:
        kind: "irregular", "square", "mixed" or "face".
        size: Mask size, an int or (height, width).
        buckets: Hole-ratio ranges (lo, hi] to cycle through, or a string for `parse_buckets`; None for
            untargeted masks.
        seed: Non-negative base seed.
        speck_share: Irregular masks only: probability in [0, 1] that a shape is a cluster of small specks
            (see `irregular_mask`).

        Raises:
            ValueError: Unknown kind, bad size, seed or bucket, or a bucket no square of this size can hit.
        """
        if kind not in MASK_KINDS:
            raise ValueError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}")
        if kind == "face" and buckets is not None:
            raise ValueError("mask kind 'face' draws face parts and thick masks; hole-ratio buckets do not apply")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0.0 <= speck_share <= 1.0:
            raise ValueError(f"speck_share must lie in [0, 1], got {speck_share!r}")
        self.kind = kind
        self.speck_share = float(speck_share)
        self.size = _hw(size)
        self.seed = int(seed)
        if isinstance(buckets, str):
            buckets = parse_buckets(buckets)
        self.buckets = None if buckets is None else [_check_range(b, "bucket") for b in buckets]
        if self.buckets == []:
            raise ValueError("buckets must be None or a non-empty list of (lo, hi) ranges")
        height, width = self.size
        short = min(height, width)
        if self.buckets is None:
            self._square_sides = [np.arange(max(1, round(short / 4)), max(1, round(short / 2)) + 1)]
        else:
            self._square_sides = [
                np.array([s for s in range(1, short + 1) if lo < s * s / (height * width) <= hi])
                for lo, hi in self.buckets
            ]
        if kind in ("square", "mixed"):
            for sides, bucket in zip(self._square_sides, self.buckets or [None]):
                if sides.size == 0:
                    raise ValueError(f"no square in a {height}x{width} mask has a hole ratio in {bucket}")

    def __repr__(self) -> str:
        return f"MaskGenerator(kind={self.kind!r}, size={self.size}, buckets={self.buckets}, seed={self.seed})"

    def __call__(self, index: int) -> np.ndarray:
        """The mask for sample `index`.

        Args:
            index: Non-negative sample index.

        Returns:
            (H, W) bool array, True = hole.
        """
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be a non-negative int, got {index!r}")
        rng = np.random.default_rng([self.seed, int(index)])
        slot = 0 if self.buckets is None else index % len(self.buckets)
        bucket = None if self.buckets is None else self.buckets[slot]
        if self.kind == "face":
            return face_mix_mask(self.size, rng, self.speck_share)
        kind = self.kind if self.kind != "mixed" else ("irregular" if rng.random() < 0.5 else "square")
        if kind == "irregular":
            return irregular_mask(self.size, rng, bucket, self.speck_share)
        return square_mask(self.size, int(rng.choice(self._square_sides[slot])), center=False, rng=rng)


class MaskFolder:
    """The mask images of a folder (PNG, JPG, BMP; sorted by name) as bool hole maps.

    When the folder holds a ``masks.csv`` with columns ``file,hole_ratio`` (as the NVIDIA irregular mask test set
    does), `ratios()` reads the hole ratios from it; files it does not list are measured.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        polarity: Literal["white-hole", "black-hole"] = "white-hole",
        size: Size | None = None,
    ) -> None:
        """Args:
        root: Folder with the mask images.
        polarity: "white-hole" (pixels > 127 are holes, e.g. NVIDIA masks) or "black-hole" (pixels <= 127 are).
        size: Optional output size, an int or (height, width); masks are resized with nearest neighbour.

        Raises:
            FileNotFoundError: The folder does not exist or holds no mask images.
            ValueError: Unknown polarity or bad size.
        """
        if polarity not in POLARITIES:
            raise ValueError(f"unknown polarity {polarity!r}; use 'white-hole' or 'black-hole'")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"mask folder not found: {self.root}")
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in MASK_EXTENSIONS and p.is_file())
        if not self.files:
            raise FileNotFoundError(f"no mask files ({', '.join(MASK_EXTENSIONS)}) in {self.root}")
        self.polarity = polarity
        self.size = None if size is None else _hw(size)
        self._ratios: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"MaskFolder({str(self.root)!r}, polarity={self.polarity!r}, size={self.size}, files={len(self)})"

    def _load(self, path: Path, size: tuple[int, int] | None) -> np.ndarray:
        """Read one file as a bool hole map, resized to `size` (height, width) when given."""
        try:
            with Image.open(path) as img:
                grey = img.convert("L")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"mask file {path} is not a readable image ({err})") from err
        if size is not None and grey.size != (size[1], size[0]):
            grey = grey.resize((size[1], size[0]), Image.NEAREST)
        white = np.asarray(grey) > 127
        return white if self.polarity == "white-hole" else ~white

    def __getitem__(self, index: int) -> np.ndarray:
        """Mask `index` as an (H, W) bool array, True = hole (resized to `size` when set).

        Args:
            index: File index (negative indices count from the end).

        Raises:
            IndexError: Index out of range.
            ValueError: The file is not a readable image.
        """
        return self._load(self.files[index], self.size)

    def _read_csv(self) -> dict[str, float]:
        """File name -> hole ratio from ``masks.csv``, or {} when the folder has none."""
        path = self.root / "masks.csv"
        if not path.is_file():
            return {}
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"file", "hole_ratio"} <= set(reader.fieldnames):
                raise ValueError(f"{path} must have the columns 'file' and 'hole_ratio', got {reader.fieldnames}")
            table = {}
            for row in reader:
                try:
                    table[row["file"]] = float(row["hole_ratio"])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path} line {reader.line_num}: bad hole_ratio ({err})") from err
        return table

    def ratios(self) -> np.ndarray:
        """Hole ratio of every file at its native resolution, (len,) float64; computed once, then cached.

        Taken from ``masks.csv`` when it lists the file, else measured. Resizing to `size` can move a mask's
        ratio slightly; measure ``hole_ratio(folder[i])`` when the resized ratio matters.
        """
        if self._ratios is None:
            table = self._read_csv()
            self._ratios = np.array(
                [table[p.name] if p.name in table else hole_ratio(self._load(p, None)) for p in self.files]
            )
        return self._ratios

    def in_bucket(self, lo: float, hi: float) -> list[int]:
        """Indices of the masks whose hole ratio (see `ratios`) lies in (lo, hi].

        Args:
            lo: Exclusive lower bound of the hole ratio.
            hi: Inclusive upper bound of the hole ratio.
        """
        lo, hi = _check_range((lo, hi), "bucket")
        ratios = self.ratios()
        return np.flatnonzero((ratios > lo) & (ratios <= hi)).tolist()
