"""Structure transfer: the draft's face gives the network's fill a face's layout deep inside the hole (eq. 2).

    out = x + t · min(d / ramp, 1) · [G_σ ∗ (m ⊙ (face − x)) − (1 − κ) · (x − G_σ ∗ x)],      (2)

where x is the composited fill (the network inside the hole, the photo outside), face the draft, G_σ a Gaussian
low-pass, d the distance into the hole (`filters.hole_depth`), m the hole, t ∈ [0, 1] the draft's trust and κ the
share of the fill's own detail (its high frequencies) kept. Near the hole's edge (and in thin strokes) the network's
fill, which propagates the surrounding colours well, is kept; far inside a large hole, where a network trained on a
CPU budget only smears colour in blocks, the low frequencies of the draft put eyes, nose and mouth where a face has
them, and the blocks are damped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DetailStage, Draft
from .filters import gaussian_blur, ramp


@dataclass
class StructureConfig:
    """Settings of eq. 2 (the defaults are msl-face's), lengths as fractions of the frame's side.

    Args:
        sigma: σ of G: the draft's structure coarser than this is transferred.
        ramp: Depth into the hole from which the draft's structure is taken whole.
        detail: κ, the share of the fill's own detail kept there (1 = all; less damps the network's blocks).
    """

    sigma: float = 1.5 / 256
    ramp: float = 12 / 256
    detail: float = 0.0

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and self.ramp > 0 and 0 <= self.detail <= 1):
            raise ValueError(f"need sigma > 0, ramp > 0 and detail in [0, 1], got {self.sigma}, {self.ramp}, "
                             f"{self.detail}")


class StructureTransfer(DetailStage, config_class=StructureConfig):
    """Eq. 2; does nothing without a draft, or where the draft is not trusted."""

    def forward(self, filled: torch.Tensor, mask: torch.Tensor, draft: Draft | None) -> torch.Tensor:
        if draft is None or not bool(draft.trust.any()):
            return filled
        side, config = filled.shape[-1], self.config
        sigma = config.sigma * side
        weight = ramp(mask, config.ramp * side) * draft.trust.view(-1, 1, 1, 1)  # (B, 1, S, S)
        correction = gaussian_blur(mask * (draft.face - filled), sigma)  # (B, 3, S, S): the draft's structure
        if config.detail < 1:
            correction = correction - (1.0 - config.detail) * (filled - gaussian_blur(filled, sigma))  # the fill's detail
        return filled + weight * correction
