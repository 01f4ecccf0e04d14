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

The fitted face is a posterior mean, so it is blurry: eyes and mouths come back as faint ghosts. An optional
`PriorRefiner` (a small U-Net on the same grid, trained adversarially by `scripts/train_prior_refiner.py`) turns the
known cells and the PCA's guess into a sharper face on the grid, or with its fine level (`fine`) on a grid twice the
side that also reads the known pixels there; it then replaces the PCA's face everywhere the prior is used.

The basis (and the refiner) live in the module, so `save_pretrained` writes them into `model.safetensors` with the
network they guide. The basis is stored as int8 codes with one scale per component (`basis_codes`, `basis_scale`:
a quarter of its float32 size, half of its float16 size); the fit uses the float32 basis decoded from them on load.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .hub import CheckpointError, check_tensor_values, read_state_dict, save_safetensors_atomic


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


class _DetailBlock(nn.Module):
    """x + two 3×3 convs, at the refiner's fine level; the last conv starts at zero, so a block added to a trained
    refiner leaves its face as it was until training changes it."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels), nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PriorRefiner(nn.Module):
    """A U-Net on the prior's grid that turns the gappy-PCA guess into a sharp face: the known cells where they are
    known, drawn eyes, nose and mouth where the guess has only their blurred outline.

    Input: the known cells (zero where nothing is known), their known share, and the PCA's face (3 + 1 + 3
    channels); output: the face, as a correction of the PCA's face. With `fine`, one more level at twice the grid's
    side sees the known cells there too (3 + 1 channels) and adds the detail the grid cannot hold to the face
    upsampled to it. Trained with L1 and a patch discriminator (`scripts/train_prior_refiner.py`).

    Args:
        width: Channels of the first level; each of the three halvings doubles them.
        blocks: Residual blocks at the coarsest level (grid / 8).
        fine: Add the level at twice the grid's side (the output is then (B, 3, 2S, 2S)).
        fine_blocks: Residual blocks at the fine level (dilations 1, 2, 1, ...), between its two convs and its
            head: room to draw the detail the grid cannot hold (lip edges, teeth); 0 = none.
    """

    def __init__(self, width: int = 32, blocks: int = 4, fine: bool = False, fine_blocks: int = 0) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = _conv(7, widths[0])
        self.down = nn.ModuleList(_conv(a, b, stride=2) for a, b in zip(widths, widths[1:]))
        self.middle = nn.Sequential(*(_ResidualBlock(widths[-1], 2 if i % 2 else 1) for i in range(blocks)))
        self.up = nn.ModuleList(_conv(b + a, a) for a, b in zip(widths, widths[1:]))
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)
        if fine:
            self.fine = nn.Sequential(_conv(widths[0] + 4, widths[0]), _conv(widths[0], widths[0]),
                                      *(_DetailBlock(widths[0], 2 if i % 2 else 1) for i in range(fine_blocks)))
            self.fine_head = nn.Conv2d(widths[0], 3, 3, padding=1)
            # starts as the grid's face upsampled: training adds detail to a working refiner
            nn.init.zeros_(self.fine_head.weight)
            nn.init.zeros_(self.fine_head.bias)
        else:
            if fine_blocks:
                raise ValueError("fine_blocks needs the fine level (fine=True)")
            self.fine = self.fine_head = None

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


class FacePrior(nn.Module):
    """Gappy-PCA face prior on an S×S grid, optionally sharpened by a `PriorRefiner`.

    Args:
        size: Side S of the grid the PCA was fitted on (frames are area-resampled to it).
        components: Number K of principal components kept.
        ridge: The ridge weight λ of eq. 1 (in units of the per-pixel squared error, images in [-1, 1]).
        refiner_width: First-level channels of the `PriorRefiner` applied to the fit; 0 = none (the PCA's face).
        refiner_fine: The refiner has its level at twice the grid's side (`PriorRefiner.fine`): the face is drawn
            on a 2S×2S grid.
        refiner_fine_blocks: Residual blocks at the refiner's fine level (`PriorRefiner`'s `fine_blocks`).
    """

    def __init__(self, size: int = 64, components: int = 200, ridge: float = 5.0, refiner_width: int = 0,
                 refiner_fine: bool = False, refiner_fine_blocks: int = 0) -> None:
        super().__init__()
        if refiner_fine and not refiner_width:
            raise ValueError("refiner_fine needs a refiner (refiner_width > 0)")
        self.size, self.components, self.ridge = size, components, ridge
        self.refiner = (PriorRefiner(refiner_width, fine=refiner_fine, fine_blocks=refiner_fine_blocks)
                        if refiner_width else None)
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
        """Decode B from its codes and compute B Bᵀ (done by `load_fit` and `load_state_dict`; call it after
        changing the codes in place any other way)."""
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

    @staticmethod
    def upgrade_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        """`state_dict` with a float basis (checkpoints written before the basis was stored as int8: msl-face v1-v7
        and their training runs) encoded as `basis_codes` and `basis_scale`, so that they still load strictly."""
        if prefix + "basis" not in state_dict or prefix + "basis_codes" in state_dict:
            return state_dict
        state_dict = dict(state_dict)
        codes, scale = quantize_basis(state_dict.pop(prefix + "basis").float())
        state_dict[prefix + "basis_codes"], state_dict[prefix + "basis_scale"] = codes, scale
        return state_dict

    def coefficients(self, image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Downsample to the grid and solve eq. 1.

        Args:
            image: (B, 3, H, W) in [-1, 1].
            known: (B, 1, H, W), 1 = known pixel.

        Returns:
            (c, weights): coefficients (B, K) and the known share of each grid cell (B, 1, S, S).
        """
        basis, variance, mean = self.basis.float(), self.variance.float(), self.mean.float()  # a bf16 model's too
        cells, weights = known_cells(image, known, self.size)  # (B, 3, S, S), (B, 1, S, S)
        share = weights.repeat(1, 3, 1, 1).flatten(1)  # (B, N): the diagonal of W
        rhs = ((cells.flatten(1) - mean) * share) @ basis.T  # (B, K): B W (x − μ)
        # B W Bᵀ = B Bᵀ − B (I − W) Bᵀ: only the cells that miss pixels (the hole's) cost anything per image
        if share.is_meta:  # sizing the model on the meta device: no data to select the cells by
            holes, missing = basis, 1.0 - share
        else:
            gappy = (share < 1).any(dim=0)  # (N,)
            holes, missing = basis[:, gappy], 1.0 - share[:, gappy]  # (K, n), (B, n)
        normal = self.gram.float() - (holes * missing[:, None, :]) @ holes.T  # (B, K, K)
        normal = normal + torch.diag(self.ridge / variance)
        # The normal matrix is symmetric positive definite (the ridge term makes it so): solve by Cholesky. A
        # batched LU solve (torch.linalg.solve) fails inside oneMKL on the CPU after torch.set_num_threads(2).
        factor, _ = torch.linalg.cholesky_ex(normal)  # (B, K, K) lower triangular
        return torch.cholesky_solve(rhs[..., None], factor)[..., 0], weights

    def fit_grid(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
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
        image = image.float()
        coefficients, share = self.coefficients(image, 1.0 - mask.float())
        guess = self.mean.float() + coefficients @ self.basis.float()  # (B, N)
        guess = guess.view(-1, 3, self.size, self.size)  # (B, 3, S, S)
        cells = known_cells(image, 1.0 - mask.float(), self.size)[0]
        squared = ((guess - cells) ** 2 * share).sum(dim=(1, 2, 3)) / (3 * share.sum(dim=(1, 2, 3)))
        return guess, cells, share, squared.clamp_min(0.0).sqrt()

    def fit(self, image: torch.Tensor, mask: torch.Tensor,
            refine_below: float = math.inf) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's face for the frame, fitted to the pixels where `mask` is 0 (and sharpened by the refiner when
        there is one), and how well the PCA fits them.

        Computed in float32 whatever the input dtype (the normal equations need it).

        Args:
            image: (B, 3, H, W) in [-1, 1].
            mask: (B, 1, H, W), 1 = hole.
            refine_below: Run the refiner only when some frame's residual is below this (a caller that trusts no
                frame from there on need not pay for it): otherwise the face is the PCA's.

        Returns:
            (face, residual): the face (B, 3, H, W) in [-1, 1] and the PCA fit's residual (B,) (see `fit_grid`).
        """
        # no bf16/fp16 autocast for the normal equations (the meta device, which sizes models, has no autocast)
        with contextlib.nullcontext() if image.is_meta else torch.autocast(image.device.type, enabled=False):
            guess, cells, share, residual = self.fit_grid(image, mask)
            if self.refiner is not None and (residual.is_meta or bool((residual < refine_below).any())):
                dtype = self.refiner.head.weight.dtype  # its own (a bf16 model's refiner is bf16)
                fine = ((None, None) if self.refiner.fine is None else
                        (t.to(dtype) for t in known_cells(image.float(), 1.0 - mask.float(), 2 * self.size)))
                guess = self.refiner(cells.to(dtype), share.to(dtype), guess.to(dtype), *fine).float()  # S or 2S
            face = F.interpolate(guess, size=image.shape[-2:], mode="bicubic", align_corners=False)
        return face.clamp(-1.0, 1.0), residual

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prior's face for the frame: (B, 3, H, W) in [-1, 1], fitted to the pixels where `mask` is 0."""
        return self.fit(image, mask)[0].to(image.dtype)


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


