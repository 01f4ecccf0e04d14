"""Exemplar detail: a real eye pair's detail where a hole hides both eyes and no mirror can help (msl-face v8).

The face prior and its refiner put eyes and a mouth where a face has them, but they draw the conditional mean of
what a hole hides: with both eyes painted over, soft dark shapes without iris or white. Mirror detail
(`models/symmetry.py`) fixes one eye from the other; with both eyes gone there is nothing to mirror. A bank of real
eye-pair windows (grey, cut from training faces at `BANK_SIDE`, and used mirrored as well) gives that detail
instead: the window, and its place within `MAX_SHIFT`, that best matches the composited fill x on its known pixels
and on the fill's layout in the hole alike,

    k* = argmin_k Σ_p w_p (y_p − ȳ − e_k,p + ē_k)²,   w_p = 1 where known, `HOLE_WEIGHT` in the hole,        (5)

(y the grey window of x, e_k a bank window or its mirror image, both on a grid `MATCH_STEP` times coarser than the
bank's, ȳ and ē_k their w-weighted means), then hands the fill its detail finer than σ deep inside the hole:

    out = x + t · w · [g · r · (e − G_σ ∗ e) − (x − G_σ ∗ x)],                                           (6)

with e the chosen window enlarged to the frame and moved to its place, g ≤ 1 the photo's detail level over the
exemplar's on the window's known pixels (`detail_gain`: a soft photo gets soft eyes), r the exemplar's own eyes
(`feature_region`: where it differs from its skin; 1 everywhere without a contrast, as in msl-face v8 and v9), w the
hole times a ramp from its edge (`hole_depth`) times the part's core (`geometry.EYE_CORE`, soft-edged) times how much of
that core the hole hides (`COVER`), and t the face prior's trust in the frame. The fill's low frequencies (the
prior's layout, the photo's colours and lighting) stay; the iris, the white and the lids come from a real face, and
with r (msl-face v10) only they: the skin around them is left smooth, without the fill's blocks and without the
exemplar's wrinkles, bags and blotches. It is nearest-neighbour
completion (Hays & Efros 2007) restricted to the detail band. The bank holds eye pairs only (`geometry.EYE_WINDOW`); a mouth
window was measured and left out (mottled grey skin texture around the lips; docs/experiments.md). The bank is cut by
`scripts/fit_exemplar_bank.py` and joins a pipeline with `scripts/export_shipped_model.py --exemplars`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io import CheckpointError, read_state_dict
from . import geometry
from .base import DetailStage, Draft
from .filters import gaussian_blur, hole_depth, shift

BANK_SIDE = 128  # the windows are cut from frames of this side
# The part's window on an aligned frame (symmetric about the axis, so a window's mirror image is one of the same
# part), and its core inside it, the only place eq. 6 changes.
WINDOWS = {"eyes": geometry.EYE_WINDOW}
CORES = {"eyes": geometry.EYE_CORE}
MATCH_STEP = 4  # eq. 5 is solved on the windows average-pooled this many times
MAX_SHIFT = 4  # ... for the window moved by up to this many bank pixels each way
SHIFT_STEP = 2  # ... in steps of this many
HOLE_WEIGHT = 3.0  # w_p of eq. 5 for the fill's pixels in the hole (known pixels: 1)
MIN_KNOWN = 0.1  # the detail gain g of eq. 6 is measured where at least this share of the window is known
# The part counts as hidden, and eq. 6 is taken whole, where the hole covers at least COVER[1] of its core; below
# COVER[0] (a nose box reaching the eyes' inner corners, a stroke) the fill keeps its own detail; linear in between.
COVER = (0.4, 0.6)
EDGE = 0.03  # the soft edge of a window's weight in eq. 6, fraction of the frame side
REGION_BORDER = 3  # `feature_region`: a window's skin is the median of its border this many pixels deep


def window_box(part: str, side: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixels of `part`'s window on a frame of `side` pixels."""
    return WINDOWS[part].pixels(side)


def window_shape(part: str) -> tuple[int, int]:
    """(height, width) of `part`'s bank windows."""
    top, bottom, left, right = window_box(part, BANK_SIDE)
    return bottom - top, right - left


