"""The demo's non-UI logic (`hf_faceinpaint.editor`): mask extraction, limits, messages, methods, one request."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from hf_faceinpaint import editor
from hf_faceinpaint.models import registry
from hf_faceinpaint.images import example_image_path, example_mask_path, load_image, load_mask

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1)


def _layer(height: int, width: int, box: Box, rgb: tuple[int, int, int] = (255, 46, 136)) -> np.ndarray:
    """An RGBA editor layer, transparent except an opaque rectangle (x0, y0, x1, y1) of colour `rgb`."""
    layer = np.zeros((height, width, 4), np.uint8)
    x0, y0, x1, y1 = box
    layer[y0:y1, x0:x1] = (*rgb, 255)
    return layer


def _photo(tmp_path: Path, size: tuple[int, int] = (64, 48), name: str = "photo.png", **save: object) -> Path:
    """A random RGB photo of (W, H) `size` written to tmp_path/name."""
    width, height = size
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / name
    Image.fromarray(pixels).save(path, **save)
    return path


def _mask_file(tmp_path: Path, size: tuple[int, int], box: Box | None, name: str = "mask.png") -> Path:
    """A white-on-black mask of (W, H) `size` with the rectangle `box` as hole (None: no hole)."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
    path = tmp_path / name
    Image.fromarray(mask).save(path)
    return path


# --- the strokes the page sends -------------------------------------------------------------------------------


def _strokes(height: int, width: int, *boxes: Box) -> str:
    """The strokes layer as the page sends it: a PNG data URL, `HOLE_RGBA` in the boxes, transparent elsewhere."""
    layer = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        layer[y0:y1, x0:x1] = True
    return editor.data_url(editor.mask_layer(layer), "PNG")


def test_strokes_mask_reads_painted_pixels_of_the_canvas_size() -> None:
    hole = editor.strokes_mask(_strokes(20, 30, (2, 3, 6, 8), (20, 10, 25, 15)), (30, 20))
    expected = np.zeros((20, 30), bool)
    expected[3:8, 2:6] = expected[10:15, 20:25] = True
    assert hole is not None and hole.dtype == bool
    np.testing.assert_array_equal(hole, expected)
    erased = np.zeros((20, 30, 4), np.uint8)
    erased[..., :3] = 255  # colour under zero alpha (what an eraser leaves) is no stroke
    erased[0, 0, 3] = 1
    assert editor.strokes_mask(editor.data_url(Image.fromarray(erased), "PNG"), (30, 20)).sum() == 1
    assert editor.strokes_mask("", (30, 20)) is None and editor.strokes_mask(None, (30, 20)) is None
    assert editor.strokes_mask(_strokes(20, 30), (30, 20)) is None  # nothing painted


def test_strokes_that_do_not_fit_the_canvas_are_one_clear_error() -> None:
    with pytest.raises(editor.InputError, match="strokes are 30×20 px but the canvas is 31×20 px"):
        editor.strokes_mask(_strokes(20, 30, (0, 0, 1, 1)), (31, 20))
    jpeg = editor.data_url(Image.new("RGB", (30, 20)), "JPEG")
    too_long = "data:image/png;base64," + "A" * (editor.STROKES_MAX_BYTES * 2)
    for unexpected in (jpeg, "<b>not a data url</b>", too_long):
        with pytest.raises(editor.InputError, match="strokes in an unexpected form"):
            editor.strokes_mask(unexpected, (30, 20))
    for unreadable in ("data:image/png;base64,%%%", "data:image/png;base64,iVBORw0KGgo="):
        with pytest.raises(editor.InputError, match="not a readable PNG"):
            editor.strokes_mask(unreadable, (30, 20))


