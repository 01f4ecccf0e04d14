"""Everything the Gradio demo (`app.py`) needs except the UI: method list, model loading, input checks, mask
extraction from the painting canvas's strokes, size limits, the app's folders, and running one inpainting request into
its own folder.

Nothing here imports Gradio. User-facing problems raise `InputError` with a message meant to be shown as is;
non-fatal notices (a downscaled photo, the missing default model) are returned as plain strings.

Limits (documented in docs/app.md):

- `MAX_SIDE` (4096 px): a photo whose longer side exceeds it is downscaled (Lanczos) to that size before anything
  else, with a notice; the result has the downscaled size.
- `images.MAX_HOLE_FRACTION` (95 %): a mask covering more of the photo than that is refused (nothing left to fill
  from), here as in the CLI and `inpaint()`.
- An empty mask is refused.
- `EDITOR_MAX_SIDE` (768 px): the painting canvas shows the photo at most this size (sent as a JPEG); the page
  sends the strokes once, when Inpaint is pressed, as one PNG layer of the canvas's size (at most
  `STROKES_MAX_BYTES`); they are scaled up to the photo's size, conservatively, before inpainting. The photo itself
  reaches the server once, as uploaded.
- A mask file may have the photo's shape at any scale up to the photo's own size (plus a pixel of rounding); a
  larger one is refused from its header, before it is decoded.
- `BRUSH_PERCENT` (4 %): the brush's default diameter, as a share of the photo's shorter side.
- `HISTORY_LENGTH` (8): the results a session keeps to step back to (per session, never shared).
- Each server writes its request folders under one folder of its own, `APP_DIR_PREFIX` + its process id; a new
  server removes the folders of earlier servers whose process has ended (`remove_dead_runs`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .images import load_image, load_mask, save_image, too_large_hole
from .models.classic import CLASSIC_METHODS
from .hub import CheckpointError
from .models.registry import DEFAULT_MODEL, SHIPPED, Inpainter, load_model, method_label, shipped_checkpoint
from .pipeline import inpaint

MAX_SIDE = 4096
EDITOR_MAX_SIDE = 768
BRUSH_PERCENT = 4.0
HISTORY_LENGTH = 8
# Dropdown value meaning "the checkpoint typed into the text box".
CUSTOM = "custom"
# Colour of the strokes on the painting canvas (also of an uploaded mask drawn there); the canvas shows its strokes
# layer translucent. White is the colour of hole pixels in the masked-input preview.
HOLE_RGBA = (255, 46, 136, 255)
HOLE_PREVIEW_RGB = (255, 255, 255)
# JPEG quality of the photo the painting canvas shows (the request always uses the uploaded file itself).
CANVAS_JPEG_QUALITY = 90
# The strokes layer the page sends when Inpaint is pressed: a PNG data URL of at most this many bytes (a 768² layer
# of strokes is a few KB; a full one about 20 KB).
STROKES_MAX_BYTES = 2**20
# A mask file may be larger than the photo by this many pixels per side (the canvas rounds its sides to pixels).
MASK_ROUNDING_PX = 1
# Per-request folders older than this are removed when a new one is made.
REQUEST_DIR_MAX_AGE_S = 3600.0
# A server's own folder for its request folders: this prefix, its process id, a dash, random characters.
APP_DIR_PREFIX = "hf-faceinpaint-app-"

_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_LOAD_ERRORS = (OSError, ValueError, CheckpointError)

Report = Callable[[float, str], None]


class InputError(ValueError):
    """A problem with the user's input or choice; the message is meant for the user, verbatim."""


# --- methods -------------------------------------------------------------------------------------------------


def available_methods() -> list[str]:
    """Method values this installation can run: every shipped trained checkpoint present, then the classic ones.

    A model family added to the registry's shipped checkpoints appears here as soon as its weights are installed.
    """
    return [name for name in SHIPPED if shipped_checkpoint(name) is not None] + list(CLASSIC_METHODS)


def missing_models() -> list[str]:
    """Shipped checkpoint names whose weights this installation does not have (not trained / not released yet)."""
    return [name for name in SHIPPED if shipped_checkpoint(name) is None]