def cut_windows(faces: torch.Tensor, part: str) -> torch.Tensor:
    """The grey uint8 bank windows of `part` from training faces.

    Args:
        faces: (N, 3, BANK_SIDE, BANK_SIDE) uint8 RGB.

    Returns:
        (N, 1, h, w) uint8.
    """
    if faces.shape[-2:] != (BANK_SIDE, BANK_SIDE):
        raise ValueError(f"bank faces must be {BANK_SIDE}² frames, got {tuple(faces.shape[-2:])}")
    top, bottom, left, right = window_box(part, BANK_SIDE)
    grey = faces[:, :, top:bottom, left:right].float().mean(dim=1, keepdim=True)
    return grey.round().clamp(0, 255).to(torch.uint8)


def _core(part: str, side: int, edge: float, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, side, side): 1 on `part`'s core (`CORES`), falling linearly to 0 over `edge` pixels outside it."""
    box = CORES[part]
    top, bottom, left, right = (fraction * side for fraction in (box.top, box.bottom, box.left, box.right))
    position = torch.arange(side, device=like.device, dtype=like.dtype) + 0.5

    def ramp(low: float, high: float) -> torch.Tensor:  # 1 on [low, high], 0 from `edge` outside it
        return (1.0 - torch.maximum(low - position, position - high) / max(edge, 1e-6)).clamp(0.0, 1.0)

    return (ramp(top, bottom)[:, None] * ramp(left, right)[None, :])[None, None]


def feature_region(windows: torch.Tensor, contrast: float) -> torch.Tensor:
    """r of eq. 6: (N, 1, h, w) in [0, 1], where grey windows (N, 1, h, w) in [-1, 1] show the part itself (iris,
    white, lids, lashes) rather than skin.

    The skin is each window's median over its border (`REGION_BORDER` pixels deep); a pixel that, a little blurred,
    lies at least `contrast` from it is 1 from twice that, linear in between. Skin texture (wrinkles, bags under the
    eyes, blotches, JPEG blocks) stays below it; an iris, a lid line, lashes and the white of an eye do not.
    """
    b = REGION_BORDER
    border = torch.cat([windows[..., :b, :].flatten(1), windows[..., -b:, :].flatten(1),
                        windows[..., b:-b, :b].flatten(1), windows[..., b:-b, -b:].flatten(1)], dim=1)
    skin = border.median(dim=1).values.view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    distance = gaussian_blur((windows - skin).abs(), 1.0)
    return gaussian_blur(((distance - contrast) / contrast).clamp(0.0, 1.0), 1.5)


