"""Evaluation buckets and the seeded, recorded (image, mask) assignment.

Four mask protocols, all at the evaluation resolution R:

- ``"nvidia"``: a folder of mask files (the NVIDIA irregular test masks, 255 = hole; the MSL paper's protocol).
  Every file is resized to R×R with nearest neighbour and its hole ratio is measured *after* resizing, because that
  is the hole the methods are scored on; a bucket holds the files whose resized ratio lies in (lo, hi].
- ``"square"``: one centred square hole for every image (the two-stage paper's protocol), one bucket named after it.
- ``"generated"``: the project's `MaskGenerator` ("irregular", bucket-targeted); no files needed.
- ``"parts"``: the face-part boxes of `masks.FACE_PARTS` (both eyes, nose, mouth, half face, each eye alone) on the
  aligned frame, one bucket per part, every image paired with every part: what a user paints over.

Pairing: in every bucket each image gets one mask, drawn by `assign_masks` from an RNG seeded with the seed and the
bucket's bounds, so every method sees exactly the same pairs and a rerun reproduces them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..masks import FACE_PARTS, Bucket, MaskFolder, MaskGenerator, hole_ratio, part_mask, square_mask
from .progress import progress_bar

MASK_MODES = ("nvidia", "square", "generated", "parts")
DEFAULT_BUCKETS: list[Bucket] = [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5)]
GENERATED_KIND = "irregular"


@dataclass(frozen=True)
class EvalBucket:
    """One column of the results table.

    Args:
        key: Short identifier used in results.json, e.g. "10-20" or "square-128px".
        title: Column header, e.g. "(10%, 20%]" as in the MSL paper's Table 1.
        lo: Exclusive lower hole-ratio bound (None for the square protocol).
        hi: Inclusive upper hole-ratio bound (None for the square protocol).
    """

    key: str
    title: str
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Pair:
    """One evaluated (image, mask) pair.

    Args:
        image: Index into the evaluation image list.
        bucket: Key of the bucket the pair belongs to.
        mask: Mask identifier: a file name in the mask folder, the square's name, or "generated #INDEX".
    """

    image: int
    bucket: str
    mask: str


@dataclass
class MaskPlan:
    """The buckets, every pair (bucket-major, then image order) and how to load a pair's mask.

    Args:
        mode: One of `MASK_MODES`.
        buckets: The table's columns, in order.
        pairs: All pairs, bucket by bucket, images in order within a bucket.
        load: Mask identifier -> (R, R) bool hole map (True = hole).
        available: Bucket key -> number of distinct masks the bucket could draw from (None for generated masks).
        recipe: How the masks are made, recorded in results.json so that anyone can rebuild them.
    """

    mode: str
    buckets: list[EvalBucket]
    pairs: list[Pair]
    load: Callable[[str], np.ndarray]
    available: dict[str, int | None] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)


def _percent(value: float) -> str:
    """0.1 -> "10", 0.125 -> "12.5"."""
    return f"{value * 100:.6g}"


def ratio_buckets(buckets: Sequence[Bucket]) -> list[EvalBucket]:
    """Hole-ratio buckets as table columns.

    Args:
        buckets: (lo, hi] ranges as fractions, e.g. from `masks.parse_buckets("10-20,20-30")`.

    Raises:
        ValueError: No buckets, or a bucket listed twice.
    """
    if not buckets:
        raise ValueError("no buckets given; expected ranges in percent such as '10-20,20-30'")
    columns = [EvalBucket(f"{_percent(lo)}-{_percent(hi)}", f"({_percent(lo)}%, {_percent(hi)}%]", lo, hi) for lo, hi in buckets]
    keys = [column.key for column in columns]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a bucket is listed twice: {', '.join(keys)}")
    return columns


def assign_masks(n_images: int, candidates: Sequence[str], seed: int, bucket: EvalBucket) -> list[str]:
    """Draw one mask per image for one bucket.

    The RNG is `np.random.default_rng([seed, lo in basis points, hi in basis points])`, so a bucket's draw does not
    depend on which other buckets are evaluated. Masks are drawn without replacement while they last (a random
    permutation of the candidates); with more images than candidates, further permutations follow, so every mask is
    used at most ceil(n / k) times. Image i always gets element i of this sequence: evaluating a prefix of the images
    (--limit) keeps their pairs.

    Args:
        n_images: Number of images.
        candidates: The bucket's mask identifiers, in a fixed (sorted) order.
        seed: Non-negative seed.
        bucket: The bucket (its bounds seed the RNG; the square bucket has none and uses 0, 0).

    Returns:
        n_images mask identifiers; element i is image i's mask.

    Raises:
        ValueError: No candidates, or a negative seed.
    """
    if not candidates:
        raise ValueError(f"no masks to draw from in bucket {bucket.title}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    bounds = [round((bound or 0.0) * 10_000) for bound in (bucket.lo, bucket.hi)]
    rng = np.random.default_rng([seed, *bounds])
    rounds = max(1, math.ceil(n_images / len(candidates)))
    order = np.concatenate([rng.permutation(len(candidates)) for _ in range(rounds)])[:n_images]  # (n_images,)
    return [candidates[int(i)] for i in order]


def _bucket_major(buckets: list[EvalBucket], masks: dict[str, list[str]]) -> list[Pair]:
    """Pairs for per-bucket mask lists (element i = image i's mask), bucket by bucket."""
    return [Pair(i, bucket.key, mask) for bucket in buckets for i, mask in enumerate(masks[bucket.key])]


def folder_plan(
    root: str | os.PathLike,
    resolution: int,
    buckets: Sequence[Bucket],
    n_images: int,
    seed: int,
    progress: bool | None = None,
) -> MaskPlan:
    """Pairs with the mask files of a folder, bucketed by their hole ratio measured at `resolution`².

    Args:
        root: Mask folder (PNG/JPG/BMP, white = hole), e.g. the NVIDIA irregular test set.
        resolution: Evaluation side R; masks are resized to R×R with nearest neighbour before measuring.
        buckets: (lo, hi] hole-ratio ranges.
        n_images: Number of evaluation images.
        seed: Seed of the assignment.
        progress: Show a progress bar while measuring (None: only on a terminal).

    Raises:
        FileNotFoundError: The folder does not exist or holds no mask files.
        ValueError: A bucket holds no mask, or a mask file is unreadable.
    """
    columns = ratio_buckets(buckets)
    folder = MaskFolder(root, size=resolution)
    ratios = np.array(
        [hole_ratio(folder[i]) for i in progress_bar(range(len(folder)), enabled=progress, desc="measuring masks", unit="mask")]
    )  # (files,)
    names = [path.name for path in folder.files]
    chosen, available = {}, {}
    for column in columns:
        candidates = [name for name, ratio in zip(names, ratios) if column.lo < ratio <= column.hi]
        if not candidates:
            raise ValueError(
                f"no mask in {root} has a hole ratio in {column.title} at {resolution}×{resolution} (measured after "
                f"nearest-neighbour resizing; the {len(names)} masks range from {ratios.min():.1%} to {ratios.max():.1%})"
            )
        chosen[column.key] = assign_masks(n_images, candidates, seed, column)
        available[column.key] = len(candidates)
    index = {name: i for i, name in enumerate(names)}
    return MaskPlan(
        mode="nvidia",
        buckets=columns,
        pairs=_bucket_major(columns, chosen),
        load=lambda name: folder[index[name]],
        available=available,
        recipe={
            "folder": str(Path(root).resolve()),
            "polarity": "white-hole (pixels > 127 are holes)",
            "resize": f"nearest neighbour to {resolution}x{resolution}",
            "hole_ratio": "measured after resizing; a bucket (lo, hi] holds the masks with lo < ratio <= hi",
            "assignment": "numpy default_rng([seed, lo_bp, hi_bp]).permutation over the bucket's files sorted by name; "
            "image i gets element i (further permutations when images outnumber masks)",
        },
    )


def square_plan(resolution: int, side: int | float, n_images: int) -> MaskPlan:
    """Pairs every image with the same centred square hole (one bucket).

    Args:
        resolution: Evaluation side R.
        side: Square side in pixels (int) or as a fraction of R (float in (0, 1)).
        n_images: Number of evaluation images.

    Raises:
        ValueError: The side does not fit the image.
    """
    mask = square_mask(resolution, side)  # (R, R)
    pixels = int(math.isqrt(int(mask.sum())))
    name = f"square-{pixels}px"
    column = EvalBucket(name, f"centred square {pixels}×{pixels} ({hole_ratio(mask):.1%})")
    return MaskPlan(
        mode="square",
        buckets=[column],
        pairs=[Pair(i, name, name) for i in range(n_images)],
        load=lambda _: mask.copy(),
        available={name: 1},
        recipe={"square": f"masks.square_mask({resolution}, {side!r}) (centred, top-left at ((R - side) // 2, (R - side) // 2))"},
    )


def generated_plan(resolution: int, buckets: Sequence[Bucket], n_images: int, seed: int) -> MaskPlan:
    """Pairs with masks from the project's `MaskGenerator` (free-form, bucket-targeted).

    Image i's mask in bucket b is ``MaskGenerator("irregular", R, buckets, seed)(i * len(buckets) + b)``: the
    generator cycles through its buckets with the index, so that index targets bucket b.

    Args:
        resolution: Evaluation side R.
        buckets: (lo, hi] hole-ratio ranges.
        n_images: Number of evaluation images.
        seed: Generator seed.

    Raises:
        ValueError: A bad bucket, or one no mask of this size can hit.
    """
    columns = ratio_buckets(buckets)
    generator = MaskGenerator(GENERATED_KIND, resolution, [(c.lo, c.hi) for c in columns], seed)
    chosen = {
        column.key: [f"generated #{i * len(columns) + b}" for i in range(n_images)] for b, column in enumerate(columns)
    }
    return MaskPlan(
        mode="generated",
        buckets=columns,
        pairs=_bucket_major(columns, chosen),
        load=lambda name: generator(int(name.split("#")[1])),
        available={column.key: None for column in columns},
        recipe={"generator": f"{generator!r}; mask 'generated #K' = generator(K), K = image * {len(columns)} + bucket index"},
    )



def parts_plan(resolution: int, n_images: int) -> MaskPlan:
    """Pairs every image with every face-part box of `masks.FACE_PARTS` (one bucket per part).

    Args:
        resolution: Evaluation side R.
        n_images: Number of evaluation images.
    """
    columns = []
    for part, (top, bottom, left, right) in FACE_PARTS.items():
        ratio = hole_ratio(part_mask(resolution, part))
        columns.append(EvalBucket(part, f"{part} ({ratio:.0%})"))
    return MaskPlan(
        mode="parts",
        buckets=columns,
        pairs=[Pair(i, column.key, column.key) for column in columns for i in range(n_images)],
        load=lambda name: part_mask(resolution, name),
        available={column.key: 1 for column in columns},
        recipe={"parts": {part: f"rows {top:.2f}-{bottom:.2f}, cols {left:.2f}-{right:.2f} of the frame"
                          for part, (top, bottom, left, right) in FACE_PARTS.items()}},
    )