def default_method() -> str:
    """The shipped default model when installed, else OpenCV Telea."""
    return DEFAULT_MODEL if shipped_checkpoint(DEFAULT_MODEL) is not None else "telea"


@dataclass(frozen=True)
class MethodPolicy:
    """Which methods requests may run. The installation's own methods (its shipped models, Telea, NS) always; other
    checkpoints (folders, Hub repo ids) only as the operator allows, so a caller cannot make the server load, or
    probe, whatever path or repository it names.

    Args:
        allowed: Checkpoint specs (folders or Hub repo ids) that requests may name; the page lists them as methods.
        allow_any: Let requests name any folder or Hub repo id (the page's checkpoint box): for local use only.
    """

    allowed: tuple[str, ...] = ()
    allow_any: bool = False

    def offered(self) -> list[str]:
        """Method values a request may name without `allow_any`."""
        return list(dict.fromkeys(available_methods() + list(self.allowed)))


OWN_METHODS = MethodPolicy()  # the default: the installation's own methods only


def method_choices(policy: MethodPolicy = OWN_METHODS) -> list[tuple[str, str]]:
    """(label, value) pairs for the method dropdown: the offered methods, then a free checkpoint when allowed."""
    choices = [(method_label(name), name) for name in policy.offered()]
    return choices + ([("Checkpoint: local folder or Hub repo id", CUSTOM)] if policy.allow_any else [])


def default_model_notice() -> str | None:
    """What to tell users when the trained default model is missing (None when it is installed)."""
    if shipped_checkpoint(DEFAULT_MODEL) is not None:
        return None
    return (
        f"No trained {method_label(DEFAULT_MODEL)} ({DEFAULT_MODEL}) ships with this installation yet, so the app "
        "uses OpenCV Telea, a classic non-learned method, by default. An untrained network is never used for a result."
    )


def resolve_method(choice: str | None, checkpoint: str = "", policy: MethodPolicy = OWN_METHODS) -> str:
    """Turn a dropdown value (or an API method name) into a `load_model` spec, if the policy allows it.

    Args:
        choice: A value from `method_choices(policy)`, "" / None for the default, `CUSTOM` for `checkpoint`, or
            (API) a method name, or a checkpoint the policy allows.
        checkpoint: The checkpoint text box, used with `CUSTOM`.
        policy: What the operator lets requests load.

    Raises:
        InputError: A method the policy does not offer (checked before anything is loaded or looked up, and named
            back only as the caller gave it), `CUSTOM` without a checkpoint, or a shipped model that this
            installation does not have.
    """
    choice = (choice or "").strip()
    if not choice:
        return default_method()
    if choice == CUSTOM and policy.allow_any:
        if not checkpoint.strip():
            raise InputError("Enter a checkpoint: a folder written by save_pretrained, or a Hub repo id like org/name.")
        return checkpoint.strip()
    if choice in missing_models():
        raise InputError(
            f"The trained model {choice!r} is not part of this installation yet; "
            f"choose {', '.join(available_methods())}{' or a checkpoint' if policy.allow_any else ''}."
        )
    if choice in policy.offered() or (policy.allow_any and choice != CUSTOM):
        return choice
    listed = " or one of the checkpoints it lists" if policy.allowed else ""
    raise InputError(
        f"This server does not offer the method {choice[:80]!r}; choose {', '.join(available_methods())}{listed}."
    )


def resolve_methods(
    choice: str | None, checkpoint: str = "", compare: str | None = None, policy: MethodPolicy = OWN_METHODS
) -> list[str]:
    """The `load_model` specs of one page request: the chosen method, then the one to compare with (if another).

    Raises:
        InputError: As `resolve_method`.
    """
    specs = [resolve_method(choice, checkpoint, policy)] + ([resolve_method(compare, "", policy)] if compare else [])
    return list(dict.fromkeys(specs))


