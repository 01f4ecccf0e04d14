"""Mirror detail: the face's other side, mirrored, gives a fill the detail it lacks (an eye for a painted-over eye).

Faces are close to mirror-symmetric about a vertical axis. When a hole covers one eye (or one side of a face), the
mirror image of the known side holds what the fill lacks: the other eye's iris, lids and lashes. The frame x is
mirrored and shifted by the (dy, dx) that best matches it to x itself on the known pixels of the face region,

    (dy, dx) = argmax NCC(D ∗ x, D ∗ s)   over that region,   s = shift(flip(x), dy, dx),            (3)

with D a band-pass (a difference of Gaussians) and NCC the normalised cross-correlation; a pixel and its own mirror
image (near the axis) are left out of eq. 3, where they match trivially, and a shift that matches less than
`MIN_MATCHED` of the face region does not count. A half face painted over has no shift to match: optionally
(`axis_trust`) the frame is then mirrored about its own centre, where an aligned frame has the face's axis. Then
the fill's high frequencies are swapped for the mirrored pixels' where those are known, deep inside the hole and on
the face:

    out = x + t · w · [(s − G_σ ∗_v s) − (x − G_σ ∗ x)],                                                (4)

where G_σ ∗_v is a Gaussian low-pass of the known mirrored pixels alone (normalised convolution), w the product of
the hole, a ramp from its edge (`hole_depth`), the known share of the mirrored pixels and the face region, and t the
trust in the match, rising from 0 to 1 as the NCC goes from `TRUST_NCC[0]` to `TRUST_NCC[1]` (and scaled by the
face prior's trust in the frame). The fill's low frequencies (the prior's layout and the photo's lighting, which
differs from side to side) stay; only the detail finer than σ comes from the mirror.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import geometry
from .base import DetailStage, Draft
from .filters import erode, gaussian_blur, hole_depth, shift

MATCH_SIDE = 128  # eq. 3 is solved on the frame area-resampled to this side
MAX_SHIFT = (0.025, 0.08)  # largest |dy|, |dx| searched, fractions of the side
AXIS_GAP = 0.05  # pixels closer than this (fraction of the side) to their own mirror image are left out of eq. 3
TRUST_NCC = (0.1, 0.35)  # NCC of eq. 3 at which the trust t starts to rise, and where it is full
# A shift counts in eq. 3 only where the frame and its mirror image are both known on at least this share of the face
# region: with half the face painted over, the few pixels left would give an NCC that is high by chance.
MIN_MATCHED = 0.25


def face_region(like: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) ones on the face region (`geometry.FACE`) of a frame shaped like `like` (B, C, H, W), zeros
    elsewhere."""
    height, width = like.shape[-2:]
    box = geometry.FACE
    top, bottom, left, right = box.top, box.bottom, box.left, box.right
    region = torch.zeros(1, 1, height, width, dtype=like.dtype, device=like.device)
    rows = slice(max(round(top * height), 0), round(bottom * height))
    region[..., rows, max(round(left * width), 0) : round(right * width)] = 1
    return region


def correlate(frames: torch.Tensor, kernels: torch.Tensor, reach_y: int, reach_x: int) -> torch.Tensor:
    """Σ_{c,i,j} kernels[b, c, i, j] · frames[b, c, i − dy, j − dx] for every |dy| ≤ reach_y, |dx| ≤ reach_x, where
    `frames` is zero outside itself (one grouped convolution).

    Args:
        frames: (B, C, h, w).
        kernels: (B, C, h, w).

    Returns:
        (B, 2·reach_y + 1, 2·reach_x + 1), indexed [b, dy + reach_y, dx + reach_x].
    """
    batch, channels, height, width = frames.shape
    padded = F.pad(frames, (reach_x, reach_x, reach_y, reach_y)).reshape(1, batch * channels, height + 2 * reach_y,
                                                                       width + 2 * reach_x)
    out = F.conv2d(padded, kernels, groups=batch)  # (1, B, 2ry + 1, 2rx + 1); out[y, x] pairs shift (ry − y, rx − x)
    return out[0].flip(-2, -1)


