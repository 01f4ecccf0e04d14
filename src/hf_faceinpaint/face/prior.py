"""The networks of the face draft: a linear face prior (PCA of aligned faces) fitted per frame to the known pixels
alone (gappy PCA), and the U-Net that sharpens its fit (`PriorRefiner`).

Everson & Sirovich (1995), "Karhunen-Loève procedure for gappy data": with a mean face μ and orthonormal principal
components B (K × N, N = 3·S² pixels of an S×S face), the coefficients c of a face are found from its known pixels
only, by ridge-regularised weighted least squares,
    c = argmin_c  Σ_p w_p (x_p − μ_p − (Bᵀc)_p)²  +  λ Σ_k c_k² / v_k ,                  (1)
where w_p ∈ [0, 1] is the share of known pixels in cell p of the S×S grid and v_k the variance of component k over
the training faces (a Gaussian prior on c). The normal equations are (B W Bᵀ + λ V⁻¹) c = B W (x − μ); the fitted
face μ + Bᵀc is a blurry but face-shaped guess for the hole: eyes, nose and mouth where a face has them. It is the
second paper's idea (reconstruct a face model's latent from the known pixels for structure, then refine texture)
with a prior that a CPU can fit in a minute (`scripts/fit_face_prior.py`).

The fitted face is a posterior mean, so it is blurry. The `PriorRefiner` (a small U-Net on the same grid, trained
adversarially by `train.py --model pca-refiner-128`) turns the known cells and the PCA's guess into a sharper face on
the grid, or with its fine level on a grid twice the side that also reads the known pixels there.

The basis is stored as int8 codes with one scale per component (`basis_codes`, `basis_scale`: a quarter of its
float32 size); the fit uses the float32 basis decoded from them on load.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import check_tensor_values
from ..io import CheckpointError, read_state_dict, save_safetensors_atomic
from .filters import known_cells


class GappyPCA(nn.Module):
    """The PCA of aligned faces on an S×S grid and its fit to a frame's known pixels (eq. 1).

    Args:
        size: Side S of the grid the PCA was fitted on (frames are area-resampled to it).
        components: Number K of principal components kept.
        ridge: The ridge weight λ of eq. 1 (in units of the per-pixel squared error, images in [-1, 1]).
    """

    def __init__(self, size: int, components: int, ridge: float) -> None:
        super().__init__()
        self.size, self.components, self.ridge = size, components, ridge
        pixels = 3 * size * size
        self.register_buffer("mean", torch.zeros(pixels))  # (N,) the mean face μ
        # (K, N) orthonormal rows B, saved as int8 codes times a scale per row (`quantize_basis`)
        self.register_buffer("basis_codes", torch.zeros(components, pixels, dtype=torch.int8))
        self.register_buffer("basis_scale", torch.zeros(components))  # (K,)
        self.register_buffer("variance", torch.ones(components))  # (K,) v_k
        # the decoded basis B (K, N) and B Bᵀ (K, K): not saved, computed again whenever a basis is loaded
        self.register_buffer("basis", torch.zeros(components, pixels), persistent=False)
        self.register_buffer("gram", torch.zeros(components, components), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, incompatible: module.refresh_gram())

    @torch.no_grad()
    def refresh_gram(self) -> None:
        """Decode B from its codes and compute B Bᵀ (done by `load_fit` and `load_state_dict`)."""
        self.basis.copy_(self.basis_codes.float() * self.basis_scale.float()[:, None])
        self.gram.copy_(self.basis.float() @ self.basis.float().T)

    @torch.no_grad()
    def load_fit(self, mean: torch.Tensor, basis: torch.Tensor, variance: torch.Tensor) -> None:
        """Set the PCA from `fit_pca` (keeps the first K components; the basis is quantized, `quantize_basis`)."""
        self.mean.copy_(mean)
        codes, scale = quantize_basis(basis[: self.components].float())
        self.basis_codes.copy_(codes)
        self.basis_scale.copy_(scale)
        self.variance.copy_(variance[: self.components])
        self.refresh_gram()

    def coefficients(self, image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Downsample to the grid and solve eq. 1.

        Args:
            image: (B, 3, H, W) in [-1, 1], float32.
            known: (B, 1, H, W), 1 = known pixel.

        Returns:
            (c, cells, weights): coefficients (B, K), the mean known pixel of each grid cell (B, 3, S, S) and its
            known share (B, 1, S, S).
        """
        basis, variance, mean = self.basis.float(), self.variance.float(), self.mean.float()
        cells, weights = known_cells(image, known, self.size)  # (B, 3, S, S), (B, 1, S, S)
        share = weights.repeat(1, 3, 1, 1).flatten(1)  # (B, N): the diagonal of W
        rhs = ((cells.flatten(1) - mean) * share) @ basis.T  # (B, K): B W (x − μ)
        # B W Bᵀ = B Bᵀ − B (I − W) Bᵀ: only the cells that miss pixels (the hole's) cost anything per image
        gappy = (share < 1).any(dim=0)  # (N,)
        holes, missing = basis[:, gappy], 1.0 - share[:, gappy]  # (K, n), (B, n)
        normal = self.gram.float() - (holes * missing[:, None, :]) @ holes.T  # (B, K, K)
        normal = normal + torch.diag(self.ridge / variance)
        # The normal matrix is symmetric positive definite (the ridge term makes it so): solve by Cholesky. A
        # batched LU solve (torch.linalg.solve) fails inside oneMKL on the CPU after torch.set_num_threads(2).
        factor, _ = torch.linalg.cholesky_ex(normal)  # (B, K, K) lower triangular
        return torch.cholesky_solve(rhs[..., None], factor)[..., 0], cells, weights

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Eq. 1 on the grid, in float32: the PCA's face, the known cells, their known share and the fit's residual.

        Args:
            image: (B, 3, H, W) in [-1, 1].
            mask: (B, 1, H, W), 1 = hole.

        Returns:
            (guess, cells, share, residual): the PCA's face (B, 3, S, S); the mean known pixel of each cell (B, 3, S,
            S; 0 where none is known); the known share of each cell (B, 1, S, S); and the root-mean-square error (B,)
            of the guess on the known cells (weighted by their share), in units of [-1, 1] images: about 0.12-0.25
            for an aligned face (celebahq_eval256, faces128), 0.3 and more when the frame is not one.
        """
        image, known = image.float(), 1.0 - mask.float()
        coefficients, cells, share = self.coefficients(image, known)
        guess = (self.mean.float() + coefficients @ self.basis.float()).view(-1, 3, self.size, self.size)
        squared = ((guess - cells) ** 2 * share).sum(dim=(1, 2, 3)) / (3 * share.sum(dim=(1, 2, 3)))
        return guess, cells, share, squared.clamp_min(0.0).sqrt()

    @staticmethod
    def upgrade_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        """`state_dict` with a float basis (checkpoints written before the basis was stored as int8: msl-face v1-v7)
        encoded as `basis_codes` and `basis_scale`, so that they still load strictly."""
        if prefix + "basis" not in state_dict or prefix + "basis_codes" in state_dict:
            return state_dict
        state_dict = dict(state_dict)
        codes, scale = quantize_basis(state_dict.pop(prefix + "basis").float())
        state_dict[prefix + "basis_codes"], state_dict[prefix + "basis_scale"] = codes, scale
        return state_dict


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv (4×4 when it halves the resolution), BatchNorm, LeakyReLU."""
    kernel = 4 if stride == 2 else 3
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2))


