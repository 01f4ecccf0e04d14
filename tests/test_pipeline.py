"""The public `inpaint`: untouched pixels stay bit-identical, crop geometry, batching, dtypes, defaults, ICC."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from hf_faceinpaint import ClassicInpainter, MSLInpainter
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.images import example_image_path, example_mask_path, image_array, load_image, load_mask
from hf_faceinpaint import pipeline
from hf_faceinpaint.pipeline import (
    FRAME_BAND,
    crop_box,
    edge_weights,
    extract_crop,
    face_frames,
    fill_hole,
    hole_window,
    inpaint,
    inpaint_arrays,
    network_autocast,
    resize_mask,
)


@pytest.fixture(scope="module")
def tiny() -> MSLInpainter:
    torch.manual_seed(0)
    return MSLInpainter.from_preset("msl-tiny-128").eval()


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _hole(height: int, width: int, top: float = 0.4, left: float = 0.3) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    y, x = int(top * height), int(left * width)
    mask[y : y + max(1, height // 6), x : x + max(1, width // 5)] = True
    mask[min(height - 1, y + height // 4), :: max(1, width // 7)] = True  # scattered single pixels too
    return mask


def _assert_only_hole_changed(result: Image.Image, photo: np.ndarray, mask: np.ndarray) -> None:
    out = np.asarray(result)
    assert result.mode == "RGB" and out.shape == photo.shape
    np.testing.assert_array_equal(out[~mask], photo[~mask])


@pytest.mark.parametrize("size", [(301, 517), (1203, 97), (97, 1203), (60, 60), (128, 128), (7, 3)])
@pytest.mark.parametrize("method", ["telea", "tiny"])
def test_pixels_outside_the_mask_are_bit_identical(size: tuple[int, int], method: str, tiny: MSLInpainter) -> None:
    photo, mask = _photo(*size), _hole(*size)
    result = inpaint(photo, mask, model=tiny if method == "tiny" else method)
    _assert_only_hole_changed(result, photo, mask)
    assert (np.asarray(result)[mask] != photo[mask]).any()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_input_modes_keep_outside_pixels(tmp_path: Path, mode: str, tiny: MSLInpainter) -> None:
    photo = _photo(90, 70)
    if mode == "I;16":  # 16-bit greyscale: x * 257 reads back as x
        img, expected = Image.fromarray(photo[..., 0].astype(np.uint16) * 257), np.repeat(photo[..., :1], 3, axis=2)
    else:
        img = Image.fromarray(photo).convert(mode)
        expected = np.asarray(img.convert("RGB"))
    img.save(tmp_path / "x.png")
    mask = _hole(90, 70)
    _assert_only_hole_changed(inpaint(tmp_path / "x.png", mask, model=tiny), expected, mask)


def test_crop_box_is_square_around_the_hole_and_inside_the_image() -> None:
    mask = np.zeros((400, 600), bool)
    mask[100:140, 300:360] = True  # hole 60 wide, 40 high
    assert crop_box(mask, min_side=0) == (270, 60, 120)  # side 2 × 60, centred on the hole
    assert crop_box(mask, min_side=240) == (210, 0, 240)  # wider context, shifted down into the image
    mask[:] = False
    mask[395:, 590:] = True  # in the corner: the square is pushed back inside
    assert crop_box(mask, min_side=100) == (500, 300, 100)


def test_crop_box_sticks_out_only_along_a_short_axis() -> None:
    mask = np.zeros((1000, 50), bool)
    mask[500:530, 10:40] = True
    left, top, side = crop_box(mask, min_side=30)
    assert side == 60 and top == 485 and left == -5  # wider than the image: covers it, centred on the hole
    mask = np.zeros((1000, 50), bool)
    mask[100:900, 20:30] = True  # tall hole: the side is capped at the image's longer side
    assert crop_box(mask, min_side=0) == (-475, 0, 1000)


def test_extract_crop_reflects_and_fill_hole_puts_it_back() -> None:
    photo = _photo(20, 8)
    box = (-3, 5, 12)
    crop = extract_crop(photo, box)
    assert crop.shape == (12, 12, 3)
    np.testing.assert_array_equal(crop[:, 3:11], photo[5:17])
    np.testing.assert_array_equal(crop[:, 2], photo[5:17, 1])  # reflected column
    hole = np.zeros((20, 8), bool)
    hole[6:9, 2:4] = True
    out = fill_hole(photo, 255 - crop, hole, left=-3, top=5)
    np.testing.assert_array_equal(out[hole], 255 - photo[hole])
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert hole_window(hole) == (6, 2, 9, 4) and hole_window(hole, 3) == (3, 0, 12, 7)
    hole[0, 0] = True  # above the patch
    with pytest.raises(ValueError, match="outside the filled patch"):
        fill_hole(photo, crop, hole, left=-3, top=5)


def test_classic_methods_fill_a_window_with_the_whole_frames_result() -> None:
    photo, hole = _photo(90, 120), np.zeros((90, 120), bool)
    hole[30:50, 40:47] = hole[60:62, 70:100] = True
    for method in ("telea", "ns"):
        model = ClassicInpainter(method)
        whole = model(photo, hole)
        np.testing.assert_array_equal(inpaint_arrays(model, [photo], [hole])[0], np.where(hole[..., None], whole, photo))


@pytest.mark.parametrize(("source", "side"), [(300, 128), (60, 128), (128, 128)])
def test_resize_mask_keeps_every_hole_pixel(source: int, side: int) -> None:
    mask = np.zeros((source, source), bool)
    mask[source // 2, source // 3] = True  # a single pixel must survive downscaling
    small = resize_mask(mask, side)
    assert small.shape == (side, side) and small.any()
    y, x = np.nonzero(small)
    scale = side / source
    assert y.min() <= (source // 2) * scale <= y.max() + 1 and x.min() <= (source // 3) * scale <= x.max() + 1


def test_edge_weights_ramp_from_the_frames_edges_inside_the_photo() -> None:
    side = 64
    band = round(FRAME_BAND * side)  # 8
    weights = edge_weights((100, 120), (20, 10, side))  # over the frame: rows 10-73, columns 20-83
    assert weights.shape == (side, side) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights[band:-band, band:-band], 1.0)
    row = weights[32, : band + 1]  # from the left edge inwards: (0.5, 1.5, ...) / band, then 1
    np.testing.assert_allclose(row, np.append((np.arange(band) + 0.5) / band, 1.0), rtol=1e-6)
    np.testing.assert_allclose(weights[32, -band - 1 :][::-1], row, rtol=1e-6)  # symmetric at the right
    np.testing.assert_array_equal(weights, weights.T)
    # an edge on the photo's border (or beyond it) needs no band: nothing is filled past it
    flush = edge_weights((100, 120), (-5, 0, side))  # rows 0-63, columns 0-58
    assert flush.shape == (side, side - 5)
    np.testing.assert_array_equal(flush[: side - band, : side - 5 - band], 1.0)
    assert 0 < flush[30, -1] < 1 and 0 < flush[-1, 30] < 1


def test_a_hole_on_a_face_is_completed_in_the_faces_frame(tiny: MSLInpainter) -> None:
    photo = image_array(load_image(example_image_path()))  # 512², larger than the working frame
    mask = load_mask(example_mask_path(), (512, 512))  # mouth and cheeks, running out of the face's frame
    (frame,) = face_frames([photo], [mask])
    left, top, side = frame
    assert 0 <= left and 0 <= top and left + side <= 512 and top + side <= 512
    result = inpaint_arrays(tiny, [photo], [mask])[0]
    np.testing.assert_array_equal(result[~mask], photo[~mask])
    # inside the frame, away from its edges, the fill is the one the frame alone gets (as a photo seen whole)
    alone = inpaint_arrays(tiny, [extract_crop(photo, frame)], [extract_crop(mask, frame)])[0]
    band = round(FRAME_BAND * side)
    inner = np.s_[top + band : top + side - band, left + band : left + side - band]
    np.testing.assert_array_equal(result[inner], alone[band:-band, band:-band])
    # without face framing the hole is cropped around, as before
    unframed = inpaint_arrays(tiny, [photo], [mask], face_framing=False)[0]
    np.testing.assert_array_equal(unframed[~mask], photo[~mask])
    assert not np.array_equal(unframed[inner], result[inner])
    # a photo the network sees whole is not framed
    assert face_frames([photo[::2, ::2]], [mask[::2, ::2]]) == [None]


def test_list_input_matches_one_by_one(tiny: MSLInpainter) -> None:
    sizes = [(150, 90), (64, 200), (128, 128)]
    photos = [_photo(*size, seed=i) for i, size in enumerate(sizes)]
    masks = [_hole(*size) for size in sizes]
    batched = inpaint(photos, masks, model=tiny, batch_size=2)
    assert isinstance(batched, list) and len(batched) == 3
    for photo, mask, result in zip(photos, masks, batched):
        single = np.asarray(inpaint(photo, mask, model=tiny)).astype(int)
        assert np.abs(np.asarray(result).astype(int) - single).max() <= 1  # float reduction order only


def test_mismatched_lists_are_rejected(tiny: MSLInpainter) -> None:
    with pytest.raises(ValueError, match="same length"):
        inpaint([_photo(10, 10)], [_hole(10, 10)] * 2, model=tiny)
    with pytest.raises(ValueError, match="same length"):
        inpaint([_photo(10, 10)], _hole(10, 10), model=tiny)


def test_a_mask_over_95_percent_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 100% of the photo; at most 95% can be filled"):
        inpaint(_photo(10, 20), np.ones((10, 20), bool), model="telea")


@pytest.mark.parametrize("dtype", [torch.float64, pytest.param(torch.bfloat16, marks=pytest.mark.slow)])  # bf16: slow on AVX2
def test_dtype_selection(dtype: torch.dtype) -> None:
    model = MSLInpainter.from_preset("msl-tiny-128")
    photo, mask = _photo(100, 80), _hole(100, 80)
    result = inpaint(photo, mask, model=model, dtype=dtype)
    assert next(model.parameters()).dtype == dtype and not model.training
    _assert_only_hole_changed(result, photo, mask)


@pytest.mark.parametrize(("precision", "fast", "expected"),
                         [("auto", True, True), ("auto", False, False), ("bf16", False, True), ("fp32", True, False)])
def test_precision_picks_bf16_autocast_where_the_hardware_is_fast(
        monkeypatch: pytest.MonkeyPatch, precision: str, fast: bool, expected: bool) -> None:
    monkeypatch.setattr(pipeline, "bf16_is_fast", lambda device: fast)
    with network_autocast(torch.zeros(1), precision):
        assert torch.is_autocast_enabled("cpu") == expected
    with network_autocast(torch.zeros(1, dtype=torch.float64), precision):  # only a float32 network is autocast
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.slow  # bf16 is emulated, and slow, on CPUs without bf16 units
def test_a_bf16_fill_is_close_to_the_fp32_fill(tiny: MSLInpainter) -> None:
    photo, mask = _photo(96, 112), _hole(96, 112)
    fp32, bf16 = (np.asarray(inpaint(photo, mask, model=tiny, precision=p)).astype(int) for p in ("fp32", "bf16"))
    _assert_only_hole_changed(Image.fromarray(bf16.astype(np.uint8)), photo, mask)
    assert 0 < np.abs(fp32 - bf16)[mask].mean() < 2.0  # gray levels: bf16 really ran, and its fill is fp32's


def test_an_unknown_precision_is_refused(tiny: MSLInpainter) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        inpaint(_photo(10, 10), _hole(10, 10), model=tiny, precision="fp16")


def test_default_model_is_the_shipped_msl_face() -> None:
    photo, mask = _photo(40, 50), _hole(40, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = inpaint(photo, mask)
    expected = inpaint(photo, mask, model=load_model("msl-face"))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
    assert not np.array_equal(np.asarray(result), ClassicInpainter("telea")(photo, mask))
    _assert_only_hole_changed(result, photo, mask)


def test_default_model_warns_and_uses_telea_without_shipped_weights(no_shipped_model: None) -> None:
    photo, mask = _photo(40, 50), _hole(40, 50)
    with pytest.warns(UserWarning, match="Telea"):
        result = inpaint(photo, mask)
    expected = ClassicInpainter("telea")(photo, mask)
    np.testing.assert_array_equal(np.asarray(result), expected)


@pytest.mark.parametrize("method", ["telea", "tiny"])
def test_icc_profile_is_carried(tmp_path: Path, method: str, tiny: MSLInpainter) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_photo(50, 40)).save(tmp_path / "x.png", icc_profile=icc)
    result = inpaint(tmp_path / "x.png", _hole(50, 40), model=tiny if method == "tiny" else method)
    assert result.info["icc_profile"] == icc
    assert "icc_profile" not in inpaint(_photo(50, 40), _hole(50, 40), model="telea").info