def test_fit_mask_scales_conservatively_and_refuses_other_shapes() -> None:
    small = np.zeros((10, 20), bool)
    small[4, 7] = True
    big = editor.fit_mask(small, (40, 20))
    assert big.shape == (20, 40) and big[8:10, 14:16].all() and big.sum() == 4
    fine = np.zeros((20, 40), bool)
    fine[9, 15] = True  # one pixel still marks the coarser pixel that holds it
    assert editor.fit_mask(fine, (20, 10))[4, 7]
    assert editor.fit_mask(fine, (40, 20)) is fine
    with pytest.raises(editor.InputError, match="is 40×20 px but the photo is 40×40 px: another shape"):
        editor.fit_mask(fine, (40, 40))
    thin = np.ones((2, 2048), bool)  # 4096×3 shown at 2048×2 (rounded): still the same shape
    assert editor.fit_mask(thin, (4096, 3)).all()


# --- limits and messages -------------------------------------------------------------------------------------


def test_check_mask_messages() -> None:
    for empty in (None, np.zeros((4, 4), bool)):
        with pytest.raises(editor.InputError, match="The mask is empty"):
            editor.check_mask(empty)
    limit = np.zeros((20, 20), bool)
    limit.flat[: int(0.95 * 400)] = True  # exactly 95 %: allowed
    assert editor.check_mask(limit) is limit
    limit.flat[int(0.95 * 400)] = True
    with pytest.raises(editor.InputError, match=r"covers 95% of the photo; at most 95%"):
        editor.check_mask(limit)


def test_limit_size_downscales_with_a_notice_and_keeps_icc() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    small = Image.new("RGB", (editor.MAX_SIDE, 10))
    assert editor.limit_size(small) == (small, None)
    big = Image.new("RGB", (editor.MAX_SIDE + 904, 250))
    big.info["icc_profile"] = icc
    out, notice = editor.limit_size(big)
    assert out.size == (editor.MAX_SIDE, 205) and out.info["icc_profile"] == icc
    assert notice is not None and "5000×250" in notice and f"{editor.MAX_SIDE}×205" in notice


def test_read_photo_messages_and_modes(tmp_path: Path) -> None:
    with pytest.raises(editor.InputError, match="Upload a photo first"):
        editor.read_photo(None)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(editor.InputError, match="notes.png could not be read as an image"):
        editor.read_photo(tmp_path / "notes.png")
    jpeg = _photo(tmp_path, name="photo.jpg", quality=90)
    (tmp_path / "cut.jpg").write_bytes(jpeg.read_bytes()[:400])
    with pytest.raises(editor.InputError, match="cut.jpg could not be read"):
        editor.read_photo(tmp_path / "cut.jpg")
    for mode, name in (("L", "grey.png"), ("RGBA", "alpha.png"), ("RGB", "photo.webp")):
        path = tmp_path / name
        Image.new(mode, (30, 20)).save(path)
        image, notice = editor.read_photo(path)
        assert image.mode == "RGB" and image.size == (30, 20) and notice is None


def test_read_mask_file_fits_and_messages(tmp_path: Path) -> None:
    half = _mask_file(tmp_path, (32, 24), (4, 4, 8, 8))
    hole = editor.read_mask_file(half, (64, 48))
    assert hole.shape == (48, 64) and hole.sum() == 64
    with pytest.raises(editor.InputError, match="The mask is empty"):
        editor.read_mask_file(_mask_file(tmp_path, (64, 48), None, "empty.png"), (64, 48))
    with pytest.raises(editor.InputError, match="another shape. A mask must have the photo's aspect ratio"):
        editor.read_mask_file(_mask_file(tmp_path, (48, 48), (0, 0, 4, 4), "square.png"), (64, 48))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(editor.InputError, match="The mask bad.png could not be read"):
        editor.read_mask_file(tmp_path / "bad.png", (64, 48))


