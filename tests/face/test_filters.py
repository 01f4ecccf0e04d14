"""The face stages' filters against OpenCV: hole depth (chessboard distance), erosion, Gaussian low-pass; shifts."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hf_faceinpaint.face.filters import erode, gaussian_blur, hole_depth, known_cells, ramp, shift


def test_hole_depth_is_opencvs_chessboard_distance() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:30, 3:45] = 1
    mask[0:10, 20:25] = 1  # touches the border: beyond the frame counts as hole, as in OpenCV
    mask[rng.random(mask.shape) < 0.05] = 1
    expected = cv2.distanceTransform(mask, cv2.DIST_C, 3)
    depth = hole_depth(torch.from_numpy(mask)[None, None].float(), 100)[0, 0].numpy()
    np.testing.assert_array_equal(depth, expected)
    capped = hole_depth(torch.from_numpy(mask)[None, None].float(), 3)[0, 0].numpy()
    np.testing.assert_array_equal(capped, np.minimum(expected, 4))
    weight = ramp(torch.from_numpy(mask)[None, None].float(), 4.0)[0, 0].numpy()
    np.testing.assert_allclose(weight, np.minimum(expected / 4.0, 1.0))


def test_erode_is_the_3x3_minimum_with_the_frame_beyond_counting_as_hole() -> None:
    masks = (torch.rand(3, 1, 17, 23, generator=torch.Generator().manual_seed(0)) > 0.3).float()  # (B, 1, H, W)
    torch.testing.assert_close(erode(masks), -F.max_pool2d(-masks, 3, stride=1, padding=1), rtol=0, atol=0)
    assert erode(torch.ones(1, 1, 4, 5)).eq(1).all()  # a hole filling the frame is not eroded from its border


def test_gaussian_blur_is_opencvs_with_reflected_borders() -> None:
    image = np.random.default_rng(0).random((3, 30, 40)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(image)[None], 2.0)[0].numpy()
    expected = np.stack([cv2.GaussianBlur(c, (13, 13), 2.0, borderType=cv2.BORDER_REFLECT_101) for c in image])
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert torch.equal(gaussian_blur(torch.from_numpy(image)[None], 0.0), torch.from_numpy(image)[None])


def test_shift_moves_and_fills_with_zeros() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    moved = shift(x, 1, -2)
    assert torch.equal(moved[0, 0], torch.tensor([[0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0.0]]))
    assert shift(x, 3, 0).abs().max() == 0


def test_known_cells_average_the_known_pixels_alone() -> None:
    image = torch.tensor([[1.0, 3.0], [5.0, 100.0]]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    known = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    cells, share = known_cells(image, known, 1)
    torch.testing.assert_close(cells, torch.full((1, 3, 1, 1), 3.0))
    torch.testing.assert_close(share, torch.full((1, 1, 1, 1), 0.75))
