"""The public `inpaint`: pre-processing (crop around the hole, resize), inference, and paste-back.

Neural models work on a square crop around the hole, resized to the model's resolution; only the hole pixels of
the result are pasted back, so every pixel outside the mask stays bit-identical to the (8-bit RGB) input.
Classic OpenCV methods run on the full-resolution photo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .images import ImageSource, load_image, load_mask
from .models.classic import ClassicInpainter
from .models.registry import Inpainter, load_model

# The crop side is at least CONTEXT_FACTOR × the hole's bounding-box side (context around the hole) and at least
# MIN_CROP_FRACTION × the image's shorter side (so a small hole on a face still shows most of the face).
CONTEXT_FACTOR = 2.0
MIN_CROP_FRACTION = 0.6
# Images are resampled with bicubic filters, which reach 2 pixels (of the coarser grid) beyond a pixel.
_RESAMPLE = Image.Resampling.BICUBIC
_FILTER_REACH = 2


def crop_box(mask: np.ndarray, min_side: int) -> tuple[int, int, int]:
    """The square crop the network sees: around the hole, with context, within the image where possible.

    The side is max(CONTEXT_FACTOR × the hole's bounding-box side, `min_side`), capped at the image's longer
    side. The square is centred on the hole and shifted to lie inside the image along each axis the image is long
    enough for; along a shorter axis it covers the whole axis and sticks out (the caller pads there). The hole's
    bounding box always lies inside the square.

    Args:
        mask: (H, W) bool, True = hole; must contain a hole pixel.
        min_side: Smallest side to use, in pixels.

    Returns:
        (left, top, side) in image pixels; left / top are negative when the square sticks out.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the mask has no hole pixels")
    height, width = mask.shape
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    hole_side = max(y1 - y0, x1 - x0)
    side = min(max(math.ceil(CONTEXT_FACTOR * hole_side), min_side, 1), max(height, width))

    def start(low: int, high: int, length: int) -> int:
        centred = (low + high - side) // 2
        return int(min(max(centred, min(0, length - side)), max(0, length - side)))

    return start(x0, x1, width), start(y0, y1, height), side


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
    area = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((side, side), Image.Resampling.BOX))
    reach = math.ceil(_FILTER_REACH * max(1.0, side / source))  # a coarse source pixel spans side/source targets
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    return cv2.dilate((area > 0).astype(np.uint8), kernel).astype(bool)