def test_a_mask_larger_than_the_photo_is_refused_before_it_is_decoded(
    tmp_path: Path, palette_png: Callable[[Path, int], Path]
) -> None:
    photo = _photo(tmp_path, (64, 64))
    huge = palette_png(tmp_path / "huge.png", 4000)
    decoded: list[Image.Image] = []
    original_load = ImageFile.ImageFile.load
    with pytest.MonkeyPatch.context() as patch:  # record any decode of the mask's pixels
        patch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image) or original_load(image))
        with pytest.raises(editor.InputError, match=r"The mask file is 4000×4000 px, larger than the photo \(64×64"):
            editor.job_from_files(photo, huge)
    assert not [image for image in decoded if image.size == (4000, 4000)]
    # the photo's own size plus a pixel of rounding passes; a mask for the photo as uploaded (before the 4096 px
    # downscale) passes too
    assert editor.oversized_mask((65, 65), (64, 64)) is None and editor.oversized_mask((66, 64), (64, 64))
    view, notices = editor.scene(photo, huge)
    assert view is not None and view["strokes"] is None and "larger than the photo" in notices[0]


def test_scene_shows_the_photo_and_the_mask_file_as_strokes(tmp_path: Path) -> None:
    photo = _photo(tmp_path)
    view, notices = editor.scene(photo, _mask_file(tmp_path, (64, 48), (10, 5, 20, 15)))
    assert notices == [] and view is not None and (view["width"], view["height"]) == (64, 48)
    assert view["photo"].startswith("data:image/jpeg;base64,")
    assert editor.strokes_mask(view["strokes"], (64, 48)).sum() == 100
    again, _ = editor.scene(photo, None)
    assert again is not None and again["strokes"] is None and again["token"] != view["token"]  # shown anew
    view, notices = editor.scene(photo, _mask_file(tmp_path, (48, 48), (0, 0, 4, 4), "square.png"))
    assert view is not None and view["strokes"] is None and "The mask file was not used" in notices[0]
    assert editor.scene(None, None) == (None, [])


def test_large_photos_are_shown_smaller_and_the_strokes_scaled_back_up(tmp_path: Path) -> None:
    photo = _photo(tmp_path, (3000, 100))
    view, notices = editor.scene(photo, _mask_file(tmp_path, (3000, 100), (0, 0, 30, 30)))
    assert view is not None and notices == []
    side = round(100 * editor.EDITOR_MAX_SIDE / 3000)
    assert (view["width"], view["height"]) == (editor.EDITOR_MAX_SIDE, side)
    with Image.open(io.BytesIO(base64.b64decode(view["photo"].partition(",")[2]))) as shown:
        assert shown.size == (editor.EDITOR_MAX_SIDE, side)
    job = editor.job_from_sketch(photo, view["strokes"], (view["width"], view["height"]))  # scaled back up
    assert job.image.size == (3000, 100) and job.mask.shape == (100, 3000)
    assert job.mask[:30, :30].all() and job.mask.sum() < 40 * 40


def test_history_captions_name_the_photo() -> None:
    history = editor.with_result([], "/r/a.png", editor.history_caption("astronaut", "msl-face"))
    assert history == [("/r/a.png", "astronaut · msl-face")]
    assert editor.history_caption("me", "runs/v2/final") == "me · final"


# --- methods -------------------------------------------------------------------------------------------------


def test_method_list_with_the_shipped_model() -> None:
    values = [value for _, value in editor.method_choices()]
    assert values == ["msl-face", "telea", "ns"]
    assert editor.default_method() == "msl-face" and editor.default_model_notice() is None
    assert editor.resolve_method("") == editor.resolve_method(None) == "msl-face"
    assert editor.method_label("msl-face") == "MSL face model"


def test_method_list_without_a_trained_model(no_shipped_model: None) -> None:
    values = [value for _, value in editor.method_choices()]
    assert values == ["telea", "ns"]
    assert editor.default_method() == "telea"
    assert "No trained MSL face model" in editor.default_model_notice()
    assert editor.resolve_method("") == editor.resolve_method(None) == "telea"
    assert editor.resolve_method("ns") == "ns"
    assert editor.resolve_methods("telea", "", "ns") == ["telea", "ns"]
    assert editor.resolve_methods("telea", "", "telea") == editor.resolve_methods("", "", "") == ["telea"]
    with pytest.raises(editor.InputError, match="'msl-face' is not part of this installation yet"):
        editor.resolve_method("msl-face")


