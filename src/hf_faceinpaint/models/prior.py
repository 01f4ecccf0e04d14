"""A linear face prior: PCA of aligned faces, fitted per image to the known pixels alone (gappy PCA).

Everson & Sirovich (1995), "Karhunen-Loève procedure for gappy data": with a mean face μ and orthonormal principal
components B (K × N, N = 3·S² pixels of an S×S face), the coefficients c of a face are found from its known pixels
only, by ridge-regularised weighted least squares,
    c = argmin_c  Σ_p w_p (x_p − μ_p − (Bᵀc)_p)²  +  λ Σ_k c_k² / v_k ,                  (1)
where w_p ∈ [0, 1] is the share of known pixels in cell p of the S×S grid and v_k the variance of component k over
the training faces (a Gaussian prior on c). The normal equations are (B W Bᵀ + λ V⁻¹) c = B W (x − μ); the fitted
face μ + Bᵀc, upsampled to the frame, is a blurry but face-shaped guess for the hole: eyes, nose and mouth where a
face has them. It is the second paper's idea (reconstruct a face model's latent from the known pixels for
structure, then refine texture) with a prior that a CPU can fit in a minute (`scripts/fit_face_prior.py`).

The basis lives in buffers, so `save_pretrained` writes it into `model.safetensors` with the network it guides.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .hub import CheckpointError, read_state_dict, save_safetensors_atomic


class FacePrior(nn.Module):
    """Gappy-PCA face prior on an S×S grid.

    Args:
        size: Side S of the grid the PCA was fitted on (frames are area-resampled to it).
        components: Number K of principal components kept.
        ridge: The ridge weight λ of eq. 1 (in units of the per-pixel squared error, images in [-1, 1]).
    """

    def __init__(self, size: int = 64, components: int = 200, ridge: float = 5.0) -> None:
        super().__init__()
        self.size, self.components, self.ridge = size, components, ridge
        pixels = 3 * size * size
        self.register_buffer("mean", torch.zeros(pixels))  # (N,) the mean face μ
        self.register_buffer("basis", torch.zeros(components, pixels))  # (K, N) orthonormal rows B
        self.register_buffer("variance", torch.ones(components))  # (K,) v_k

    @torch.no_grad()
    def load_fit(self, mean: torch.Tensor, basis: torch.Tensor, variance: torch.Tensor) -> None:
        """Set the PCA from `fit_pca` (keeps the first K components)."""
        self.mean.copy_(mean)
        self.basis.copy_(basis[: self.components])
        self.variance.copy_(variance[: self.components])

    def coefficients(self, image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Downsample to the grid and solve eq. 1.

        Args:
            image: (B, 3, H, W) in [-1, 1].
            known: (B, 1, H, W), 1 = known pixel.

        Returns:
            (c, weights): coefficients (B, K) and the known share of each grid cell (B, 1, S, S).
        """
        grid = (self.size, self.size)
        # area resampling of the known pixels only: the mean of the known pixels in each cell, and their share
        weights = F.adaptive_avg_pool2d(known, grid)  # (B, 1, S, S)
        cells = F.adaptive_avg_pool2d(image * known, grid) / weights.clamp_min(1e-6)  # (B, 3, S, S)
        residual = (cells.flatten(1) - self.mean) * weights.repeat(1, 3, 1, 1).flatten(1)  # (B, N): W (x − μ)
        weighted = self.basis * weights.repeat(1, 3, 1, 1).flatten(1)[:, None, :]  # (B, K, N): B W
        normal = weighted @ self.basis.T + torch.diag(self.ridge / self.variance)  # (B, K, K)
        rhs = residual @ self.basis.T  # (B, K)
        return torch.linalg.solve(normal, rhs), weights

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prior's face for the frame: (B, 3, H, W) in [-1, 1], fitted to the pixels where `mask` is 0.

        Computed in float32 whatever the input dtype (the normal equations need it).
        """
        with torch.autocast(image.device.type, enabled=False):  # no bf16/fp16 autocast for the normal equations
            coefficients, _ = self.coefficients(image.float(), 1.0 - mask.float())
            face = (self.mean + coefficients @ self.basis).view(-1, 3, self.size, self.size)  # (B, 3, S, S)
            face = F.interpolate(face, size=image.shape[-2:], mode="bicubic", align_corners=False)
        return face.clamp(-1.0, 1.0).to(image.dtype)


@torch.no_grad()
def fit_pca(faces: torch.Tensor, components: int, mirror: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Principal components of aligned faces (randomised SVD, Halko et al. 2011).

    Args:
        faces: (M, 3, S, S) in [-1, 1].
        components: K, the number of components to return.
        mirror: Add every face's horizontal mirror image (the prior then serves flipped faces too).
        seed: Seed of the randomised SVD.

    Returns:
        (mean (N,), basis (K, N) with orthonormal rows, variance (K,)): N = 3·S².
    """
    if mirror:
        faces = torch.cat([faces, faces.flip(-1)])
    data = faces.flatten(1).float()  # (M, N)
    mean = data.mean(dim=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, singular, vectors = torch.svd_lowrank(data - mean, q=components + 20, niter=4)
    variance = singular[:components] ** 2 / (data.shape[0] - 1)
    return mean, vectors[:, :components].T.contiguous(), variance


PRIOR_KEYS = ("mean", "basis", "variance")


def save_fit(path: str | os.PathLike, mean: torch.Tensor, basis: torch.Tensor, variance: torch.Tensor, **metadata: str) -> None:
    """Write a fitted PCA (`fit_pca`) as a safetensors file, through a temporary file renamed into place."""
    save_safetensors_atomic({"mean": mean, "basis": basis, "variance": variance}, Path(path), metadata=metadata)


def load_fit_file(prior: FacePrior, path: str | os.PathLike) -> None:
    """Load a file written by `save_fit` into `prior`, checking that its grid and component count fit.

    Raises:
        CheckpointError: Unreadable, missing tensors, or a PCA of another grid or with fewer components.
    """
    state = read_state_dict(path, "face prior")
    missing = [key for key in PRIOR_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"face prior file {path} lacks {', '.join(missing)}")
    mean, basis, variance = (state[key].float() for key in PRIOR_KEYS)
    if mean.shape != prior.mean.shape or basis.shape[1:] != prior.basis.shape[1:]:
        raise CheckpointError(
            f"face prior file {path} holds a PCA of {mean.numel()} values, the model needs a {prior.size}² RGB grid "
            f"({prior.mean.numel()} values)"
        )
    if basis.shape[0] < prior.components or variance.shape[0] < prior.components:
        raise CheckpointError(f"face prior file {path} has {basis.shape[0]} components, the model needs {prior.components}")
    prior.load_fit(mean, basis, variance)
