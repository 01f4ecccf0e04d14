"""The evaluation images: a folder of photos or a Parquet file / glob, decoded once to R×R 8-bit RGB.

Every image goes through `data.decode_face`, as in training: EXIF orientation, centre crop to a square, bicubic
resize to R×R. An unreadable image stops the evaluation with an error naming it (nothing is skipped silently: a
skipped image would change the sample).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import decode_face, list_image_files, open_dataset
from ..io import tensor_to_frames
from .progress import progress_bar


@dataclass
class EvalImages:
    """Decoded evaluation images.

    Args:
        names: One name per image: the path relative to the folder, or the Parquet row's `id` (else its row number).
        pixels: (N, R, R, 3) uint8 RGB.
        source: The folder or Parquet spec they came from.
    """

    names: list[str]
    pixels: np.ndarray
    source: str


def _to_uint8(value: Any, resolution: int, name: str) -> np.ndarray:
    """Decode one image with `decode_face` and return it as (R, R, 3) uint8; ValueError names the image."""
    try:
        face = decode_face(value, resolution)  # (3, R, R) in [-1, 1]
    except ValueError as err:
        raise ValueError(f"image {name} is not a readable image ({err})") from err
    return tensor_to_frames(face[None])[0]  # (R, R, 3)


def _rows(spec: str, limit: int | None) -> list[tuple[str, Any]]:
    """(name, undecoded value) of the first `limit` images of a folder or Parquet spec, in order."""
    if os.path.isdir(spec):
        files = list_image_files(spec)[:limit]
        return [(Path(path).relative_to(spec).as_posix(), path) for path in files]
    if not (spec.endswith(".parquet") or any(ch in spec for ch in "*?[")):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"image folder or Parquet file not found: {spec}")
        raise ValueError(f"{spec} is neither an image folder nor a Parquet file / glob")
    dataset, column = open_dataset(spec)
    rows = []
    for index, row in enumerate(dataset):
        if limit is not None and index >= limit:
            break
        rows.append((str(row["id"]) if row.get("id") is not None else f"row {index}", row[column]))
    return rows


def load_eval_images(spec: str, resolution: int, limit: int | None = None, progress: bool | None = None) -> EvalImages:
    """Read and decode the evaluation images (sorted by path for a folder, in file and row order for Parquet).

    Args:
        spec: An image folder (searched recursively) or a Parquet file / glob with an `image` column.
        resolution: Output side R.
        limit: Keep only the first `limit` images (None: all).
        progress: Show a progress bar (None: only on a terminal).

    Returns:
        The names and (N, R, R, 3) uint8 pixels.

    Raises:
        FileNotFoundError: The spec names no folder or Parquet file.
        ValueError: No images, an unreadable image (named), duplicate names, or a bad limit or resolution.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    if resolution < 16:
        raise ValueError(f"--resolution must be at least 16 (SSIM and LPIPS need it), got {resolution}")
    rows = _rows(spec, limit)
    if not rows:
        raise ValueError(f"no images in {spec}")
    names = [name for name, _ in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"image names repeat in {spec}; names must identify the images in results.json")
    bar = progress_bar(rows, enabled=progress, desc="reading images", unit="image")
    pixels = np.stack([_to_uint8(value, resolution, name) for name, value in bar])  # (N, R, R, 3)
    return EvalImages(names, pixels, spec)