def mirror_match(frame: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 3: the shift of the mirrored frame that best matches the frame on its known face pixels.

    The sums of the NCC are correlations over all shifts at once (`correlate`), less the pixels near each shift's
    mirror axis.

    Args:
        frame: (B, 3, H, W) in [-1, 1], square; hole pixels may hold anything (a fill).
        mask: (B, 1, H, W), 1 = hole.

    Returns:
        (ncc, dy, dx): the best NCC (B,), −1 where no shift matches `MIN_MATCHED` of the face region, and its
        shift (B,) each, in the frame's pixels (long).
    """
    batch, side, g = frame.shape[0], frame.shape[-1], MATCH_SIDE
    small = F.interpolate(frame, size=(g, g), mode="area")  # (B, 3, g, g)
    known = (F.interpolate(mask, size=(g, g), mode="area") == 0).to(frame.dtype)  # (B, 1, g, g)
    detail = gaussian_blur(small, 0.75) - gaussian_blur(small, 2.5)  # D ∗ x: the band that locates eyes and brows
    region = face_region(small)
    weight = known * region  # (B, 1, g, g)
    mirrored_known = known.flip(-1)
    mirrored = detail.flip(-1) * mirrored_known  # zero where the mirror image is not known
    # the four sums of eq. 3 per shift: Σ w·x·s, Σ w·x², Σ w·s², Σ w, with w = weight · shifted mirrored_known
    terms = ((mirrored, weight * detail), (mirrored_known, weight * (detail**2).sum(1, keepdim=True)),
             (mirrored_known * (mirrored**2).sum(1, keepdim=True), weight), (mirrored_known, weight))
    reach_y, reach_x = (round(limit * g) for limit in MAX_SHIFT)
    sums = torch.stack([correlate(a, b, reach_y, reach_x) for a, b in terms])  # (4, B, 2ry + 1, 2rx + 1)
    # a column j is matched with column g − 1 − j + dx: the pixels near that axis match trivially; take them out,
    # for every dx at once, from the K columns of the kernel nearest that axis
    columns, shifts = torch.arange(g, device=frame.device), torch.arange(-reach_x, reach_x + 1, device=frame.device)
    near = (2 * columns - (g - 1) - shifts[:, None]).abs() < AXIS_GAP * g  # (X, g)
    width = int(near.sum(1).max())
    kernel_columns = near.to(torch.uint8).argmax(1)[:, None] + torch.arange(width, device=frame.device)  # (X, K)
    frame_columns = kernel_columns - shifts[:, None]  # the mirrored columns they pair with
    valid = (near.gather(1, kernel_columns.clamp(max=g - 1)) & (kernel_columns < g) & (frame_columns >= 0)
             & (frame_columns < g)).to(frame.dtype)  # (X, K)

    def strips(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # (B, C, g, g) -> (X·B, C, g, K)
        picked = x[..., index.clamp(0, g - 1)] * valid  # (B, C, g, X, K)
        return picked.permute(3, 0, 1, 2, 4).flatten(0, 1)

    for t, (a, b) in enumerate(terms):
        band = correlate(strips(a, frame_columns), strips(b, kernel_columns), reach_y, 0)  # (X·B, Y, 1)
        sums[t] -= band.view(len(shifts), batch, -1).permute(1, 2, 0)
    products, own, other, matched = sums
    ncc = products / (own * other).clamp_min(0).sqrt().clamp_min(1e-8)
    ncc = torch.where(matched >= MIN_MATCHED * region.sum() - 0.5, ncc, torch.full_like(ncc, -1.0))  # too few pixels
    best, index = ncc.flatten(1).max(dim=1)  # the first maximum: dy, then dx, in increasing order
    best_dy, best_dx = index // ncc.shape[-1] - reach_y, index % ncc.shape[-1] - reach_x
    scale = side / g
    return best, (best_dy * scale).round().long(), (best_dx * scale).round().long()


@dataclass
class MirrorConfig:
    """Settings of eq. 4 (the defaults are msl-face's), lengths as fractions of the frame's side.

    Args:
        sigma: σ of G: the detail finer than this comes from the mirror.
        ramp: Depth into the hole from which the mirror's detail is taken whole.
        axis_trust: t where eq. 3 has no shift to measure (half a face painted over: no shift matches
            `MIN_MATCHED` of the face region): the frame is then mirrored about its own centre, the face's axis in an
            aligned frame (`geometry.AXIS`); 0 = no mirror detail there.
    """

    sigma: float = 4 / 256
    ramp: float = 8 / 256
    axis_trust: float = 1.0

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and self.ramp > 0 and 0 <= self.axis_trust <= 1):
            raise ValueError(f"need sigma > 0, ramp > 0 and axis_trust in [0, 1], got {self.sigma}, {self.ramp}, "
                             f"{self.axis_trust}")


class MirrorDetail(DetailStage, config_class=MirrorConfig):
    """Eqs. 3-4: the fill's detail replaced by the mirrored face's, deep inside the hole where the mirror is known.
    The trust t of eq. 4 is the match's times the draft's (1 without a draft)."""

    def forward(self, filled: torch.Tensor, mask: torch.Tensor, draft: Draft | None) -> torch.Tensor:
        config, side = self.config, filled.shape[-1]
        if filled.shape[-1] != filled.shape[-2]:
            return filled
        sigma, ramp = config.sigma * side, config.ramp * side
        depth = hole_depth(mask, math.ceil(ramp))
        if not bool((depth > 1).any()):  # strokes one or two pixels wide: the network's fill is all they need
            return filled
        ncc, dys, dxs = mirror_match(filled, mask)
        trust = ((ncc - TRUST_NCC[0]) / (TRUST_NCC[1] - TRUST_NCC[0])).clamp(0.0, 1.0)  # (B,)
        unmatched = ncc <= -1.0  # no shift could be measured: the frame's own axis
        trust = torch.where(unmatched, torch.full_like(trust, config.axis_trust), trust)
        dys, dxs = dys.masked_fill(unmatched, 0), dxs.masked_fill(unmatched, 0)
        if draft is not None:
            trust = trust * draft.trust
        if not bool(trust.any()):
            return filled
        pairs = list(zip(dys.tolist(), dxs.tolist()))
        source = torch.stack([shift(frame.flip(-1), dy, dx) for frame, (dy, dx) in zip(filled, pairs)])  # s
        known = torch.stack([shift((1.0 - m).flip(-1), dy, dx) for m, (dy, dx) in zip(mask, pairs)])
        known = erode(known)  # a pixel off the mirrored hole's edge
        source_detail = source - gaussian_blur(source * known, sigma) / gaussian_blur(known, sigma).clamp_min(1e-3)
        own_detail = filled - gaussian_blur(filled, sigma)
        weight = (mask * (depth / ramp).clamp(max=1.0) * gaussian_blur(known, 1.5)
                  * gaussian_blur(face_region(filled).expand_as(mask), 0.03 * side) * trust.view(-1, 1, 1, 1))
        return (filled + weight * (source_detail - own_detail)).clamp(-1.0, 1.0)
