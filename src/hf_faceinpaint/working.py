"""The working frame: the square crop of a photo a network sees, its resampling, and the paste-back of the hole.

Only the hole pixels of a result are pasted back, so every pixel outside the mask stays bit-identical to the (8-bit
RGB) input. Images are resampled with bicubic filters, which reach 2 pixels (of the coarser grid) beyond a pixel;
masks are resampled conservatively (`resize_mask`), so no known pixel a network sees carries hole content.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

_RESAMPLE = Image.Resampling.BICUBIC
_FILTER_REACH = 2


def working_size(side: int, resolution: int, multiple: int | None, max_side: int) -> int:
    """The side a `side`-pixel crop is processed at by a network trained at `resolution` that accepts multiples of
    `multiple` (None: its own resolution only): `side` itself (native resolution, so thin strokes keep their width),
    raised to the training resolution for small crops and lowered to `max_side` for large ones, then rounded up to
    a multiple."""
    if multiple is None:
        return resolution
    work = min(max(side, resolution), max(max_side, resolution))
    return -(-work // multiple) * multiple


def crop_box(mask: np.ndarray, min_side: int, context: float) -> tuple[int, int, int]:
    """The square crop the network sees: around the hole, with context, within the image where possible.

    The side is max(`context` × the hole's bounding-box side, `min_side`), capped at the image's longer
    side. The square is centred on the hole and shifted to lie inside the image along each axis the image is long
    enough for; along a shorter axis it covers the whole axis and sticks out (the caller pads there). The hole's
    bounding box always lies inside the square.

    Args:
        mask: (H, W) bool, True = hole; must contain a hole pixel.
        min_side: Smallest side to use, in pixels.
        context: The side is at least this many times the hole's bounding-box side.

    Returns:
        (left, top, side) in image pixels; left / top are negative when the square sticks out.
    """
    height, width = mask.shape
    y0, x0, y1, x1 = hole_window(mask)
    hole_side = max(y1 - y0, x1 - x0)
    side = min(max(math.ceil(context * hole_side), min_side, 1), max(height, width))

    def start(low: int, high: int, length: int) -> int:
        centred = (low + high - side) // 2
        return int(min(max(centred, min(0, length - side)), max(0, length - side)))

    return start(x0, x1, width), start(y0, y1, height), side


def hole_window(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the hole's bounding box grown by `margin` pixels, within the image.

    Raises:
        ValueError: The mask has no hole pixel.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))  # no per-pixel index arrays
    if rows.size == 0:
        raise ValueError("the mask has no hole pixels")
    height, width = mask.shape
    return (max(int(rows[0]) - margin, 0), max(int(cols[0]) - margin, 0),
            min(int(rows[-1]) + 1 + margin, height), min(int(cols[-1]) + 1 + margin, width))


def extract_crop(array: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """The square `box` of an array, reflect-padded where it sticks out (so hole pixels are mirrored with it).

    Args:
        array: (H, W) mask or (H, W, C) image.
        box: (left, top, side) from `crop_box`.

    Returns:
        (side, side) or (side, side, C), same dtype.
    """
    left, top, side = box
    height, width = array.shape[:2]
    inside = array[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)]
    pad = [(max(-top, 0), max(top + side - height, 0)), (max(-left, 0), max(left + side - width, 0))]
    pad += [(0, 0)] * (array.ndim - 2)
    return np.pad(inside, pad, mode="reflect") if any(sum(p) for p in pad) else inside


def resize_image(array: np.ndarray, side: int) -> np.ndarray:
    """Resize a square image crop with a bicubic filter.

    Args:
        array: (S, S, 3) uint8.
        side: Target side.

    Returns:
        (side, side, 3) uint8.
    """
    if array.shape[0] == side:
        return array
    return np.asarray(Image.fromarray(array).resize((side, side), _RESAMPLE))


def resize_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """Resize a square hole mask conservatively: the result covers every hole pixel and its resampling reach.

    A box filter marks every target pixel that overlaps a hole pixel; the result is then dilated by the bicubic
    filter's reach, so no known pixel the network sees carries hole content blurred in by resizing, and the
    resized-back output near the hole's edge is interpolated from network-filled pixels only.

    Args:
        mask: (S, S) bool, True = hole.
        side: Target side.

    Returns:
        (side, side) bool.
    """
    source = mask.shape[0]
    if side == source:  # no resampling, nothing blurred in or out
        return mask.astype(bool)
    area = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((side, side), Image.Resampling.BOX))
    reach = math.ceil(_FILTER_REACH * max(1.0, side / source))  # a coarse source pixel spans side/source targets
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    return cv2.dilate((area > 0).astype(np.uint8), kernel).astype(bool)


def fill_hole(original: np.ndarray, patch: np.ndarray, mask: np.ndarray, left: int, top: int,
              in_place: bool = False) -> np.ndarray:
    """`original` (a copy, or itself with `in_place`) whose hole pixels come from `patch`, placed with its top-left
    corner at (left, top) (parts outside the frame are padding, dropped); every pixel outside the hole stays
    bit-identical.

    Args:
        original: (H, W, 3) uint8 frame.
        patch: (h, w, 3) uint8 filled region; the whole hole must lie under it.
        mask: (H, W) bool, True = hole.
        left, top: Position of the patch in the frame (negative where it sticks out).
        in_place: Write into `original` (writable) instead of a copy: no full-size copy at all.

    Returns:
        (H, W, 3) uint8.
    """
    height, width = original.shape[:2]
    y0, y1 = max(top, 0), min(top + patch.shape[0], height)
    x0, x1 = max(left, 0), min(left + patch.shape[1], width)
    under = mask[y0:y1, x0:x1]
    if np.count_nonzero(under) != np.count_nonzero(mask):
        raise ValueError("the hole reaches outside the filled patch")
    out = original if in_place else original.copy()
    np.copyto(out[y0:y1, x0:x1], patch[y0 - top : y1 - top, x0 - left : x1 - left], where=under[:, :, None])
    return out


def edge_weights(shape: tuple[int, int], frame: tuple[int, int, int], band: float) -> np.ndarray:
    """The weights of a face frame's fill over the frame's part of a photo of `shape` (H, W): rising linearly from
    the frame's edges over `band` of its side to 1 inside. An edge on or beyond the photo's border needs no
    band: nothing is filled beyond it.

    Returns:
        (h, w) float32 in (0, 1], the photo's rows max(top, 0) to top + side and columns likewise.
    """
    height, width = shape
    left, top, side = frame
    band = max(round(band * side), 1)

    def ramp(start: int, limit: int) -> np.ndarray:
        """Distance (+ 0.5) of the frame's pixels inside the photo from its nearer edge along one axis."""
        index = np.arange(max(start, 0), min(start + side, limit), dtype=np.float32)
        low = index - start + 0.5 if start > 0 else np.full_like(index, np.inf)
        high = start + side - index - 0.5 if start + side < limit else np.full_like(index, np.inf)
        return np.minimum(low, high)

    distance = np.minimum(ramp(top, height)[:, None], ramp(left, width)[None, :])
    return np.minimum(distance / band, 1.0).astype(np.float32)