class _ResidualBlock(nn.Module):
    """Two 3×3 convs with a skip, at the U-Net's coarsest level (dilated, to see the whole face there)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


class PriorRefiner(nn.Module):
    """A U-Net on the prior's grid that turns the gappy-PCA guess into a sharp face: the known cells where they are
    known, drawn eyes, nose and mouth where the guess has only their blurred outline.

    Input: the known cells (zero where nothing is known), their known share, and the PCA's face (3 + 1 + 3
    channels); output: the face, as a correction of the PCA's face. With `fine`, one more level at twice the grid's
    side sees the known cells there too (3 + 1 channels) and adds the detail the grid cannot hold to the face
    upsampled to it.

    Args:
        width: Channels of the first level; each of the three halvings doubles them.
        blocks: Residual blocks at the coarsest level (grid / 8).
        fine: Add the level at twice the grid's side (the output is then (B, 3, 2S, 2S)).
    """

    def __init__(self, width: int = 32, blocks: int = 4, fine: bool = False) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = _conv(7, widths[0])
        self.down = nn.ModuleList(_conv(a, b, stride=2) for a, b in zip(widths, widths[1:]))
        self.middle = nn.Sequential(*(_ResidualBlock(widths[-1], 2 if i % 2 else 1) for i in range(blocks)))
        self.up = nn.ModuleList(_conv(b + a, a) for a, b in zip(widths, widths[1:]))
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.fine = self.fine_head = None
        if fine:
            self.fine = nn.Sequential(_conv(widths[0] + 4, widths[0]), _conv(widths[0], widths[0]))
            self.fine_head = nn.Conv2d(widths[0], 3, 3, padding=1)
            # starts as the grid's face upsampled: training adds detail to a working refiner
            nn.init.zeros_(self.fine_head.weight)
            nn.init.zeros_(self.fine_head.bias)

    def forward(self, cells: torch.Tensor, share: torch.Tensor, guess: torch.Tensor,
                fine_cells: torch.Tensor | None = None, fine_share: torch.Tensor | None = None) -> torch.Tensor:
        """cells, guess: (B, 3, S, S) in [-1, 1]; share: (B, 1, S, S) known share of each cell. With `fine`, also
        fine_cells (B, 3, 2S, 2S) and fine_share (B, 1, 2S, 2S) on the twice finer grid. Returns (B, 3, S, S), or
        (B, 3, 2S, 2S) with `fine`."""
        h = self.stem(torch.cat([cells * share, share, guess], dim=1))  # (B, w, S, S)
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)  # halves the side, doubles the channels
        h = self.middle(h)  # (B, 8w, S/8, S/8)
        for up, skip in zip(reversed(self.up), reversed(skips)):
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = up(torch.cat([h, skip], dim=1))
        face = guess + self.head(h)  # (B, 3, S, S)
        if self.fine is None:
            return face
        if fine_cells is None or fine_share is None:
            raise ValueError("a refiner with a fine level needs the known cells of the finer grid")
        side = fine_cells.shape[-2:]
        h = F.interpolate(h, size=side, mode="nearest")  # (B, w, 2S, 2S)
        h = self.fine(torch.cat([h, fine_cells * fine_share, fine_share], dim=1))
        return F.interpolate(face, size=side, mode="bilinear", align_corners=False) + self.fine_head(h)


def quantize_basis(basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and a scale per row: basis ≈ codes · scale[:, None], the largest |value| of each row at ±127.

    Args:
        basis: (K, N) float.

    Returns:
        (codes, scale): (K, N) int8 and (K,) float32.
    """
    scale = basis.abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (K,)
    codes = (basis / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
    return codes, scale.float()


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


PCA_KEYS = ("mean", "basis", "variance")


def save_fit(path: str | os.PathLike, mean: torch.Tensor, basis: torch.Tensor, variance: torch.Tensor,
             **metadata: str) -> None:
    """Write a fitted PCA (`fit_pca`) as a safetensors file, through a temporary file renamed into place."""
    save_safetensors_atomic({"mean": mean, "basis": basis, "variance": variance}, Path(path), metadata=metadata)


def load_fit_file(pca: GappyPCA, path: str | os.PathLike) -> None:
    """Load a file written by `save_fit` into `pca`, checking that its grid and component count fit.

    Raises:
        CheckpointError: Unreadable, missing or unexpected tensors, or a PCA of another grid or with fewer
            components.
    """
    state = read_state_dict(path, "face prior")
    missing = [key for key in PCA_KEYS if key not in state]
    unexpected = sorted(set(state) - set(PCA_KEYS))
    if missing or unexpected:
        raise CheckpointError(f"face prior file {path}: missing {', '.join(missing) or 'nothing'}, unexpected "
                              f"{', '.join(unexpected[:5]) or 'nothing'} (it must hold {', '.join(PCA_KEYS)})")
    check_tensor_values({"mean": pca.mean, "basis": pca.basis, "variance": pca.variance}, state, str(path))
    mean, basis, variance = (state[key].float() for key in PCA_KEYS)
    if mean.shape != pca.mean.shape or basis.shape[1:] != pca.basis.shape[1:]:
        raise CheckpointError(
            f"face prior file {path} holds a PCA of {mean.numel()} values, the draft needs a {pca.size}² RGB grid "
            f"({pca.mean.numel()} values)"
        )
    if basis.shape[0] < pca.components or variance.shape[0] < pca.components:
        raise CheckpointError(f"face prior file {path} has {basis.shape[0]} components, the draft needs {pca.components}")
    pca.load_fit(mean, basis, variance)
