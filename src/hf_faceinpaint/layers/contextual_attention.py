"""Contextual attention over patches (Yu et al., "Generative image inpainting with contextual attention", CVPR 2018).

MSL paper, spatial semantic learning:
    S_ij  = < f_i / ||f_i||, f_j / ||f_j|| >                 (4)  cosine similarity, hole patch i vs known patch j
    S'_ij = softmax_j( lambda * S_ij )                        (5)  lambda = softmax scale, 10 as in DeepFill
    f'_i  = sum_j S'_ij f_j                                   (6)  hole patch rebuilt from known patches
The rebuilt patches overlap; as DeepFill does with its transposed convolution, every pixel takes the mean of the
patches that cover it. Only hole locations are replaced.

The scores and the patch transfer are separate functions, so that scores computed on a deep, low-resolution map can
fill a shallower map at `rate` times its resolution (DeepFill's reduced-resolution matching, and the two-stage
paper's multi-layer attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a binary hole mask (1 = hole) to `size`; a cell is a hole if any pixel in it is. (B, 1, H, W) -> (B, 1, h, w)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_max_pool2d(mask, size)


def attention_scores(
    features: torch.Tensor, hole: torch.Tensor, patch_size: int = 3, softmax_scale: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every location's patch over the known patches (eqs. 4-5).

    Args:
        features: Feature map to match on, (B, C, h, w).
        hole: Binary hole mask at the same resolution, (B, 1, h, w), 1 = hole.
        patch_size: Odd patch size (3 in both papers).
        softmax_scale: The softmax scale lambda.

    Returns:
        `(attn, has_known)`: attention weights (B, L, L) with rows = query locations and columns = key locations
        (L = h·w; columns of non-known patches are exactly 0), and a (B,) bool telling which images have any known patch.
    """
    if patch_size % 2 != 1:
        raise ValueError(f"patch_size must be odd, got {patch_size}")
    patches, known = unit_patches(features, hole, patch_size)
    return softmax_over_known(torch.bmm(patches.transpose(1, 2), patches), known, softmax_scale), known.any(dim=1)