def detail_gain(own: torch.Tensor, detail: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """g of eq. 6: the photo's detail level over the exemplar's, on the window's known pixels, at most 1.

    A soft photo (a small face enlarged) gets the exemplar's detail damped to its own level; a window with fewer
    than `MIN_KNOWN` of its pixels known keeps g = 1.

    Args:
        own: (B, 1, H, W) the photo's grey detail (x − G_σ ∗ x).
        detail: (B, 1, H, W) the exemplar's (e − G_σ ∗ e).
        known: (B, 1, H, W) 1 = known pixel.

    Returns:
        (B, 1, 1, 1).
    """
    count = known.sum(dim=(1, 2, 3), keepdim=True)
    photo = ((own**2 * known).sum(dim=(1, 2, 3), keepdim=True) / count.clamp_min(1)).sqrt()
    exemplar = ((detail**2 * known).sum(dim=(1, 2, 3), keepdim=True) / count.clamp_min(1)).sqrt()
    gain = (photo / exemplar.clamp_min(1e-6)).clamp(max=1.0)
    return torch.where(count >= MIN_KNOWN * known[0].numel(), gain, torch.ones_like(gain))


@dataclass
class ExemplarConfig:
    """Settings of eqs. 5-6 (the defaults are msl-face's), lengths as fractions of the frame's side.

    Args:
        count: Windows N per part in the bank (cut by `scripts/fit_exemplar_bank.py`).
        sigma: σ of G in eq. 6: the detail finer than this comes from the exemplar.
        ramp: Depth into the hole from which the exemplar's detail is taken whole.
        contrast: r of eq. 6 (`feature_region`): the exemplar's detail only where its grey window lies at least
            this far from its skin (in [-1, 1]; wholly from twice this); 0 = the whole core (msl-face v8 and v9).
    """

    count: int = 256
    sigma: float = 4 / 256
    ramp: float = 8 / 256
    contrast: float = 0.15

    def __post_init__(self) -> None:
        if not (self.count >= 1 and self.sigma > 0 and self.ramp > 0 and self.contrast >= 0):
            raise ValueError(f"need count >= 1, sigma > 0, ramp > 0 and contrast >= 0, got {self.count}, "
                             f"{self.sigma}, {self.ramp}, {self.contrast}")


class ExemplarDetail(DetailStage, config_class=ExemplarConfig):
    """A bank of grey windows of real faces (eqs. 5-6; their mirror images are used as well), and the transfer of
    the best match's detail into a fill that hides the part. The trust t of eq. 6 is the draft's (1 without one)."""

    def __init__(self, config: ExemplarConfig | dict | None = None) -> None:
        super().__init__(config)
        for part in WINDOWS:  # (N, 1, h, w) uint8 grey windows
            self.register_buffer(part, torch.zeros(self.config.count, 1, *window_shape(part), dtype=torch.uint8))

    def windows(self, part: str, like: torch.Tensor) -> torch.Tensor:
        """(2N, 1, h, w) `part`'s windows and their mirror images, in [-1, 1], on `like`'s device and dtype."""
        bank = getattr(self, part).to(like.device, like.dtype) / 127.5 - 1.0
        return torch.cat([bank, bank.flip(-1)])

    def match(self, part: str, grey: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5 over the windows and their shifts: for each frame the best window and where it goes.

        Args:
            grey: (B, 1, h + 2M, w + 2M) the composited fill's grey window with a margin of M = `MAX_SHIFT`,
                resampled to the bank's scale.
            hole: (B, 1, h + 2M, w + 2M) its hole share.

        Returns:
            (index, offset): the index (B,) into `windows(part)` and the (dy, dx) (B, 2) in bank pixels of its best
            place relative to the window's.
        """
        bank = F.avg_pool2d(self.windows(part, grey), MATCH_STEP, ceil_mode=True).flatten(1)  # (2N, P)
        height, width = window_shape(part)
        offsets = [(dy, dx) for dy in range(-MAX_SHIFT, MAX_SHIFT + 1, SHIFT_STEP)
                   for dx in range(-MAX_SHIFT, MAX_SHIFT + 1, SHIFT_STEP)]
        distances = []
        for dy, dx in offsets:
            rows, cols = slice(MAX_SHIFT + dy, MAX_SHIFT + dy + height), slice(MAX_SHIFT + dx, MAX_SHIFT + dx + width)
            query = F.avg_pool2d(grey[..., rows, cols], MATCH_STEP, ceil_mode=True).flatten(1)  # (B, P)
            weight = 1.0 + (HOLE_WEIGHT - 1.0) * F.avg_pool2d(hole[..., rows, cols], MATCH_STEP,
                                                              ceil_mode=True).flatten(1)  # (B, P)
            total = weight.sum(dim=1, keepdim=True)  # (B, 1)
            # Σ w (y − e)² − (Σ w (y − e))² / Σ w, expanded so that the bank enters through matrix products only
            squares = (weight * query**2).sum(1, keepdim=True) - 2 * (weight * query) @ bank.T + weight @ (bank**2).T
            sums = (weight * query).sum(1, keepdim=True) - weight @ bank.T  # (B, 2N)
            distances.append(squares - sums**2 / total)
        best = torch.stack(distances, dim=1).flatten(1).argmin(dim=1)  # (B,) over shifts × windows
        offset = torch.tensor(offsets, device=grey.device)[best // bank.shape[0]]  # (B, 2)
        return best % bank.shape[0], offset

    def forward(self, filled: torch.Tensor, mask: torch.Tensor, draft: Draft | None) -> torch.Tensor:
        """Eqs. 5-6 for each part whose window the hole reaches deeper than one pixel."""
        if filled.shape[-1] != filled.shape[-2]:
            return filled
        trust, contrast = None if draft is None else draft.trust, self.config.contrast
        x, hole, side = filled, mask, filled.shape[-1]
        sigma, ramp = self.config.sigma * side, self.config.ramp * side
        depth = deep = None  # measured once, for the first part the hole hides
        for part in WINDOWS:
            top, bottom, left, right = window_box(part, side)
            core = _core(part, side, EDGE * side, x)  # (1, 1, S, S)
            cover = (core * hole).sum(dim=(2, 3)) / core.sum()  # (B, 1): the share of the core that is hole
            hidden = ((cover - COVER[0]) / (COVER[1] - COVER[0])).clamp(0.0, 1.0)[..., None, None]
            if not bool(hidden.any()):
                continue  # the hole misses the part, or hides too little of it
            if depth is None:
                depth = hole_depth(hole, math.ceil(ramp))
                deep = (depth / ramp).clamp(max=1.0) * hole  # (B, 1, S, S)
                if trust is not None:
                    deep = deep * trust.view(-1, 1, 1, 1)
            reach = (deep * hidden)[..., top:bottom, left:right]
            if not bool(((depth[..., top:bottom, left:right] > 1) & (reach > 0)).any()):
                continue  # the hole misses the window, or only strokes a pixel wide cross it
            shape = window_shape(part)
            scale = side / BANK_SIDE
            margin = math.ceil(MAX_SHIFT * scale)
            padded = F.pad(torch.cat([x.mean(dim=1, keepdim=True), hole], dim=1), (margin,) * 4, mode="replicate")
            around = padded[..., top:bottom + 2 * margin, left:right + 2 * margin]  # the window and its margin
            around = F.interpolate(around, size=(shape[0] + 2 * MAX_SHIFT, shape[1] + 2 * MAX_SHIFT), mode="area")
            index, offset = self.match(part, around[:, :1], around[:, 1:])
            crop = x[..., top:bottom, left:right]  # (B, 3, H_w, W_w)
            windows = self.windows(part, x)[index]  # (B, 1, h, w)
            if contrast:
                windows = torch.cat([windows, feature_region(windows, contrast)], dim=1)  # (B, 2, h, w)
            chosen = F.interpolate(windows, size=crop.shape[-2:], mode="bicubic",
                                   align_corners=False)  # (B, 1 or 2, H_w, W_w)
            detail = chosen[:, :1] - gaussian_blur(chosen[:, :1], sigma)  # the exemplar's detail
            moved = torch.cat([detail, chosen[:, 1:]], dim=1)  # moved to its best place, with its region
            moved = torch.stack([shift(d, round(float(dy) * scale), round(float(dx) * scale))
                                 for d, (dy, dx) in zip(moved, offset.tolist())])
            detail, region = moved[:, :1], moved[:, 1:].clamp(0.0, 1.0)
            own = crop - gaussian_blur(crop, sigma)  # (B, 3, H_w, W_w): the fill's
            detail = detail * detail_gain(own.mean(dim=1, keepdim=True), detail, 1.0 - hole[..., top:bottom,
                                                                                              left:right])
            if contrast:  # only the exemplar's eyes themselves (r of eq. 6)
                detail = detail * region
            weight = reach * core[..., top:bottom, left:right]
            x = x.clone()
            x[..., top:bottom, left:right] = crop + weight * (detail - own)
        return x.clamp(-1.0, 1.0)


def load_bank_file(bank: ExemplarDetail, path: str | Path) -> None:
    """Load a file written by `scripts/fit_exemplar_bank.py` into `bank`, strictly.

    Raises:
        CheckpointError: Unreadable file, missing or unexpected parts, or windows of another shape, count or dtype.
    """
    state = read_state_dict(path, "exemplar bank")
    wrong = sorted(set(state) ^ set(WINDOWS))
    if wrong:
        raise CheckpointError(f"exemplar bank {path}: parts missing or unexpected: {', '.join(wrong)}")
    for part, windows in state.items():
        expected = getattr(bank, part)
        if windows.shape != expected.shape or windows.dtype != torch.uint8:
            raise CheckpointError(f"exemplar bank {path}: {part} holds {windows.dtype} {tuple(windows.shape)}, the "
                                  f"model needs uint8 {tuple(expected.shape)}")
        expected.copy_(windows)
