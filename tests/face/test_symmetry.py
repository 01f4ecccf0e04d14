"""Mirror detail (`face/symmetry.py`): eq. 3's search for the face's mirror axis, and eq. 4's transfer of the mirrored
detail into a hole (and everything it must leave alone)."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint.face.base import Draft
from hf_faceinpaint.face.filters import gaussian_blur, shift
from hf_faceinpaint.face.symmetry import (AXIS_GAP, MATCH_SIDE, MAX_SHIFT, MIN_MATCHED, TRUST_NCC, MirrorConfig,
                                          MirrorDetail, face_region, mirror_match)


def transfer_mirror_detail(fill: torch.Tensor, mask: torch.Tensor, sigma: float, ramp: float,
                           face_trust: torch.Tensor | None = None, axis_trust: float = 0.0) -> torch.Tensor:
    """The `MirrorDetail` stage with σ and the ramp in pixels, and the draft's trust `face_trust` (None: no draft)."""
    side = fill.shape[-1]
    stage = MirrorDetail(MirrorConfig(sigma=sigma / side, ramp=ramp / side, axis_trust=axis_trust))
    return stage(fill, mask, None if face_trust is None else Draft(torch.zeros_like(fill), face_trust))


def mirrored(image: torch.Tensor, dx: int) -> torch.Tensor:
    """The mirror image of `image` shifted by dx columns (eq. 3's s with dy = 0)."""
    return shift(image.flip(-1), 0, dx)


def symmetric_faces(side: int, shifts: list[int], seed: int = 0) -> torch.Tensor:
    """(B, 3, side, side) smooth random frames, each mirror-symmetric about the axis that `mirrored(·, dx)` maps onto
    itself (away from the borders): r + mirrored(r, dx)."""
    generator = torch.Generator().manual_seed(seed)
    noise = gaussian_blur(torch.randn(len(shifts), 3, side, side, generator=generator), side / 64)
    noise = noise / noise.abs().amax(dim=(1, 2, 3), keepdim=True) * 0.45
    return torch.cat([r[None] + mirrored(r[None], dx) for r, dx in zip(noise, shifts)])


def eye_hole(batch: int, side: int) -> torch.Tensor:
    """(B, 1, side, side): a box over the left eye of a face frame (masks.part_mask's "left-eye")."""
    mask = torch.zeros(batch, 1, side, side)
    mask[..., round(0.34 * side) : round(0.56 * side), round(0.16 * side) : round(0.46 * side)] = 1
    return mask


@pytest.mark.parametrize("side", [128, 256])
def test_the_mirror_axis_is_found_on_the_known_pixels(side: int) -> None:
    scale = side // 128  # eq. 3 is solved at 128²: shifts come back in the frame's pixels
    frames = symmetric_faces(side, [6 * scale, -8 * scale])
    mask = eye_hole(2, side)
    frames = frames * (1 - mask) + mask * 0.9  # the hole's pixels are not the face's: they must not count
    ncc, dy, dx = mirror_match(frames, mask)
    assert dx.tolist() == [6 * scale, -8 * scale] and dy.tolist() == [0, 0]
    assert (ncc > TRUST_NCC[1]).all()  # trusted fully (the hole's edge blurs into the band-pass, so not ~1)


def brute_force_ncc(frame: torch.Tensor, mask: torch.Tensor, dy: int, dx: int) -> float:
    """Eq. 3's NCC of one shift, summed pixel by pixel as the docstring states it (one frame of side MATCH_SIDE)."""
    g = MATCH_SIDE
    known = (mask == 0).float()
    detail = gaussian_blur(frame, 0.75) - gaussian_blur(frame, 2.5)
    columns = torch.arange(g).float()
    apart = ((2 * columns - (g - 1) - dx).abs() >= AXIS_GAP * g).float()  # away from the pair's mirror axis
    w = known * face_region(frame) * shift(known.flip(-1), dy, dx) * apart
    if w.sum() < MIN_MATCHED * face_region(frame).sum():
        return -1.0
    other = shift(detail.flip(-1), dy, dx)
    return ((w * detail * other).sum() / ((w * detail**2).sum() * (w * other**2).sum()).sqrt()).item()