def load_method(spec: str) -> Inpainter:
    """The loaded method for `spec`, shared by all requests (`load_model` caches the last few loaded checkpoints).

    Raises:
        InputError: The method cannot be loaded (unknown name, bad or missing checkpoint, offline Hub id).
    """
    try:
        return load_model(spec)
    except _LOAD_ERRORS as err:
        raise InputError(f"Cannot load the method {spec!r}: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


# --- reading inputs ------------------------------------------------------------------------------------------


def limit_size(image: Image.Image, max_side: int = MAX_SIDE) -> tuple[Image.Image, str | None]:
    """Downscale an image whose longer side exceeds `max_side` (Lanczos, aspect kept, ICC profile kept).

    Returns:
        The image (unchanged when small enough) and a notice for the user, or None when nothing was done.
    """
    width, height = image.size
    if max(width, height) <= max_side:
        return image, None
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = image.resize(size, Image.Resampling.LANCZOS)
    small.info = dict(image.info)
    notice = (
        f"The photo is {width}×{height} px, over the {max_side} px limit; it was downscaled to "
        f"{size[0]}×{size[1]} px and the result has that size."
    )
    return small, notice


def read_photo(path: str | os.PathLike | None) -> tuple[Image.Image, str | None]:
    """Read an uploaded photo as 8-bit RGB (ICC profile kept), downscaled to `MAX_SIDE` if needed.

    Returns:
        The working image and the downscale notice (or None).

    Raises:
        InputError: No photo, or a file that is not a readable image.
    """
    if not path:
        raise InputError("Upload a photo first (JPEG, PNG or WebP), or pick the example below it.")
    try:
        image = load_image(path)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(
            f"{Path(path).name} could not be read as an image (not an image file, or damaged); "
            "upload a JPEG, PNG or WebP photo."
        ) from err
    return limit_size(image)


def photo_size(path: str | os.PathLike) -> tuple[int, int]:
    """The (W, H) of a photo file as stored (before any downscaling), from its header alone."""
    with Image.open(path) as img:
        return img.size


def oversized_mask(mask_size: tuple[int, int], photo: tuple[int, int]) -> str | None:
    """Why a mask of `mask_size` cannot belong to a photo of (W, H) `photo` (as stored), or None: a mask may have any
    scale of the photo's shape up to the photo's own size, plus `MASK_ROUNDING_PX` for the canvas's rounding. Either
    may be stored turned by a quarter (EXIF orientation, which only decoding reveals in a PNG), so both ways fit."""
    width, height = (limit + MASK_ROUNDING_PX for limit in photo)
    if (mask_size[0] <= width and mask_size[1] <= height) or (mask_size[0] <= height and mask_size[1] <= width):
        return None
    return (
        f"The mask file is {mask_size[0]}×{mask_size[1]} px, larger than the photo ({photo[0]}×{photo[1]} px); "
        "upload a mask of the photo's size (or smaller, same shape), white = hole."
    )


def read_mask_file(
    path: str | os.PathLike, size: tuple[int, int], photo: tuple[int, int] | None = None
) -> np.ndarray:
    """Read an uploaded mask (white / non-zero / painted alpha = hole) and fit it to a (W, H) photo size.

    The mask may have the photo's original size or any size of the same aspect ratio (e.g. before downscaling), up
    to the photo as uploaded: a larger one is refused from its header, before its pixels are decoded (a small PNG
    can hold a huge mask), and the pixels are decoded under PIL's limit, as the photo's are.

    Args:
        path: The mask file.
        size: The (W, H) the hole map is fitted to.
        photo: The (W, H) of the photo as uploaded (default: `size`).

    Raises:
        InputError: Unreadable file, a mask larger than the photo, an aspect ratio that does not match, or no hole
            pixel.
    """
    try:
        with Image.open(path) as img:
            if problem := oversized_mask(img.size, photo or size):
                raise InputError(problem)
            img.load()
            picture = ImageOps.exif_transpose(img)
        hole = load_mask(picture, picture.size, max_hole_fraction=None)  # checked at the photo's size
    except InputError:
        raise
    except _READ_ERRORS as err:
        if "no hole pixels" in str(err):
            raise InputError(empty_mask_message()) from err
        raise InputError(
            f"The mask {Path(path).name} could not be read as an image (not an image file, or damaged); "
            "upload a PNG, white = hole."
        ) from err
    return fit_mask(hole, size, what="The mask file")


def empty_mask_message() -> str:
    """The message for a mask without any hole pixel."""
    return "The mask is empty: paint over the part of the face to fill (or upload a mask, white = hole)."


def fit_mask(mask: np.ndarray, size: tuple[int, int], what: str = "The mask") -> np.ndarray:
    """Scale a hole mask to a (W, H) size, conservatively (a target pixel touching any hole pixel is a hole).

    Raises:
        InputError: The aspect ratios differ (by more than 1 %, a pixel, or the canvas's rounding).
    """
    height, width = mask.shape
    if (width, height) == tuple(size):
        return mask
    rounding = 0.5 * size[0] / width + 0.5  # the canvas side rounded to a whole pixel, scaled up to the photo
    if abs(height * size[0] / width - size[1]) > max(1.0, 0.01 * size[1], rounding):  # beyond it: another shape
        raise InputError(
            f"{what} is {width}×{height} px but the photo is {size[0]}×{size[1]} px: another shape. A mask must "
            "have the photo's aspect ratio (at the photo's size or scaled down), white = hole."
        )
    area = np.asarray(Image.fromarray(mask.astype(np.float32)).resize(tuple(size), Image.Resampling.BOX))
    return area > 0


def check_mask(mask: np.ndarray | None) -> np.ndarray:
    """Refuse an empty mask, or one covering more than `images.MAX_HOLE_FRACTION` of the photo.

    Returns:
        The mask, for chaining.

    Raises:
        InputError: The mask is None / empty, or covers nearly everything.
    """
    if mask is None or not mask.any():
        raise InputError(empty_mask_message())
    if problem := too_large_hole(mask):
        raise InputError(f"{problem[0].upper()}{problem[1:]}. Erase some of it.")
    return mask


# --- the painting canvas ------------------------------------------------------------------------------------


def data_url(image: Image.Image, fmt: str, **options: Any) -> str:
    """An image encoded as a `data:` URL (for the page: the canvas's photo, a strokes layer)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def mask_layer(mask: np.ndarray) -> Image.Image:
    """An RGBA strokes layer showing a hole mask in `HOLE_RGBA`, transparent elsewhere."""
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = HOLE_RGBA
    return Image.fromarray(layer)


def scene(
    photo_path: str | os.PathLike | None, mask_path: str | os.PathLike | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """What the painting canvas shows for a newly chosen photo and/or mask file: the photo (at most
    `EDITOR_MAX_SIDE`, as a JPEG data URL) and the mask as strokes (a PNG data URL of the same size, or None).

    A mask file that cannot be used is left out with a notice; the photo still opens. Each scene has a new `token`,
    so the page opens it even when it shows the same photo again.

    Returns:
        {"photo", "strokes", "width", "height", "token"} (None when there is no photo) and notices for the user.

    Raises:
        InputError: An unreadable photo.
    """
    if not photo_path:
        return None, []
    image, notice = read_photo(photo_path)
    shown, _ = limit_size(image, EDITOR_MAX_SIDE)
    notices = [notice] if notice else []
    strokes = None
    if mask_path:
        try:
            strokes = data_url(mask_layer(read_mask_file(mask_path, shown.size, photo_size(photo_path))), "PNG")
        except InputError as err:
            notices.append(f"{err} The mask file was not used.")
    view = {"photo": data_url(shown, "JPEG", quality=CANVAS_JPEG_QUALITY), "strokes": strokes,
            "width": shown.width, "height": shown.height, "token": secrets.token_hex(6)}
    return view, notices


def strokes_mask(strokes: str | None, canvas: tuple[int, int]) -> np.ndarray | None:
    """The hole mask of the strokes layer the page sends when Inpaint is pressed: a PNG data URL of the canvas's
    (W, H) size, where every painted pixel (alpha > 0) is a hole.

    Returns:
        (H, W) bool, or None when nothing was sent.

    Raises:
        InputError: Not a PNG data URL, over `STROKES_MAX_BYTES`, or of another size than the canvas.
    """
    if not strokes:
        return None
    header, _, payload = strokes.partition(",")
    if header != "data:image/png;base64" or len(payload) > STROKES_MAX_BYTES * 4 // 3 + 4:
        raise InputError("The page sent its strokes in an unexpected form; reload the page and paint again.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as layer:
            if layer.size != tuple(canvas):
                raise InputError(
                    f"The strokes are {layer.width}×{layer.height} px but the canvas is {canvas[0]}×{canvas[1]} px; "
                    "reload the page and open the photo again."
                )
            return load_mask(layer, layer.size, max_hole_fraction=None)
    except InputError:
        raise
    except (binascii.Error, *_READ_ERRORS) as err:
        if "no hole pixels" in str(err):
            return None
        raise InputError("The page sent strokes that are not a readable PNG; reload the page and paint again.") from err


def history_caption(name: str, spec: str) -> str:
    """The caption of a result in the session's history: the photo's name and the method."""
    return f"{name} · {_slug(spec)}"


def with_result(history: Sequence[tuple[str, str]], path: str | os.PathLike, caption: str) -> list[tuple[str, str]]:
    """A session's result history with one more (path, caption), newest first, at most `HISTORY_LENGTH` long."""
    return [(str(path), caption), *history][:HISTORY_LENGTH]


# --- one request ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One inpainting request: the working photo (RGB, ICC in `info`), its hole mask, a file stem, notices."""

    image: Image.Image
    mask: np.ndarray
    name: str
    notices: tuple[str, ...] = field(default=())

    @property
    def hole_fraction(self) -> float:
        """Share of the photo's pixels in the hole."""
        return float(self.mask.mean())


def _stem(path: str | os.PathLike) -> str:
    """A file-name-safe stem of an uploaded file's name (or of a name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60] or "photo"


def job_from_sketch(
    photo_path: str | os.PathLike | None, strokes: str | None, canvas: tuple[int, int] | None, name: str | None = None
) -> Job:
    """A job from the photo on the server and the strokes layer the page sent (see `strokes_mask`).

    Args:
        photo_path: The photo on the server (an upload, or an earlier result being edited again).
        strokes: The strokes layer, a PNG data URL of the canvas's size ("" / None: nothing painted).
        canvas: The (W, H) of the canvas the photo was shown on (`scene`).
        name: The file stem for the results (default: the photo file's).

    Raises:
        InputError: No or unreadable photo, empty or nearly full mask, strokes that do not fit the canvas.
    """
    image, notice = read_photo(photo_path)
    painted = strokes_mask(strokes, canvas or image.size)
    mask = check_mask(None if painted is None else fit_mask(painted, image.size, what="The painted strokes"))
    return Job(image, mask, _stem(name or photo_path), (notice,) if notice else ())


def job_from_files(image_path: str | os.PathLike | None, mask_path: str | os.PathLike | None) -> Job:
    """A job from an image file and a mask file (white = hole), as the `/inpaint` API endpoint receives them.

    Raises:
        InputError: Missing or unreadable files, a mask larger than the photo or of another shape, empty or nearly
            full mask.
    """
    image, notice = read_photo(image_path)
    if not mask_path:
        raise InputError("Upload a mask image too (white = hole, the photo's shape).")
    mask = check_mask(read_mask_file(mask_path, image.size, photo_size(image_path)))
    return Job(image, mask, _stem(image_path), (notice,) if notice else ())


def masked_input(job: Job) -> Image.Image:
    """The photo as the method receives it: hole pixels blanked (white)."""
    pixels = np.asarray(job.image).copy()
    pixels[job.mask] = HOLE_PREVIEW_RGB
    return Image.fromarray(pixels)


def new_request_dir(root: str | os.PathLike, max_age_s: float = REQUEST_DIR_MAX_AGE_S) -> Path:
    """A fresh folder under `root` for one request's files; folders there older than `max_age_s` are removed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - max_age_s
    for old in root.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(6)}"
    folder.mkdir()
    return folder


def app_output_root(parent: str | os.PathLike | None = None) -> Path:
    """A new folder (under `parent`, default the system's temporary folder) for one server's request folders,
    named after this process (`APP_DIR_PREFIX` + pid), after removing those of earlier servers that have ended."""
    remove_dead_runs(parent)
    return Path(tempfile.mkdtemp(prefix=f"{APP_DIR_PREFIX}{os.getpid()}-", dir=parent))


def remove_dead_runs(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the output folders of earlier servers (`app_output_root`) whose process is no longer running, as one
    stopped by SIGKILL or a crash leaves them; folders of running servers, and other users' folders, are kept.

    Returns:
        The folders removed.
    """
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{APP_DIR_PREFIX}*"):
        owner = re.match(r"(\d+)-", folder.name[len(APP_DIR_PREFIX):])
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to look at
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
            if mine and owner and not _running(int(owner.group(1))):
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts; a reused id counts too: kept until later)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(spec).name or spec)[:40] or "method"


def run_job(job: Job, spec: str, out_dir: str | os.PathLike, report: Report | None = None) -> Path:
    """Inpaint a job with one method and save the result as PNG (with the photo's ICC profile) in `out_dir`.

    Pixels outside the mask are bit-identical to the working photo (see `hf_faceinpaint.inpaint`).

    Args:
        job: The request.
        spec: A `load_model` spec from `resolve_method`.
        out_dir: This request's own folder (`new_request_dir`).
        report: Called with (fraction done, what is happening) for a progress display.

    Returns:
        The PNG's path, `<out_dir>/<photo stem>-<method>.png`.

    Raises:
        InputError: The method cannot be loaded.
    """
    report = report or _ignore_progress
    report(0.0, f"Loading {method_label(spec)}")
    model = load_method(spec)
    report(0.2, f"Inpainting with {method_label(spec)}")
    result = inpaint(job.image, job.mask, model=model)
    report(0.9, "Saving the PNG")
    return save_image(result, Path(out_dir) / f"{job.name}-{_slug(spec)}.png")


def _ignore_progress(fraction: float, text: str) -> None:
    """A `Report` that shows nothing."""


@dataclass(frozen=True)
class Outputs:
    """The files of one finished request (all in its own folder) and a one-line summary (Markdown)."""

    before: Path
    results: tuple[Path, ...]
    masked: Path
    summary: str


def run_request(
    job: Job, specs: Sequence[str], out_dir: str | os.PathLike, report: Report | None = None
) -> Outputs:
    """Inpaint a job with one or more methods (to compare them); also save the photo and the masked input.

    Args:
        job: The request.
        specs: `load_model` specs, first the main method.
        out_dir: This request's own folder (`new_request_dir`).
        report: Progress callback, see `run_job`.

    Raises:
        InputError: A method cannot be loaded.
    """
    report = report or _ignore_progress
    start = time.perf_counter()
    out_dir = Path(out_dir)
    share = 0.9 / len(specs)
    results = []
    for index, spec in enumerate(specs):
        step = _sub_report(report, index * share, share)
        results.append(run_job(job, spec, out_dir, step))
    before = save_image(job.image, out_dir / f"{job.name}.png", fast=True)  # previews: written fast, same pixels
    masked = save_image(masked_input(job), out_dir / f"{job.name}-masked.png", fast=True)
    return Outputs(before, tuple(results), masked, summary(job, specs, time.perf_counter() - start))


def _sub_report(report: Report, offset: float, share: float) -> Report:
    """A `Report` for one step that maps its 0..1 onto offset..offset+share of `report`."""
    return lambda fraction, text: report(offset + fraction * share, text)


def summary(job: Job, specs: Sequence[str], seconds: float) -> str:
    """One line describing a finished request, for the page (Markdown)."""
    methods = " vs ".join(f"**{method_label(spec)}**" for spec in specs)
    width, height = job.image.size
    return f"{methods} · {width}×{height} px · hole {job.hole_fraction:.1%} of the photo · {seconds:.1f} s"