def unit_patches(features: torch.Tensor, hole: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every location's patch, unit-normalised for eq. 4, (B, C·k², L), and which are known keys, (B, L) bool: a
    key is known only if its whole patch window is free of holes (DeepFill's mm mask)."""
    pad = patch_size // 2
    patches = F.unfold(features, patch_size, padding=pad)  # (B, C·k², L)
    patches = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
    known = F.max_pool2d(hole, patch_size, stride=1, padding=pad).flatten(1) < 0.5  # (B, L)
    return patches, known


def softmax_over_known(cosine: torch.Tensor, known: torch.Tensor, softmax_scale: float) -> torch.Tensor:
    """Eq. 5 over the known keys: cosine (B, queries, keys), known (B, keys) -> weights, exactly 0 on unknown keys."""
    # The dtype's lowest value (not -inf) keeps rows without any known key finite; their weights are zeroed below.
    logits = (softmax_scale * cosine).masked_fill(~known[:, None, :], torch.finfo(cosine.dtype).min)
    return torch.softmax(logits, dim=-1) * known[:, None, :].to(logits.dtype)


def transfer(
    attn: torch.Tensor, values: torch.Tensor, score_size: tuple[int, int], rate: int = 1, patch_size: int = 3
) -> torch.Tensor:
    """Rebuild every location from the attention-weighted sum of value patches (eq. 6), averaging overlaps.

    Args:
        attn: Attention weights from `attention_scores`, (B, L, L) for a score map of h×w locations.
        values: Map to rebuild, (B, C, rate·h, rate·w). Its patches are patch_size·rate wide, centred on the
            same locations as the score map's patches.
        score_size: (h, w) of the map the scores were computed on.
        rate: Resolution ratio between `values` and the score map.
        patch_size: Patch size used for the scores.

    Returns:
        The rebuilt map, (B, C, rate·h, rate·w). Callers composite it into the hole themselves.
    """
    height, width = score_size
    size = tuple(values.shape[-2:])
    if size != (rate * height, rate * width) or attn.shape[-1] != height * width:
        raise ValueError(
            f"values of size {size} do not fit scores over {height}x{width} ({attn.shape[-1]} patches) at rate {rate}: "
            f"expected {rate * height}x{rate * width}"
        )
    kernel, pad = patch_size * rate, rate * (patch_size // 2)
    patches = F.unfold(values, kernel, padding=pad, stride=rate)  # (B, C·kernel², L)
    rebuilt = torch.bmm(patches, attn.transpose(1, 2))  # (B, C·kernel², L_query): eq. 6 per query patch
    summed = F.fold(rebuilt, size, kernel, padding=pad, stride=rate)  # (B, C, H, W), overlapping patches added
    coverage = F.fold(torch.ones_like(rebuilt[:1, : kernel * kernel]), size, kernel, padding=pad, stride=rate)
    return summed / coverage


class ContextualAttention(nn.Module):
    """Spatial semantic learning: fill hole locations of a feature map from its known patches.

    Args:
        patch_size: Odd patch size for matching (3 in the paper).
        softmax_scale: Softmax scale lambda of eq. 5 (DeepFill uses 10).
        rate: Match at 1/rate of the feature resolution to bound memory (L² scores with L = h·w / rate²);
            the transfer still pastes full-resolution patches. 1 = match at full resolution.
    """

    def __init__(self, patch_size: int = 3, softmax_scale: float = 10.0, rate: int = 1) -> None:
        super().__init__()
        if patch_size % 2 != 1 or patch_size < 1:
            raise ValueError(f"patch_size must be a positive odd number, got {patch_size}")
        if rate < 1:
            raise ValueError(f"rate must be >= 1, got {rate}")
        self.patch_size, self.softmax_scale, self.rate = patch_size, softmax_scale, rate

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features: (B, C, H, W); mask: (B, 1, H', W') with 1 = hole, at any resolution. Returns (B, C, H, W)."""
        height, width = features.shape[-2:]
        if height % self.rate or width % self.rate:
            raise ValueError(f"feature size {height}x{width} is not divisible by the attention rate {self.rate}")
        hole = downsample_mask(mask.to(features.dtype), (height, width))  # (B, 1, H, W)
        small = F.avg_pool2d(features, self.rate) if self.rate > 1 else features  # (B, C, H/r, W/r)
        hole_small = downsample_mask(hole, tuple(small.shape[-2:]))
        if features.is_meta:  # sizing a model on the meta device (no data, so no row or column selection)
            attn, has_known = attention_scores(small, hole_small, self.patch_size, self.softmax_scale)
            rebuilt = transfer(attn, features, tuple(small.shape[-2:]), self.rate, self.patch_size)
            return torch.where(has_known[:, None, None, None], hole * rebuilt + (1.0 - hole) * features, features)
        patches, known = unit_patches(small, hole_small, self.patch_size)
        # Only the patches of queries whose window touches the hole are pasted over hole locations, and only known
        # keys have weight: the scores are computed for those rows and columns alone (the same result as
        # `attention_scores` + `transfer` at the hole, at a fraction of the cost: rows + columns <= L per image).
        rows, cols = (~known).any(dim=0).nonzero()[:, 0], known.any(dim=0).nonzero()[:, 0]  # (q,), (k,)
        cosine = torch.bmm(patches[:, :, rows].transpose(1, 2), patches[:, :, cols])  # (B, q, k): eq. 4
        attn = softmax_over_known(cosine, known[:, cols], self.softmax_scale)  # (B, q, k): eq. 5
        kernel, pad = self.patch_size * self.rate, self.rate * (self.patch_size // 2)
        values = F.unfold(features, kernel, padding=pad, stride=self.rate)  # (B, C·kernel², L)
        pasted = torch.bmm(values[:, :, cols], attn.transpose(1, 2))  # (B, C·kernel², q): eq. 6
        pasted = values.new_zeros(values.shape).index_copy(2, rows, pasted)  # (B, C·kernel², L)
        size = (height, width)
        summed = F.fold(pasted, size, kernel, padding=pad, stride=self.rate)  # (B, C, H, W), overlaps added
        coverage = F.fold(torch.ones_like(values[:1, : kernel * kernel]), size, kernel, padding=pad, stride=self.rate)
        filled = hole * (summed / coverage) + (1.0 - hole) * features  # known locations pass through unchanged
        # An image with no known patch at all keeps its features (no NaN, nothing to copy from).
        return torch.where(known.any(dim=1)[:, None, None, None], filled, features)
