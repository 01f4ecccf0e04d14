"""Reading and normalising inputs: photos to 8-bit RGB, masks to boolean hole maps, and atomic saving.

Conventions: an image is an 8-bit RGB `PIL.Image.Image`; a mask is a `(H, W)` bool array, True = hole.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .io import atomic_path

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

# PIL modes holding one channel of wide integers or floats; they need explicit scaling to 8 bits.
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def example_image_path() -> Path:
    """The bundled example portrait (512×512 public-domain NASA photo, see assets/ATTRIBUTION.md)."""
    return Path(str(resources.files("hf_faceinpaint").joinpath("assets", "astronaut.png")))


def example_mask_path() -> Path:
    """The bundled example mask for `example_image_path()`: a brush stroke across the mouth and cheeks."""
    return Path(str(resources.files("hf_faceinpaint").joinpath("assets", "astronaut_mask.png")))


def _open(path: str | os.PathLike, what: str) -> Image.Image:
    """Open and decode an image file, with EXIF orientation applied; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{what} path is not a file: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncated or corrupt data fails here
            ImageOps.exif_transpose(img, in_place=True)  # in place: a 12000² photo is not copied
            return img
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{what} {path} is not a readable image ({err})") from err


def _source_name(src: ImageSource) -> str:
    return f" {os.fspath(src)}" if isinstance(src, (str, os.PathLike)) else ""


def _to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    """uint8, uint16 (65535 -> 255) or float in [0, 1] pixel values -> uint8, same shape."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.uint16:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round to nearest
    if np.issubdtype(values.dtype, np.floating):
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise ValueError(f"{name}: float pixel values must lie in [0, 1], got range [{low}, {high}]")
        return np.round(values.astype(np.float64) * 255.0).astype(np.uint8)
    raise ValueError(f"{name}: unsupported pixel dtype {values.dtype}; use uint8, uint16 or float in [0, 1]")


def _wide_to_uint8(img: Image.Image, name: str) -> np.ndarray:
    """A one-channel 16/32-bit integer or float PIL image -> (H, W) uint8.

    PIL opens 16-bit greyscale files as "I;16*" or as 32-bit "I" holding 16-bit values; both scale 65535 -> 255.
    "F" images are taken to hold values in [0, 1], like float arrays.
    """
    values = np.asarray(img)
    if img.mode != "F":
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{name}: integer values must lie in [0, 65535], got [{values.min()}, {values.max()}]")
        values = values.astype(np.uint16)
    return _to_uint8(values, name)


def _array_channels(array: np.ndarray, name: str) -> np.ndarray:
    """Check an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array and return it as (H, W, C)."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{name}: unsupported array shape {array.shape}; expected channels-last (H, W), (H, W, 3) or (H, W, 4)"
        )
    return array


def _keep_icc(img: Image.Image) -> bytes | None:
    """The image's ICC profile when it describes RGB data (a grey or CMYK profile does not fit the RGB result)."""
    icc = img.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None


def load_image(src: ImageSource) -> Image.Image:
    """Read a photo as an 8-bit RGB PIL image.

    Files and PIL images get their EXIF orientation applied. Alpha (RGBA, LA, PA) is dropped, not composited: the colour under
    transparent pixels is kept as stored. Greyscale is replicated to three channels; 16-bit data (16-bit PNGs,
    uint16 arrays) is scaled so 65535 maps to 255. An RGB ICC profile of the input is kept in `info["icc_profile"]`.

    Args:
        src: A file path, a PIL image, or a channels-last numpy array ((H, W), (H, W, 1), (H, W, 3) or (H, W, 4))
            of uint8, uint16, or floats in [0, 1].

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a readable image, or the array's shape, dtype or value range is unsupported.
    """
    if isinstance(src, np.ndarray):
        array = _to_uint8(_array_channels(src, "image"), "image")  # (H, W, C)
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]))
    if isinstance(src, Image.Image):
        img = ImageOps.exif_transpose(src)  # as for files: a portrait photo opened with PIL is upright too
    elif isinstance(src, (str, os.PathLike)):
        img = _open(src, "image")
    else:
        raise TypeError(f"image must be a path, PIL image or numpy array, got {type(src).__name__}")
    icc = _keep_icc(img)
    if img.mode in _WIDE_MODES:
        grey = _wide_to_uint8(img, f"image{_source_name(src)}")  # (H, W)
        rgb = Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    elif img.mode == "P" and "transparency" in img.info:
        rgb = img.convert("RGBA").convert("RGB")  # via RGBA so PIL applies the palette's transparency cleanly
    else:
        rgb = img if img.mode == "RGB" else img.convert("RGB")  # img is ours (opened here, or transposed copy)
    rgb.info = {"icc_profile": icc} if icc else {}
    return rgb


def image_array(image: Image.Image, rows_per_stripe: int = 1024) -> np.ndarray:
    """A writable (H, W, C) uint8 copy of an 8-bit PIL image, converted a stripe at a time, so converting a
    12000² photo costs one array beside the image instead of two (`np.asarray` goes through `tobytes`)."""
    out = np.empty((image.height, image.width, len(image.getbands())), np.uint8)
    for top in range(0, image.height, rows_per_stripe):
        stripe = np.asarray(image.crop((0, top, image.width, min(top + rows_per_stripe, image.height))))
        out[top : top + stripe.shape[0]] = stripe.reshape(stripe.shape[0], image.width, -1)
    return out


