"""Reading photos and masks: modes, bit depths, EXIF orientation, arrays, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from hf_faceinpaint.images import (
    example_image_path,
    example_mask_path,
    image_format,
    load_image,
    load_mask,
    save_image,
)


def _rgb(height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_rgb_file_round_trips(tmp_path: Path) -> None:
    pixels = _rgb()
    Image.fromarray(pixels).save(tmp_path / "x.png")
    img = load_image(tmp_path / "x.png")
    assert img.mode == "RGB" and img.size == (16, 12)
    np.testing.assert_array_equal(np.asarray(img), pixels)


def test_rgba_drops_alpha_keeping_colour(tmp_path: Path) -> None:
    pixels = np.dstack([_rgb(), np.full((12, 16), 7, np.uint8)])
    Image.fromarray(pixels).save(tmp_path / "x.png")
    for src in (tmp_path / "x.png", pixels):
        np.testing.assert_array_equal(np.asarray(load_image(src)), pixels[..., :3])


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_greyscale_is_replicated(tmp_path: Path, mode: str) -> None:
    grey = _rgb()[..., 0]
    Image.fromarray(grey).convert(mode).save(tmp_path / "x.png")
    expected = np.asarray(Image.fromarray(grey).convert(mode).convert("L"))
    img = load_image(tmp_path / "x.png")
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), np.repeat(expected[..., None], 3, axis=2))


def test_16_bit_png_scales_to_8_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)  # -> 0, 1, 255, 128
    Image.fromarray(values).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "x.png"))[0, :, 0], [0, 1, 255, 128])


def test_palette_image(tmp_path: Path) -> None:
    pixels = _rgb()
    palette = Image.fromarray(pixels).quantize(16)
    palette.save(tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "x.png")), np.asarray(palette.convert("RGB")))
    palette.info["transparency"] = 0  # palette transparency must not change the colours either
    palette.save(tmp_path / "t.png", transparency=0)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "t.png")), np.asarray(palette.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide × 20 high: left half red, right half blue. Orientation 6 = display rotated 90° clockwise,
    # which brings the left (red) side to the top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "x.jpg", exif=exif.tobytes(), quality=100)
    img = np.asarray(load_image(tmp_path / "x.jpg")).astype(int)
    assert img.shape == (40, 20, 3)
    assert img[5, 10, 0] > 200 and img[5, 10, 2] < 50  # top is red
    assert img[35, 10, 2] > 200 and img[35, 10, 0] < 50  # bottom is blue


def test_numpy_float_and_uint16_arrays() -> None:
    floats = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(load_image(floats)), [[[0, 128, 255]]])
    wide = np.array([[[0, 257, 65535]]], dtype=np.uint16)
    np.testing.assert_array_equal(np.asarray(load_image(wide)), [[[0, 1, 255]]])
    grey = np.array([[0.0, 1.0]], dtype=np.float64)
    np.testing.assert_array_equal(np.asarray(load_image(grey)), [[[0, 0, 0], [255, 255, 255]]])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 8, 8), np.uint8), "shape"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
        (np.zeros((8, 8, 3), np.int64), "dtype"),
        (np.full((8, 8, 3), 2.0), r"\[0, 1\]"),
    ],
)
def test_unsupported_arrays_are_named(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_image(array)


def test_missing_corrupt_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "notes.txt")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "cut.png")


def test_rgb_icc_profile_is_kept_and_saved(tmp_path: Path) -> None:
    icc = _srgb_profile()
    Image.fromarray(_rgb()).save(tmp_path / "x.png", icc_profile=icc)
    img = load_image(tmp_path / "x.png")
    assert img.info["icc_profile"] == icc
    save_image(img, tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").info["icc_profile"] == icc


def test_non_rgb_icc_profile_is_dropped() -> None:
    img = Image.fromarray(_rgb())
    img.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert "icc_profile" not in load_image(img).info


def test_exif_orientation_applies_to_pil_images_as_to_files(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated: a phone's portrait photo
    Image.fromarray(_rgb(12, 16)).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    Image.fromarray(np.eye(12, 16, dtype=np.uint8) * 255).save(tmp_path / "mask.png", exif=exif)
    from_file = load_image(tmp_path / "portrait.jpg")
    with Image.open(tmp_path / "portrait.jpg") as opened:
        from_pil = load_image(opened)
    assert from_file.size == from_pil.size == (12, 16)
    np.testing.assert_array_equal(np.asarray(from_pil), np.asarray(from_file))
    with Image.open(tmp_path / "mask.png") as opened:
        np.testing.assert_array_equal(load_mask(opened, (12, 16)), load_mask(tmp_path / "mask.png", (12, 16)))


def test_save_image_is_atomic_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = Image.fromarray(_rgb())
    out = save_image(img, tmp_path / "sub" / "x.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(img))
    with pytest.raises(ValueError, match="cannot write '.unknown' images"):
        save_image(img, tmp_path / "x.unknown")

    def write_half_then_fail(image: Image.Image, handle, filename) -> None:  # noqa: ANN001 (PIL's save hook)
        handle.write(b"\x89PNG half a file")
        raise OSError("disk full")

    monkeypatch.setitem(Image.SAVE, "PNG", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_image(img, tmp_path / "y.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".webp"])
def test_outputs_are_lossless(tmp_path: Path, ext: str, fast: bool) -> None:
    img = Image.fromarray(_rgb())
    saved = save_image(img, tmp_path / f"x{ext}", fast=fast)
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), np.asarray(img))


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".ico", ".gif", ".xbm", ""])
def test_lossy_or_resizing_outputs_are_refused_before_writing(tmp_path: Path, ext: str) -> None:
    with pytest.raises(ValueError, match="use .png, .tif or .webp, which are written losslessly"):
        image_format(tmp_path / f"x{ext}")


def test_mask_polarity_white_is_hole(tmp_path: Path) -> None:
    mask = np.zeros((12, 16), np.uint8)
    mask[2:5, 3:9] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    expected = mask > 0
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", (16, 12)), expected)
    Image.fromarray(mask).convert("RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "rgb.png", (16, 12)), expected)
    np.testing.assert_array_equal(load_mask(expected, (16, 12)), expected)
    np.testing.assert_array_equal(load_mask(expected.astype(np.float32), (16, 12)), expected)


def test_rgba_mask_uses_varying_alpha_else_colour() -> None:
    hole = np.zeros((12, 16), bool)
    hole[4:8, 2:6] = True
    # A brush layer: white everywhere (even where transparent), opaque only on the stroke.
    layer = np.dstack([np.full((12, 16, 3), 255, np.uint8), hole.astype(np.uint8) * 255])
    np.testing.assert_array_equal(load_mask(Image.fromarray(layer), (16, 12)), hole)
    # An opaque RGBA export of a black / white mask: the colour decides.
    opaque = np.dstack([np.repeat(hole[..., None], 3, axis=2).astype(np.uint8) * 255, np.full((12, 16), 255, np.uint8)])
    np.testing.assert_array_equal(load_mask(opaque, (16, 12)), hole)


def test_mask_size_mismatch_and_empty_mask(tmp_path: Path) -> None:
    mask = np.zeros((12, 16), np.uint8)
    mask[0, 0] = 255
    with pytest.raises(ValueError, match="16×12 but the image is 17×12"):
        load_mask(mask, (17, 12))
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="no hole pixels") as info:
        load_mask(tmp_path / "empty.png", (16, 12))
    assert "empty.png" in str(info.value)


def test_a_mask_over_95_percent_is_refused_as_in_the_app() -> None:
    mask = np.zeros((10, 20), np.uint8)
    mask[:, :19] = 255  # 95 %: still leaves a strip to fill from
    assert load_mask(mask, (20, 10)).mean() == 0.95
    mask[0, 19] = 255  # 95.5 %
    with pytest.raises(ValueError, match="covers 96% of the photo; at most 95% can be filled"):
        load_mask(mask, (20, 10))
    assert load_mask(np.ones((10, 20), bool), (20, 10), max_hole_fraction=None).all()


def test_bundled_example_and_mask() -> None:
    img = load_image(example_image_path())
    assert img.size == (512, 512)
    hole = load_mask(example_mask_path(), img.size)
    assert 0.03 < hole.mean() < 0.10