def to_tensor(images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Convert uint8 images to the network's input range.

    Args:
        images: (B, H, W, 3) uint8.
        device: Device of the result.
        dtype: Floating dtype of the result.

    Returns:
        (B, 3, H, W) in [-1, 1].
    """
    work = torch.promote_types(dtype, torch.float32)  # scale in at least float32, then cast (bfloat16, float16)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).to(work)
    return (x / 127.5 - 1.0).to(dtype)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """Convert network output back to uint8 images (clamped, rounded).

    Args:
        tensor: (B, 3, H, W) in [-1, 1], any device and floating dtype.

    Returns:
        (B, H, W, 3) uint8 numpy array.
    """
    x = tensor.detach().to(torch.promote_types(tensor.dtype, torch.float32))
    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def paste_hole(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Take `filled` inside the hole and `original` everywhere else, so untouched pixels stay bit-identical.

    Args:
        original: (H, W, 3) uint8 input.
        filled: (H, W, 3) uint8 inpainted frame.
        mask: (H, W) bool, True = hole.

    Returns:
        (H, W, 3) uint8.
    """
    return np.where(mask[:, :, None], filled, original)


def uncrop(original: np.ndarray, crop: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """Put a processed crop back into its frame; the parts of `box` outside the frame (padding) are dropped.

    Args:
        original: (H, W, 3) frame.
        crop: (side, side, 3) crop for `box`.
        box: (left, top, side) from `crop_box`.

    Returns:
        A copy of `original`, (H, W, 3), with the box's pixels replaced.
    """
    left, top, side = box
    height, width = original.shape[:2]
    frame = original.copy()
    frame[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)] = crop[
        max(-top, 0) : side - max(top + side - height, 0), max(-left, 0) : side - max(left + side - width, 0)
    ]
    return frame


def _inpaint_neural(
    model: nn.Module, images: list[np.ndarray], masks: list[np.ndarray], batch_size: int
) -> list[np.ndarray]:
    """Fill the holes of (H, W, 3) uint8 images with a network working at `model.config.resolution`²."""
    resolution = model.config.resolution
    param = next(model.parameters())
    boxes = [crop_box(mask, round(MIN_CROP_FRACTION * min(mask.shape))) for mask in masks]
    results = []
    for start in range(0, len(images), batch_size):
        chunk = range(start, min(start + batch_size, len(images)))
        crops = np.stack([resize_image(extract_crop(images[i], boxes[i]), resolution) for i in chunk])  # (B, R, R, 3)
        holes = np.stack([resize_mask(extract_crop(masks[i], boxes[i]), resolution) for i in chunk])  # (B, R, R)
        x = to_tensor(crops, param.device, param.dtype)  # (B, 3, R, R)
        m = torch.from_numpy(holes[:, None]).to(device=param.device, dtype=param.dtype)  # (B, 1, R, R)
        with torch.inference_mode():
            filled = to_image(model(x, m))  # (B, R, R, 3)
        for out, i in zip(filled, chunk):
            crop = resize_image(out, boxes[i][2])  # (side, side, 3)
            results.append(paste_hole(images[i], uncrop(images[i], crop, boxes[i]), masks[i]))
    return results


def inpaint(
    image: ImageSource | Sequence[ImageSource],
    mask: ImageSource | Sequence[ImageSource],
    model: Inpainter | str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
) -> Image.Image | list[Image.Image]:
    """Fill the masked region of a face photo (or of a list of them).

    Args:
        image: A photo (path, PIL image or array; see `images.load_image`) or a list of them.
        mask: The hole mask (white / non-zero = hole; see `images.load_mask`), or a list matching `image`.
        model: Anything `load_model` accepts: a model instance, "telea" / "ns", a shipped checkpoint name, a
            save_pretrained folder or a Hub repo id. None: the shipped default, or Telea with a warning.
        device: Device to run a neural model on (default: where the model is; CPU for loaded checkpoints).
        dtype: Floating dtype for a neural model (default: keep the model's).
        batch_size: Crops per forward pass when inpainting a list.

    Returns:
        An RGB PIL image the size of the input (a list of them for list input), carrying the input's RGB ICC
        profile in `info["icc_profile"]`. Pixels outside the mask equal the input's 8-bit RGB pixels exactly.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    single = not isinstance(image, (list, tuple))
    sources = [image] if single else list(image)
    mask_sources = [mask] if single else list(mask)
    if isinstance(mask, (list, tuple)) == single or len(mask_sources) != len(sources):
        raise ValueError("pass one image and one mask, or two lists of the same length")
    inpainter = load_model(model, device=device, dtype=dtype)
    pictures = [load_image(src) for src in sources]
    masks = [load_mask(src, picture.size) for src, picture in zip(mask_sources, pictures)]
    arrays = [np.asarray(picture) for picture in pictures]  # (H, W, 3) uint8 each
    if isinstance(inpainter, ClassicInpainter):
        filled = [paste_hole(array, inpainter(array, hole), hole) for array, hole in zip(arrays, masks)]
    else:
        filled = _inpaint_neural(inpainter, arrays, masks, batch_size)
    results = []
    for array, picture in zip(filled, pictures):
        result = Image.fromarray(array)
        if picture.info.get("icc_profile"):
            result.info["icc_profile"] = picture.info["icc_profile"]
        results.append(result)
    return results[0] if single else results