def test_the_match_equals_eq_3_summed_shift_by_shift() -> None:
    frames = symmetric_faces(MATCH_SIDE, [5, -3], seed=5) + 0.05 * torch.randn(2, 3, MATCH_SIDE, MATCH_SIDE)
    mask = eye_hole(2, MATCH_SIDE)
    mask[1, :, 60:100, 50:70] = 1  # a second hole across the axis
    ncc, dy, dx = mirror_match(frames, mask)
    reach_y, reach_x = (round(limit * MATCH_SIDE) for limit in MAX_SHIFT)
    for b in range(2):
        scores = {(y, x): brute_force_ncc(frames[b : b + 1], mask[b : b + 1], y, x)
                  for y in range(-reach_y, reach_y + 1) for x in range(-reach_x, reach_x + 1)}
        best = max(scores, key=scores.get)
        assert (dy[b].item(), dx[b].item()) == best
        assert ncc[b].item() == pytest.approx(scores[best], abs=1e-4)


def test_the_mirrored_eye_comes_back_into_a_detail_less_fill() -> None:
    side = 128
    truth = symmetric_faces(side, [4, -6], seed=1)
    mask = eye_hole(2, side)
    fill = mask * gaussian_blur(truth, 4.0) + (1 - mask) * truth  # the hole filled without its detail
    out = transfer_mirror_detail(fill, mask, sigma=4.0, ramp=2.0)
    assert torch.equal(out * (1 - mask), fill * (1 - mask))  # known pixels untouched
    error = lambda x: ((x - truth).abs() * mask).sum() / mask.sum()  # noqa: E731
    assert error(out) < 0.5 * error(fill)


def test_nothing_changes_without_a_trusted_mirror() -> None:
    side = 128
    mask = eye_hole(1, side)
    noise = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(2)) * 2 - 1  # no symmetry
    assert torch.equal(transfer_mirror_detail(noise, mask, 4.0, 4.0), noise)
    face = symmetric_faces(side, [0])
    assert torch.equal(transfer_mirror_detail(face, mask, 4.0, 4.0, face_trust=torch.zeros(1)), face)  # not a face
    stroke = torch.zeros(1, 1, side, side)
    stroke[..., 40:80, 30] = 1  # one pixel wide: the network's fill is all it needs
    assert torch.equal(transfer_mirror_detail(face, stroke, 4.0, 4.0), face)
    half = torch.zeros(1, 1, side, side)
    half[..., :, : side // 2] = 1  # half the face painted over: no pixel is known both in the frame and its mirror
    assert torch.equal(transfer_mirror_detail(face, half, 4.0, 4.0), face)
    assert mirror_match(face, half)[0].item() == -1.0


def test_a_half_face_takes_the_detail_mirrored_about_the_frame_centre_when_asked() -> None:
    side = 128
    truth = symmetric_faces(side, [0], seed=6)  # symmetric about the frame's centre, as an aligned face
    half = torch.zeros(1, 1, side, side)
    half[..., :, : side // 2] = 1  # no shift can be matched (see above)
    fill = half * gaussian_blur(truth, 4.0) + (1 - half) * truth
    assert torch.equal(transfer_mirror_detail(fill, half, 4.0, 2.0), fill)  # axis_trust 0: as before
    out = transfer_mirror_detail(fill, half, 4.0, 2.0, axis_trust=1.0)
    assert torch.equal(out * (1 - half), fill * (1 - half))  # known pixels untouched
    inside = half * face_region(fill)
    error = lambda x: ((x - truth).abs() * inside).sum() / inside.sum()  # noqa: E731
    assert error(out) < 0.5 * error(fill)
    weaker = transfer_mirror_detail(fill, half, 4.0, 2.0, axis_trust=0.5)
    torch.testing.assert_close(weaker - fill, 0.5 * (out - fill), atol=1e-5, rtol=0)  # t of eq. 4
    not_a_face = transfer_mirror_detail(fill, half, 4.0, 2.0, face_trust=torch.zeros(1), axis_trust=1.0)
    assert torch.equal(not_a_face, fill)
    with pytest.raises(ValueError, match="axis_trust in"):
        MirrorConfig(axis_trust=1.5)


def test_only_the_face_region_receives_detail() -> None:
    side = 128
    face = symmetric_faces(side, [0], seed=3)
    mask = torch.zeros(1, 1, side, side)
    mask[..., 40:80, 10:50] = 1  # a hole reaching from the face into the background beside it
    fill = mask * gaussian_blur(face, 4.0) + (1 - mask) * face
    changed = (transfer_mirror_detail(fill, mask, 4.0, 2.0) - fill).abs().amax(dim=1)[0]  # (H, W)
    region = face_region(fill)[0, 0]
    assert changed[40:80, 10:50][region[40:80, 10:50] == 1].max() > 0.05
    assert changed[:, :12].max() == 0  # far outside the face region (its blurred edge ends before column 12)
