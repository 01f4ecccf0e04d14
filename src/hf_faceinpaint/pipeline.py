"""The one inference path: `inpaint` (photos in, photos out), `inpaint_arrays` (what `evaluate` scores) and
`predict` (the network on working frames, which training validation also uses).

Neural models work on a square crop around the hole (`crop_box`), resampled to a working size chosen per hole
(`working_size`): the crop's own size, so thin strokes are not inflated, but at least the model's training
resolution and at most `MAX_WORKING_SIDE`. Only the hole pixels of the result are pasted back, so every pixel
outside the mask stays bit-identical to the (8-bit RGB) input. Classic OpenCV methods run on the whole photo.

A float32 network runs under bf16 autocast where the hardware has bf16 units (`precision="auto"`, see
`bf16_is_fast`): msl-face's 256² forward then takes 148 instead of 245 ms on a 2-core Xeon with AMX, and its fill
moves by 0.0004 on average (images in [-1, 1]). The face prior's least-squares fit always runs in float32.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .faces import FaceCompletion, hole_face_frame
from .images import ImageSource, image_array, load_image, load_mask
from .io import frames_to_tensor, tensor_to_frames
from .models.classic import ClassicInpainter
from .models.registry import Inpainter, load_model

# Largest working side of a network: crops beyond it are downscaled (cost grows with its square).
MAX_WORKING_SIDE = 256
# A hole thicker than this share of its crop's side is completed coarse-to-fine (see `working_frame`).
COARSE_THICKNESS = 0.1
# A hole that runs out of a face's frame (`faces.hole_face_frame`) is filled again around the frame's edges, this
# share of the frame's side deep, and there cross-faded into the face's fill (the face box lies 0.19 of the side
# inside the frame).
FRAME_BAND = 0.125
# The crop side is at least CONTEXT_FACTOR × the hole's bounding-box side (context around the hole) and at least
# MIN_CROP_FRACTION × the image's shorter side (so a small hole on a face still shows most of the face).
CONTEXT_FACTOR = 2.0
MIN_CROP_FRACTION = 0.6
# How a float32 network's arithmetic is chosen: "auto" (bf16 autocast where `bf16_is_fast`), "fp32" or "bf16".
PRECISIONS = ("auto", "fp32", "bf16")
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
    height, width = mask.shape
    y0, x0, y1, x1 = hole_window(mask)
    hole_side = max(y1 - y0, x1 - x0)
    side = min(max(math.ceil(CONTEXT_FACTOR * hole_side), min_side, 1), max(height, width))

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


def working_size(side: int, model: nn.Module) -> int:
    """The side a `side`-pixel crop is processed at: `side` itself (native resolution, so thin strokes keep their
    width), raised to the model's training resolution for small crops and lowered to `MAX_WORKING_SIDE` for large
    ones, then rounded up to the sizes the model accepts."""
    config = model.config
    multiple = getattr(config, "size_multiple", None)
    if multiple is None:  # a family that runs at its own resolution only
        return config.resolution
    work = min(max(side, config.resolution), max(MAX_WORKING_SIDE, config.resolution))
    return -(-work // multiple) * multiple


def hole_thickness(mask: np.ndarray) -> float:
    """Twice the largest distance from a hole pixel to the nearest known pixel, in pixels (a stroke's width)."""
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return 2.0 * float(distance.max())


def working_frame(mask: np.ndarray, model: nn.Module,
                  face: tuple[int, int, int] | None = None) -> tuple[tuple[int, int, int], int, bool]:
    """Where and at what size a network sees a photo's hole: the crop box, its working side, and whether the hole
    is completed coarse-to-fine.

    A hole on a face (`face`, the face's training-style frame from `faces.hole_face_frame`) is seen in that frame,
    resampled to its working size. Otherwise the crop is at least the whole photo when the photo fits the working
    size (a face photo is then seen whole, as in training, at native resolution), else at least `MIN_CROP_FRACTION`
    of its shorter side, and at least `CONTEXT_FACTOR` times the hole; a crop smaller than its working size is grown
    to it (more context, no resampling) where the photo allows. A hole thicker than `COARSE_THICKNESS` of a working
    frame larger than the model's training resolution is completed there first (the scale the model learned faces
    at), and that result guides the pass at the working size (models with a face prior as input).

    Args:
        mask: (H, W) bool, True = hole; must contain a hole pixel (inside `face` when it is given).
        model: The network (its training resolution and size multiple bound the working size).
        face: (left, top, side) of the face frame to use as the crop, or None.

    Returns:
        ((left, top, side), working side, coarse-to-fine).
    """
    if face is not None:
        box, work = face, working_size(face[2], model)
    else:
        height, width = mask.shape
        whole = max(height, width) if max(height, width) <= MAX_WORKING_SIDE else 0
        box = crop_box(mask, max(round(MIN_CROP_FRACTION * min(height, width)), whole))
        work = working_size(box[2], model)
        if box[2] < work:
            box = crop_box(mask, work)
    thick = hole_thickness(extract_crop(mask, box)) / box[2] > COARSE_THICKNESS
    coarse = thick and work > model.config.resolution and getattr(model, "takes_guide", False)
    return box, work, coarse


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds a network up on `device`: a CUDA GPU with bf16 support, or a CPU with bf16 units
    (AMX tiles or AVX512-BF16, where oneDNN runs bf16 convolutions natively). Elsewhere bf16 is emulated, and slower
    than float32 (many times slower for some architectures on an AVX2 CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence looked up with a default
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def emulated_bf16_warning(device: torch.device, option: str, instead: str) -> str | None:
    """The warning for a training run asked (by `option`) for bf16 autocast on a `device` without bf16 units, where
    it is emulated (`bf16_is_fast`); `instead` names the float32 choice. None where bf16 is fast."""
    if bf16_is_fast(device):
        return None
    return (f"warning: {option} on {device}, which has no bf16 units (AMX, AVX512-BF16; see pipeline.bf16_is_fast): "
            f"autocast is emulated there, and a step can take over 100 times as long as in float32; {instead}")


def check_precision(precision: str) -> None:
    """Raise a ValueError naming `precision` unless it is one of `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")


def uses_bf16(device: torch.device, dtype: torch.dtype, precision: str = "auto") -> bool:
    """Whether a network with `dtype` parameters on `device` runs under bf16 autocast: a float32 network when
    `precision` is "bf16", or "auto" and `bf16_is_fast`."""
    check_precision(precision)
    return dtype == torch.float32 and (precision == "bf16" or precision == "auto" and bf16_is_fast(device))


def network_autocast(param: torch.Tensor, precision: str = "auto") -> AbstractContextManager:
    """The autocast context a network whose parameters look like `param` runs under (`uses_bf16`)."""
    enabled = uses_bf16(param.device, param.dtype, precision)
    return torch.autocast(param.device.type, dtype=torch.bfloat16, enabled=enabled)


def predict(model: nn.Module, frames: np.ndarray, holes: np.ndarray, guides: np.ndarray | None = None,
            precision: str = "auto") -> np.ndarray:
    """Run a network on working frames and composite: the network inside the holes, the frames elsewhere.

    Args:
        model: A neural inpainter; its parameters' device and dtype are used.
        frames: (B, S, S, 3) uint8.
        holes: (B, S, S) bool, True = hole.
        guides: Optional (B, S, S, 3) uint8 faces to refine (a model with a face prior; see `MSLInpainter.generate`).
        precision: One of `PRECISIONS` (see `network_autocast`).

    Returns:
        (B, S, S, 3) uint8, equal to `frames` wherever `holes` is False.
    """
    param = next(model.parameters())
    x = frames_to_tensor(frames, param.device, param.dtype)  # (B, 3, S, S) in [-1, 1]
    m = torch.from_numpy(holes[:, None]).to(device=param.device, dtype=param.dtype)  # (B, 1, S, S)
    extra = {} if guides is None else {"guide": frames_to_tensor(guides, param.device, param.dtype)}
    with torch.inference_mode(), network_autocast(param, precision):
        filled = tensor_to_frames(model(x, m, **extra))  # (B, S, S, 3)
    return np.where(holes[..., None], filled, frames)


def inpaint_arrays(model: Inpainter, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   batch_size: int = 8, in_place: bool = False, face_framing: bool = True,
                   precision: str = "auto") -> list[np.ndarray]:
    """Fill the holes of (H, W, 3) uint8 images: the array form of `inpaint`, and what `evaluate` scores.

    Args:
        model: A `ClassicInpainter` or a neural inpainter.
        images: (H, W, 3) uint8 each.
        masks: (H, W) bool each, True = hole; each must contain a hole pixel.
        batch_size: Crops per forward pass (crops of the same working size and mode are batched).
        in_place: Fill the (writable) images themselves instead of copies (`inpaint` does, for large photos).
        face_framing: Complete a hole on a face in a photo larger than the working frame in the face's
            training-style frame (`face_frames`); False: always in a crop around the hole.
        precision: A neural model's arithmetic, one of `PRECISIONS` (see `network_autocast`).

    Returns:
        (H, W, 3) uint8 each, equal to the input outside the mask.
    """
    check_precision(precision)
    if isinstance(model, ClassicInpainter):
        filled = []
        for image, mask in zip(images, masks):
            # cv2.inpaint reads `radius` pixels around the hole: on this window it gives the whole frame's result
            top, left, bottom, right = hole_window(mask, 2 * model.radius + 2)
            patch = model(np.ascontiguousarray(image[top:bottom, left:right]), mask[top:bottom, left:right])
            filled.append(fill_hole(image, patch, mask, left, top, in_place))
        return filled
    results = list(images) if in_place else [image.copy() for image in images]  # filled in place from here on
    # Holes on a face in a photo the network cannot see whole: first the part of the hole inside the face's
    # training-style frame, completed in that frame (in a view of the photo: filling it fills the photo) ...
    views, view_masks, face_plans, rest, bands = [], [], [], list(masks), {}
    for i, frame in enumerate(face_frames(results, masks, prior_completion(model)) if face_framing else []):
        if frame is None:
            continue
        left, top, side = frame
        window = np.s_[max(top, 0) : top + side, max(left, 0) : left + side]  # the frame's part of the photo
        views.append(results[i][window])
        view_masks.append(masks[i][window])
        face_plans.append(working_frame(view_masks[-1], model, (left - window[1].start, top - window[0].start, side)))
        rest[i] = None
        if np.count_nonzero(view_masks[-1]) < np.count_nonzero(masks[i]):
            # ... then the rest of the hole, in a crop around it, with a band inside the frame's edges filled again
            weight = edge_weights(masks[i].shape, frame)  # (h, w) over the window
            rest[i] = masks[i].copy()
            rest[i][window][weight == 1.0] = False
            bands[i] = window, weight
    complete(model, views, view_masks, face_plans, batch_size, precision)
    face_fills = {i: results[i][window].copy() for i, (window, _) in bands.items()}  # the face pass's fill there
    todo = [i for i, mask in enumerate(rest) if mask is not None]
    complete(model, [results[i] for i in todo], [rest[i] for i in todo], [working_frame(rest[i], model) for i in todo],
             batch_size, precision)
    for i, (window, weight) in bands.items():
        # the two fills meet without a seam: in the band the face's fill is cross-faded into the rest's, its weight
        # falling to 0 at the frame's edge (the face's features lie inside the band)
        band = masks[i][window] & (weight < 1)  # (h, w)
        filled = results[i][window]
        share = weight[band][:, None]
        filled[band] = np.rint(share * face_fills[i][band] + (1.0 - share) * filled[band]).astype(np.uint8)
    return results


def edge_weights(shape: tuple[int, int], frame: tuple[int, int, int]) -> np.ndarray:
    """The weights of a face frame's fill over the frame's part of a photo of `shape` (H, W): rising linearly from
    the frame's edges over `FRAME_BAND` of its side to 1 inside. An edge on or beyond the photo's border needs no
    band: nothing is filled beyond it.

    Returns:
        (h, w) float32 in (0, 1], the photo's rows max(top, 0) to top + side and columns likewise.
    """
    height, width = shape
    left, top, side = frame
    band = max(round(FRAME_BAND * side), 1)

    def ramp(start: int, limit: int) -> np.ndarray:
        """Distance (+ 0.5) of the frame's pixels inside the photo from its nearer edge along one axis."""
        index = np.arange(max(start, 0), min(start + side, limit), dtype=np.float32)
        low = index - start + 0.5 if start > 0 else np.full_like(index, np.inf)
        high = start + side - index - 0.5 if start + side < limit else np.full_like(index, np.inf)
        return np.minimum(low, high)

    distance = np.minimum(ramp(top, height)[:, None], ramp(left, width)[None, :])
    return np.minimum(distance / band, 1.0).astype(np.float32)


def face_frames(images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                complete: FaceCompletion | None = None) -> list[tuple[int, int, int] | None]:
    """The face frame (`faces.hole_face_frame`, searched with `complete` where the hole hides the eyes) of each
    photo larger than `MAX_WORKING_SIDE` whose hole is on a face; None for the others (they are seen whole or
    cropped around the hole)."""
    return [hole_face_frame(image, mask, complete) if max(mask.shape) > MAX_WORKING_SIDE else None
            for image, mask in zip(images, masks)]


def prior_completion(model: nn.Module) -> FaceCompletion | None:
    """How `faces.hidden_face_frame` draws a face into a frame with a model's face prior (its fit to the frame's
    known pixels, on a grid twice the prior's side, in float32; None where the model does not trust the fit, its
    residual at least the config's `prior_residual_none`), or None for a model without a prior."""
    prior = getattr(model, "prior", None)
    if prior is None:
        return None
    device, untrusted = prior.mean.device, getattr(model.config, "prior_residual_none", math.inf)

    def draw_face(image: np.ndarray, mask: np.ndarray, frame: tuple[int, int, int]) -> np.ndarray | None:
        side = 2 * prior.size
        crop = resize_image(extract_crop(image, frame), side)[None]  # (1, S, S, 3)
        hole = resize_mask(extract_crop(mask, frame), side)[None, None]  # (1, 1, S, S)
        with torch.inference_mode():
            face, residual = prior.fit(frames_to_tensor(crop, device), torch.from_numpy(hole).to(device, torch.float32),
                                       refine_below=untrusted)
        return None if residual.item() >= untrusted else resize_image(tensor_to_frames(face)[0], frame[2])

    return draw_face


def complete(model: nn.Module, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
             plans: Sequence[tuple[tuple[int, int, int], int, bool]], batch_size: int, precision: str = "auto") -> None:
    """Fill each (writable) image's hole in place with a network, as planned by `working_frame` (crops of the same
    working size and mode are batched)."""
    for work, coarse in sorted({plan[1:] for plan in plans}):
        same = [i for i, plan in enumerate(plans) if plan[1:] == (work, coarse)]
        for start in range(0, len(same), batch_size):
            chunk = same[start : start + batch_size]
            boxes = [plans[i][0] for i in chunk]
            crops = np.stack([resize_image(extract_crop(images[i], box), work) for i, box in zip(chunk, boxes)])
            holes = np.stack([resize_mask(extract_crop(masks[i], box), work) for i, box in zip(chunk, boxes)])
            guides = None
            if coarse:  # first at the training resolution, then refined at the working size
                side = model.config.resolution
                small = predict(model, np.stack([resize_image(c, side) for c in crops]),
                                np.stack([resize_mask(h, side) for h in holes]), precision=precision)
                guides = np.stack([resize_image(out, work) for out in small])  # (B, S, S, 3)
            for out, i, (left, top, side) in zip(predict(model, crops, holes, guides, precision), chunk, boxes):
                fill_hole(images[i], resize_image(out, side), masks[i], left, top, in_place=True)


def inpaint(
    image: ImageSource | Sequence[ImageSource],
    mask: ImageSource | Sequence[ImageSource],
    model: Inpainter | str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
    face_framing: bool = True,
    precision: str = "auto",
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
        face_framing: A neural model completes a hole on a face in a photo larger than its working frame in a crop
            that frames the face as its training faces were framed (see `inpaint_arrays`).
        precision: A float32 neural model's arithmetic: "auto" (bf16 autocast on hardware with bf16 units, see
            `bf16_is_fast`; else float32), "fp32" or "bf16".

    Returns:
        An RGB PIL image the size of the input (a list of them for list input), carrying the input's RGB ICC
        profile in `info["icc_profile"]`. Pixels outside the mask equal the input's 8-bit RGB pixels exactly.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_precision(precision)
    single = not isinstance(image, (list, tuple))
    sources = [image] if single else list(image)
    mask_sources = [mask] if single else list(mask)
    if isinstance(mask, (list, tuple)) == single or len(mask_sources) != len(sources):
        raise ValueError("pass one image and one mask, or two lists of the same length")
    inpainter = load_model(model, device=device, dtype=dtype)
    # Photos are held once, as arrays (the PIL copies are dropped as soon as they are converted), and each result
    # becomes an image as its array is released: a 12000² photo then peaks at about three copies, not seven.
    frames, profiles, masks = [], [], []
    for src, mask_src in zip(sources, mask_sources):
        picture = load_image(src)
        profiles.append(picture.info.get("icc_profile"))
        frames.append(image_array(picture))  # (H, W, 3) uint8, ours: filled in place
        del picture
        masks.append(load_mask(mask_src, (frames[-1].shape[1], frames[-1].shape[0])))
    filled = inpaint_arrays(inpainter, frames, masks, batch_size, in_place=True, face_framing=face_framing,
                            precision=precision)
    del frames, masks
    results = []
    while filled:
        result = Image.fromarray(filled.pop(0))
        if profiles[len(results)]:
            result.info["icc_profile"] = profiles[len(results)]
        results.append(result)
    return results[0] if single else results