def test_requests_name_only_what_the_operator_allows(tmp_path: Path) -> None:
    refused = "This server does not offer the method"
    for name in ("/etc", "/etc/passwd", "../../srv", "org/some-model", editor.CUSTOM, "x" * 500):
        with pytest.raises(editor.InputError, match=refused) as err:
            editor.resolve_method(name, "/etc")
        assert len(str(err.value)) < 200 and "config.json" not in str(err.value)  # nothing about the server's files
    folder = str(tmp_path / "checkpoint")
    listed = editor.MethodPolicy(allowed=(folder,))
    assert [value for _, value in editor.method_choices(listed)] == ["msl-face", "telea", "ns", folder]
    assert editor.resolve_method(folder, "", listed) == folder
    assert editor.resolve_methods("telea", "", folder, listed) == ["telea", folder]
    with pytest.raises(editor.InputError, match=f"{refused} '/etc'; .* or one of the checkpoints it lists"):
        editor.resolve_method("/etc", "", listed)
    with pytest.raises(editor.InputError, match=refused):
        editor.resolve_method(editor.CUSTOM, "/etc", listed)
    anything = editor.MethodPolicy(allow_any=True)
    assert editor.method_choices(anything)[-1][1] == editor.CUSTOM
    assert editor.resolve_method(editor.CUSTOM, " runs/final ", anything) == "runs/final"
    assert editor.resolve_method("org/some-model", "", anything) == "org/some-model"
    with pytest.raises(editor.InputError, match="Enter a checkpoint"):
        editor.resolve_method(editor.CUSTOM, "  ", anything)


