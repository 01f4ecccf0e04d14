"""Small fitted face drafts for the face stages' tests."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint.face.draft import GappyPCADraft, GappyPCADraftConfig
from hf_faceinpaint.face.prior import GappyPCA, fit_pca


def random_pca(size: int = 16, components: int = 12, ridge: float = 0.5, seed: int = 0) -> GappyPCA:
    """A PCA fitted by `fit_pca` on random low-rank "faces" (orthonormal basis, decreasing variances)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = 3 * size * size
    directions = torch.linalg.qr(torch.randn(pixels, components, generator=generator))[0]  # (N, K)
    scales = torch.linspace(0.3, 0.05, components)
    faces = (torch.randn(200, components, generator=generator) * scales) @ directions.T  # (M, N)
    pca = GappyPCA(size, components, ridge)
    pca.load_fit(*fit_pca(faces.view(-1, 3, size, size).clamp(-1, 1), components, mirror=False))
    return pca


def random_draft(refiner_width: int = 0, refiner_fine: bool = False, ridge: float = 0.5, seed: int = 0,
                 **config) -> GappyPCADraft:
    """A `GappyPCADraft` on a 16² grid with 12 components, its PCA that of `random_pca`."""
    torch.manual_seed(seed)
    draft = GappyPCADraft(GappyPCADraftConfig(size=16, components=12, ridge=ridge, refiner_width=refiner_width,
                                              refiner_fine=refiner_fine, **config)).eval()
    pca = random_pca(ridge=ridge, seed=seed)
    draft.pca.load_fit(pca.mean, pca.basis, pca.variance)
    return draft


def box_masks(batch: int, side: int) -> torch.Tensor:
    """(B, 1, S, S): an "eyes" box in the first frame, the left half in the second."""
    mask = torch.zeros(batch, 1, side, side)
    mask[0, :, side // 4 : side // 2, side // 5 : 4 * side // 5] = 1
    if batch > 1:
        mask[1, :, :, : side // 2] = 1
    return mask


@pytest.fixture
def make_pca():
    """`random_pca`."""
    return random_pca


@pytest.fixture
def make_draft():
    """`random_draft`."""
    return random_draft


@pytest.fixture
def masks():
    """`box_masks`."""
    return box_masks