def known_cells(image: torch.Tensor, known: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Area resampling of the known pixels alone to a side×side grid: the mean known pixel of each cell (0 where
    none is known) and the known share of each cell.

    Args:
        image: (B, 3, H, W).
        known: (B, 1, H, W), 1 = known pixel.
        side: The grid's side.

    Returns:
        (cells (B, 3, side, side), share (B, 1, side, side)).
    """
    share = F.adaptive_avg_pool2d(known, side)
    return F.adaptive_avg_pool2d(image * known, side) / share.clamp_min(1e-6), share


def erode(hole: torch.Tensor) -> torch.Tensor:
    """A (B, 1, H, W) hole eroded by one pixel (its 3×3 minimum; pixels beyond the frame count as hole), as minima of
    shifted slices: about 8 times faster on a CPU than `max_pool2d` of the negated hole."""
    padded = F.pad(hole, (1, 1, 1, 1), value=1.0)  # (B, 1, H + 2, W + 2)
    rows = torch.minimum(torch.minimum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])  # (B, 1, H + 2, W)
    return torch.minimum(torch.minimum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])  # (B, 1, H, W)


def hole_depth(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Chessboard distance of every hole pixel to the nearest known pixel (1 next to one), counted up to `steps`
    (pixels beyond the frame count as hole); 0 at known pixels.

    Args:
        mask: (B, 1, H, W), 1 = hole.
        steps: Largest distance counted (the result is at most steps + 1).

    Returns:
        (B, 1, H, W), same dtype.
    """
    hole, depth = mask, mask.clone()
    for _ in range(steps):
        hole = erode(hole)
        if not hole.is_meta and not hole.any():  # thin holes (strokes) are eroded away after a few steps
            break
        depth = depth + hole
    return depth


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass with standard deviation `sigma` pixels (radius 3σ, reflected at the borders).

    Args:
        x: (B, C, H, W).
        sigma: Standard deviation in pixels; 0 returns `x`.
    """
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return x
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1)  # (C, 1, 2r+1)
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel[:, :, None, :], groups=channels)  # along the width
    return F.conv2d(x, kernel[:, :, :, None], groups=channels)  # along the height


def transfer_structure(filled: torch.Tensor, face: torch.Tensor, mask: torch.Tensor, sigma: float, ramp: float,
                       trust: torch.Tensor, detail: float = 1.0) -> torch.Tensor:
    """Give a fill the prior face's structure deep inside the hole (eq. 2):

        out = x + t · min(d / ramp, 1) · [G_σ ∗ (m ⊙ (face − x)) − (1 − κ) · (x − G_σ ∗ x)],      (2)

    where x is the composited fill (the network inside the hole, the photo outside), G_σ a Gaussian low-pass, d the
    distance into the hole (`hole_depth`), m the hole, t ∈ [0, 1] the trust in the prior's fit and κ the share of the
    fill's own detail (its high frequencies) kept. Near the hole's edge (and in thin strokes) the network's fill,
    which propagates the surrounding colours well, is kept; far inside a large hole, where a network trained on a
    CPU budget only smears colour in blocks, the low frequencies of the prior's fitted face put eyes, nose and mouth
    where a face has them, and the blocks are damped.

    Args:
        filled: (B, 3, H, W) the composited fill x.
        face: (B, 3, H, W) the prior's fitted face.
        mask: (B, 1, H, W), 1 = hole.
        sigma: σ of G in pixels.
        ramp: Distance into the hole, in pixels, at which the prior's structure is taken whole.
        trust: (B,) t per image.
        detail: κ, the share of the fill's high frequencies kept deep inside the hole.

    Returns:
        (B, 3, H, W).
    """
    weight = (hole_depth(mask, math.ceil(ramp)) / ramp).clamp(max=1.0) * trust.view(-1, 1, 1, 1)  # (B, 1, H, W)
    correction = gaussian_blur(mask * (face.to(filled.dtype) - filled), sigma)  # (B, 3, H, W): the prior's structure
    if detail < 1:
        correction = correction - (1.0 - detail) * (filled - gaussian_blur(filled, sigma))  # the fill's detail
    return filled + weight * correction


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


def refiner_width(path: str | os.PathLike) -> int:
    """First-level channels of the `PriorRefiner` in a prior file (`scripts/train_prior_refiner.py --export`); 0 when
    the file holds a PCA only."""
    state = read_state_dict(path, "face prior")
    head = state.get("refiner.head.weight")
    return 0 if head is None else int(head.shape[1])


def refiner_fine(path: str | os.PathLike) -> bool:
    """Whether the `PriorRefiner` in a prior file has its level at twice the grid's side (`PriorRefiner.fine`)."""
    return "refiner.fine_head.weight" in read_state_dict(path, "face prior")


def refiner_fine_blocks(path: str | os.PathLike) -> int:
    """How many residual blocks the `PriorRefiner` in a prior file has at its fine level (`fine_blocks`)."""
    prefix = "refiner.fine."
    levels = {key[len(prefix):].split(".")[0] for key in read_state_dict(path, "face prior") if key.startswith(prefix)}
    return max(0, len(levels) - 2)  # the level's two convs come first


def load_fit_file(prior: FacePrior, path: str | os.PathLike) -> None:
    """Load a file written by `save_fit` (or by `scripts/train_prior_refiner.py --export`, with a refiner, the basis
    then as int8 codes) into `prior`, checking that its grid and component count fit and, strictly, that it holds
    the refiner `prior` has.

    Raises:
        CheckpointError: Unreadable, missing or unexpected tensors, or a PCA of another grid or with fewer
            components.
    """
    state = read_state_dict(path, "face prior")
    if "basis" not in state and {"basis_codes", "basis_scale"} <= set(state):  # a FacePrior's own state dict
        state = dict(state)
        state["basis"] = state.pop("basis_codes").float() * state.pop("basis_scale").float()[:, None]
    missing = [key for key in PRIOR_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"face prior file {path} lacks {', '.join(missing)}")
    check_tensor_values({key: getattr(prior, key) for key in PRIOR_KEYS}, state, str(path))
    mean, basis, variance = (state[key].float() for key in PRIOR_KEYS)
    if mean.shape != prior.mean.shape or basis.shape[1:] != prior.basis.shape[1:]:
        raise CheckpointError(
            f"face prior file {path} holds a PCA of {mean.numel()} values, the model needs a {prior.size}² RGB grid "
            f"({prior.mean.numel()} values)"
        )
    if basis.shape[0] < prior.components or variance.shape[0] < prior.components:
        raise CheckpointError(f"face prior file {path} has {basis.shape[0]} components, the model needs {prior.components}")
    refiner = {key.removeprefix("refiner."): value for key, value in state.items() if key.startswith("refiner.")}
    if prior.refiner is None and refiner:
        raise CheckpointError(f"face prior file {path} holds a refiner the model has none of")
    if prior.refiner is not None:
        _load_refiner(prior.refiner, refiner, path)
    prior.load_fit(mean, basis, variance)


def load_refiner_file(prior: FacePrior, path: str | os.PathLike) -> None:
    """Replace the weights of `prior`'s refiner, strictly, by those of a refiner-only file
    (`scripts/train_prior_refiner.py --export-refiner`: keys "refiner.*", any floating dtype); the PCA stays.

    Raises:
        CheckpointError: Unreadable file, `prior` without a refiner, other tensors in the file, or missing,
            unexpected or misshapen refiner tensors.
    """
    state = read_state_dict(path, "refiner")
    if prior.refiner is None:
        raise CheckpointError(f"refiner file {path}: the model's face prior has no refiner")
    other = sorted(key for key in state if not key.startswith("refiner."))
    if other:
        raise CheckpointError(f"refiner file {path} holds more than a refiner: {', '.join(other[:5])}")
    _load_refiner(prior.refiner, {key.removeprefix("refiner."): value for key, value in state.items()}, path)


def _load_refiner(refiner: PriorRefiner, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Load `state` into `refiner` strictly, naming missing, unexpected or misshapen keys."""
    expected = refiner.state_dict()
    wrong = sorted(set(expected) ^ set(state))
    if wrong:
        raise CheckpointError(f"face prior file {path}: refiner keys missing or unexpected: {', '.join(wrong[:5])}")
    bad = [key for key in expected if expected[key].shape != state[key].shape]
    if bad:
        raise CheckpointError(f"face prior file {path}: refiner tensors of the wrong shape: {', '.join(bad[:5])}")
    check_tensor_values(expected, state, str(path))
    refiner.load_state_dict(state)