def test_a_shipped_model_family_just_appears(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(registry.SHIPPED, "twostage-face", ("twostage-face", "Two-stage face model"))
    monkeypatch.setattr(editor, "shipped_checkpoint", lambda name: tmp_path / name)
    values = [value for _, value in editor.method_choices()]
    assert values == ["msl-face", "twostage-face", "telea", "ns"]
    assert editor.default_method() == "msl-face" and editor.default_model_notice() is None
    assert editor.method_label("twostage-face") == "Two-stage face model"


def test_a_method_that_cannot_load_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # offline, so the Hub lookup fails at once instead of after the network's retries (46 s here)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(editor.InputError, match="Cannot load the method 'no/such-folder-or-repo':"):
        editor.load_method("no/such-folder-or-repo")


# --- one request ---------------------------------------------------------------------------------------------


def test_sketch_request_keeps_unmasked_pixels_and_reports_progress(tmp_path: Path) -> None:
    example = load_image(example_image_path())
    hole = load_mask(example_mask_path(), example.size)
    strokes = editor.data_url(editor.mask_layer(hole), "PNG")
    job = editor.job_from_sketch(example_image_path(), strokes, example.size)
    np.testing.assert_array_equal(job.mask, hole)
    steps: list[float] = []
    folder = editor.new_request_dir(tmp_path)
    out = editor.run_request(job, ["telea", "ns"], folder, lambda done, _: steps.append(done))
    original = np.asarray(example)
    for path in out.results:
        result = np.asarray(Image.open(path))
        assert result.shape == original.shape
        np.testing.assert_array_equal(result[~hole], original[~hole])
        assert (result[hole] != original[hole]).any()
    assert [path.name for path in out.results] == ["astronaut-telea.png", "astronaut-ns.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out.before)), original)
    assert (np.asarray(Image.open(out.masked))[hole] == 255).all()
    assert steps == sorted(steps) and 0 <= steps[0] and steps[-1] <= 1
    assert out.summary.startswith("**OpenCV Telea (classic baseline)** vs **OpenCV Navier-Stokes")
    assert "512×512 px · hole 4.8% of the photo" in out.summary


def test_large_photo_is_downscaled_and_pasted_back(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = _photo(tmp_path, (5000, 200), icc_profile=icc)
    mask = _mask_file(tmp_path, (5000, 200), (2000, 50, 2400, 150))  # the mask may keep the original size
    job = editor.job_from_files(photo, mask)
    assert job.image.size == (4096, 164) and "downscaled to 4096×164 px" in job.notices[0]
    path = editor.run_job(job, "telea", editor.new_request_dir(tmp_path))
    with Image.open(path) as result:
        assert result.size == (4096, 164) and result.info.get("icc_profile") == icc
        pixels = np.asarray(result)
    working = np.asarray(job.image)
    np.testing.assert_array_equal(pixels[~job.mask], working[~job.mask])
    assert (pixels[job.mask] != working[job.mask]).any()


def test_job_messages(tmp_path: Path) -> None:
    photo = _photo(tmp_path)
    with pytest.raises(editor.InputError, match="Upload a mask image too"):
        editor.job_from_files(photo, None)
    with pytest.raises(editor.InputError, match="The mask is empty"):
        editor.job_from_sketch(photo, _strokes(48, 64), (64, 48))
    with pytest.raises(editor.InputError, match="The mask is empty"):
        editor.job_from_sketch(photo, "", (64, 48))
    with pytest.raises(editor.InputError, match="covers 100% of the photo"):
        editor.job_from_files(photo, _mask_file(tmp_path, (64, 48), (0, 0, 64, 48)))
    with pytest.raises(editor.InputError, match="Upload a photo first"):
        editor.job_from_sketch(None, None, None)


def test_a_new_server_removes_the_folders_of_servers_that_have_ended(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{editor.APP_DIR_PREFIX}{int(ended.stdout)}-abc"
    (dead / "20260101-000000-0123").mkdir(parents=True)
    (dead / "20260101-000000-0123" / "photo.png").write_bytes(b"x")
    alive = tmp_path / f"{editor.APP_DIR_PREFIX}{os.getppid()}-def"  # pytest's parent: running
    unnamed, other = tmp_path / f"{editor.APP_DIR_PREFIX}xyz", tmp_path / "unrelated-123-abc"
    for folder in (alive, unnamed, other):
        folder.mkdir()
    root = editor.app_output_root(tmp_path)
    assert root.name.startswith(f"{editor.APP_DIR_PREFIX}{os.getpid()}-") and root.is_dir()
    assert not dead.exists() and alive.is_dir() and unnamed.is_dir() and other.is_dir()


def test_request_dirs_are_fresh_and_old_ones_are_removed(tmp_path: Path) -> None:
    first, second = editor.new_request_dir(tmp_path), editor.new_request_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    old = time.time() - editor.REQUEST_DIR_MAX_AGE_S - 10
    os.utime(first, (old, old))
    third = editor.new_request_dir(tmp_path)
    assert not first.exists() and second.is_dir() and third.is_dir()


def test_a_checkpoint_folder_runs_through_the_same_request(tmp_path: Path) -> None:
    from hf_faceinpaint import MSLInpainter

    folder = tmp_path / "checkpoint"
    MSLInpainter.from_preset("msl-tiny-128").save_pretrained(folder)  # untrained: only the plumbing is checked
    spec = editor.resolve_method(editor.CUSTOM, str(folder), editor.MethodPolicy(allow_any=True))
    job = editor.job_from_files(example_image_path(), example_mask_path())
    path = editor.run_job(job, spec, editor.new_request_dir(tmp_path))
    assert editor.load_method(spec) is editor.load_method(spec)  # loaded once, shared
    pixels, original = np.asarray(Image.open(path)), np.asarray(job.image)
    np.testing.assert_array_equal(pixels[~job.mask], original[~job.mask])
    assert path.name == "astronaut-checkpoint.png"
