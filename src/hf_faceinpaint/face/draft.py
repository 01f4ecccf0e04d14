"""The gappy-PCA face draft: the PCA fitted to a frame's known pixels (eq. 1 of `face/prior.py`), sharpened by its
refiner, trusted as far as the PCA fits those pixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Draft, FaceDraft
from .filters import known_cells
from .prior import GappyPCA, PriorRefiner


@dataclass
class GappyPCADraftConfig:
    """Settings of `GappyPCADraft` (the defaults are msl-face's).

    Args:
        size: Side S of the PCA's grid.
        components: Principal components K.
        ridge: Ridge weight λ of eq. 1.
        refiner_width: First-level channels of the `PriorRefiner`; 0 = none (the draft is the PCA's face).
        refiner_fine: The refiner draws the face on a grid twice the PCA's side, from the known pixels there too.
        residual_full: The draft is trusted fully on frames whose known pixels the PCA fits with an RMS residual
            at most this (in [-1, 1] image units) ...
        residual_none: ... and not at all from this residual on (a frame that is not an aligned face); the trust
            falls linearly in between.
    """

    size: int = 64
    components: int = 200
    ridge: float = 5.0
    refiner_width: int = 32
    refiner_fine: bool = True
    residual_full: float = 0.25
    residual_none: float = 0.3

    def __post_init__(self) -> None:
        if self.size < 8 or self.components < 1:
            raise ValueError(f"need size >= 8 and components >= 1, got {self.size}, {self.components}")
        if self.refiner_fine and not self.refiner_width:
            raise ValueError("refiner_fine needs a refiner (refiner_width > 0)")
        if self.refiner_width and self.size % 8:
            raise ValueError(f"a refiner halves the grid three times: size must be a multiple of 8, got {self.size}")
        if not 0 <= self.residual_full < self.residual_none:
            raise ValueError(f"need 0 <= residual_full < residual_none, got {self.residual_full}, {self.residual_none}")


class GappyPCADraft(FaceDraft, config_class=GappyPCADraftConfig):
    """The PCA's face fitted to the known pixels, refined; its trust falls with the fit's residual."""

    def __init__(self, config: GappyPCADraftConfig | dict | None = None) -> None:
        super().__init__(config)
        config = self.config
        self.pca = GappyPCA(config.size, config.components, config.ridge)
        self.refiner = PriorRefiner(config.refiner_width, fine=config.refiner_fine) if config.refiner_width else None

    def trust(self, residual: torch.Tensor) -> torch.Tensor:
        """(B,) trust in [0, 1] from the PCA fit's residual (B,)."""
        span = self.config.residual_none - self.config.residual_full
        return ((self.config.residual_none - residual) / span).clamp(0.0, 1.0)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Draft:
        """The draft over frames (B, 3, S, S) with holes (B, 1, S, S); the refiner runs only where some frame is
        trusted (a frame that is not a face gets no stage's change, so its face need not be sharp)."""
        guess, cells, share, residual = self.pca(image, mask)  # (B, 3, S, S) ×2, (B, 1, S, S), (B,)
        trust = self.trust(residual)
        if self.refiner is not None and bool(trust.any()):
            dtype = self.refiner.head.weight.dtype  # its own (a bf16 model's refiner is bf16)
            fine = ((None, None) if self.refiner.fine is None else
                    (t.to(dtype) for t in known_cells(image.float(), 1.0 - mask.float(), 2 * self.pca.size)))
            guess = self.refiner(cells.to(dtype), share.to(dtype), guess.to(dtype), *fine).float()  # S or 2S
        face = F.interpolate(guess, size=image.shape[-2:], mode="bicubic", align_corners=False)
        return Draft(face.clamp(-1.0, 1.0), trust)


#: Draft architectures `train.py --model` takes (their refiner is what trains): msl-face's draft, and the same
#: refiner without its fine level (msl-face v3's, which the fine level was warm-started from).
DRAFT_PRESETS: dict[str, GappyPCADraftConfig] = {
    "pca-refiner-128": GappyPCADraftConfig(),
    "pca-refiner-64": GappyPCADraftConfig(refiner_fine=False),
}
