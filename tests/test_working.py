"""The working frame (`working.py`): the crop around a hole, reflect padding, conservative mask resampling, the
paste-back of hole pixels only, and the weights of a face frame's band."""

from __future__ import annotations

import numpy as np
import pytest

from hf_faceinpaint.working import crop_box, edge_weights, extract_crop, fill_hole, hole_window, resize_mask

FRAME_BAND = 0.125


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_crop_box_is_square_around_the_hole_and_inside_the_image() -> None:
    mask = np.zeros((400, 600), bool)
    mask[100:140, 300:360] = True  # hole 60 wide, 40 high
    assert crop_box(mask, 0, 2.0) == (270, 60, 120)  # side 2 × 60, centred on the hole
    assert crop_box(mask, 240, 2.0) == (210, 0, 240)  # wider context, shifted down into the image
    mask[:] = False
    mask[395:, 590:] = True  # in the corner: the square is pushed back inside
    assert crop_box(mask, 100, 2.0) == (500, 300, 100)


def test_crop_box_sticks_out_only_along_a_short_axis() -> None:
    mask = np.zeros((1000, 50), bool)
    mask[500:530, 10:40] = True
    left, top, side = crop_box(mask, 30, 2.0)
    assert side == 60 and top == 485 and left == -5  # wider than the image: covers it, centred on the hole
    mask = np.zeros((1000, 50), bool)
    mask[100:900, 20:30] = True  # tall hole: the side is capped at the image's longer side
    assert crop_box(mask, 0, 2.0) == (-475, 0, 1000)


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
    weights = edge_weights((100, 120), (20, 10, side), FRAME_BAND)  # over the frame: rows 10-73, columns 20-83
    assert weights.shape == (side, side) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights[band:-band, band:-band], 1.0)
    row = weights[32, : band + 1]  # from the left edge inwards: (0.5, 1.5, ...) / band, then 1
    np.testing.assert_allclose(row, np.append((np.arange(band) + 0.5) / band, 1.0), rtol=1e-6)
    np.testing.assert_allclose(weights[32, -band - 1 :][::-1], row, rtol=1e-6)  # symmetric at the right
    np.testing.assert_array_equal(weights, weights.T)
    # an edge on the photo's border (or beyond it) needs no band: nothing is filled past it
    flush = edge_weights((100, 120), (-5, 0, side), FRAME_BAND)  # rows 0-63, columns 0-58
    assert flush.shape == (side, side - 5)
    np.testing.assert_array_equal(flush[: side - band, : side - 5 - band], 1.0)
    assert 0 < flush[30, -1] < 1 and 0 < flush[-1, 30] < 1
