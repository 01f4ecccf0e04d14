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
    pad = patch_size // 2
    patches = F.unfold(features, patch_size, padding=pad)  # (B, C·k², L)
    patches = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)  # unit patches for eq. 4
    # A key is "known" only if its whole patch window is free of holes (DeepFill's mm mask).
    known = F.max_pool2d(hole, patch_size, stride=1, padding=pad).flatten(1) < 0.5  # (B, L)
    cosine = torch.bmm(patches.transpose(1, 2), patches)  # (B, L_query, L_key): eq. 4
    # The dtype's lowest value (not -inf) keeps rows without any known key finite; their weights are zeroed below.
    logits = (softmax_scale * cosine).masked_fill(~known[:, None, :], torch.finfo(cosine.dtype).min)
    attn = torch.softmax(logits, dim=-1) * known[:, None, :].to(logits.dtype)  # eq. 5; unknown keys exactly 0
    return attn, known.any(dim=1)


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
        attn, has_known = attention_scores(small, hole_small, self.patch_size, self.softmax_scale)
        rebuilt = transfer(attn, features, tuple(small.shape[-2:]), self.rate, self.patch_size)  # (B, C, H, W)
        filled = hole * rebuilt + (1.0 - hole) * features  # known locations pass through unchanged
        # An image with no known patch at all keeps its features (no NaN, nothing to copy from).
        return torch.where(has_known[:, None, None, None], filled, features)