def _mask_values(img: Image.Image) -> np.ndarray:
    """A PIL mask as a channels-last array: (H, W, 1) for one channel, (H, W, 3) colour, (H, W, 4) with alpha."""
    if img.mode in _WIDE_MODES or img.mode in ("1", "L", "RGB"):
        return _array_channels(np.asarray(img), "mask")
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))


MAX_HOLE_FRACTION = 0.95  # a larger hole leaves too little of the face to fill from


def too_large_hole(hole: np.ndarray, max_fraction: float = MAX_HOLE_FRACTION) -> str | None:
    """What is wrong with a hole (H, W) covering more than `max_fraction` of its image, or None when it does not."""
    fraction = float(hole.mean())
    if fraction <= max_fraction:
        return None
    return (f"the mask covers {fraction:.0%} of the photo; at most {max_fraction:.0%} can be filled, because the "
            "method needs part of the face to fill from")


def load_mask(src: ImageSource, size: tuple[int, int], max_hole_fraction: float | None = MAX_HOLE_FRACTION) -> np.ndarray:
    """Read an inpainting mask as a boolean hole map.

    A pixel is a hole when it is non-zero in any colour channel (white strokes on black). When the mask has an
    alpha channel that varies (strokes painted on a transparent layer), the alpha alone decides: any pixel that
    is not fully transparent is a hole, whatever its colour. A constant alpha (e.g. an opaque RGBA export) is
    ignored. Save masks losslessly (PNG): JPEG noise turns near-black pixels into holes.

    Args:
        src: A file path, a PIL image, or a numpy array ((H, W) bool / uint8 / uint16 / float, or channels-last
            (H, W, 3) / (H, W, 4)).
        size: (width, height) of the image the mask belongs to.
        max_hole_fraction: Refuse a mask whose hole covers more of the image than this (None: any).

    Returns:
        (H, W) bool array, True = hole.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Unreadable file, unsupported array, size different from `size`, no hole pixel at all, or a hole
            over `max_hole_fraction` of the image.
    """
    name = f"mask{_source_name(src)}"
    if isinstance(src, np.ndarray):
        values = _array_channels(src, name)
    elif isinstance(src, Image.Image):
        values = _mask_values(ImageOps.exif_transpose(src))
    elif isinstance(src, (str, os.PathLike)):
        values = _mask_values(_open(src, "mask"))
    else:
        raise TypeError(f"mask must be a path, PIL image or numpy array, got {type(src).__name__}")
    if values.dtype.kind not in "buif":
        raise ValueError(f"{name}: unsupported mask dtype {values.dtype}")
    height, width = values.shape[:2]
    if (width, height) != tuple(size):
        raise ValueError(f"{name} is {width}×{height} but the image is {size[0]}×{size[1]}; they must match")
    alpha = values[:, :, 3] if values.shape[2] == 4 else None
    if alpha is not None and alpha.min() != alpha.max():
        hole = alpha > 0
    else:
        hole = (values[:, :, :3] != 0).any(axis=2)
    if not hole.any():
        raise ValueError(f"{name} has no hole pixels (holes are white / non-zero pixels); nothing to inpaint")
    if max_hole_fraction is not None and (problem := too_large_hole(hole, max_hole_fraction)):
        raise ValueError(f"{name}: {problem}")
    return hole


# Output formats that store every pixel exactly (so a result stays identical to the photo outside the mask), with the
# options that make them so.
LOSSLESS_FORMATS: dict[str, dict[str, Any]] = {"PNG": {}, "TIFF": {}, "WEBP": {"lossless": True}}


def image_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output file name's extension (e.g. "PNG" for ``out.png``): lossless ones only.

    Args:
        path: Output file name.

    Raises:
        ValueError: The extension is missing, unknown, or of a lossy or size-changing format (JPEG, ICO, ...).
    """
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt not in LOSSLESS_FORMATS or fmt not in Image.SAVE:
        raise ValueError(
            f"cannot write {ext or 'extensionless'!r} images: {path}; use .png, .tif or .webp, which are written "
            "losslessly so that every pixel outside the mask stays identical"
        )
    return fmt


def save_image(img: Image.Image, path: str | os.PathLike, fast: bool = False) -> Path:
    """Write an image atomically (temporary file in the same folder, then rename), with its ICC profile.

    The format follows the extension and must be lossless (`image_format`: PNG, TIFF or lossless WebP); missing
    parent folders are created. If writing fails, no file is left at `path` or beside it.

    Args:
        img: The image; `img.info["icc_profile"]`, when present, is embedded.
        path: Destination file.
        fast: Trade file size for speed (PNG: zlib level 1, about 5× faster at 1024², same pixels), for previews.

    Returns:
        The destination path.
    """
    path = Path(path)
    fmt = image_format(path)
    options = {**LOSSLESS_FORMATS[fmt], **({"compress_level": 1} if fast and fmt == "PNG" else {})}
    with atomic_path(path) as tmp, open(tmp, "xb") as handle:
        img.save(handle, format=fmt, icc_profile=img.info.get("icc_profile"), **options)
    return path
