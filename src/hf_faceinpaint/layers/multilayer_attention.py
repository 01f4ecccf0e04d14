"""Multi-layer contextual attention (two-stage paper, section 4.2).

Attention scores are computed on deep feature maps and used to fill the holes of shallower, higher-resolution maps:
    c^l_ij = < p^l_i / ||p^l_i||, p^l_j / ||p^l_j|| >             cosine similarity of known patch i, hole patch j
    s^l_ij = exp(c^l_ij) / Σ_i exp(c^l_ij)                         softmax over the N known patches
    p^1_j = Σ_i s^6_ij p^1_i,  p^2_j = Σ_i s^5_ij p^2_i,  p^3_j = Σ_i s^4_ij p^3_i
The value patches are the score patches' footprint at the target's resolution (`transfer` with rate = target side /
score side), and only hole locations of the target are replaced. As in DeepFill's contextual attention, the cosine
similarity is multiplied by a softmax scale (10) before the softmax; the paper's plain exp(c) (scale 1) would spread
every hole patch almost evenly over all known patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .contextual_attention import attention_scores, downsample_mask, transfer


class MultiLayerContextualAttention(nn.Module):
    """Fill the holes of each target map with attention scores computed on its paired score map.

    Args:
        patch_size: Odd patch size on the score maps (3).
        softmax_scale: Multiplier of the cosine similarity inside the softmax (DeepFill: 10).
    """

    def __init__(self, patch_size: int = 3, softmax_scale: float = 10.0) -> None:
        super().__init__()
        if patch_size % 2 != 1 or patch_size < 1:
            raise ValueError(f"patch_size must be a positive odd number, got {patch_size}")
        self.patch_size, self.softmax_scale = patch_size, softmax_scale

    def forward(
        self, score_maps: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """Fill `targets[k]` using the scores of `score_maps[k]`.

        Args:
            score_maps: Deep feature maps (B, C_k, h_k, w_k); passing the same tensor for several targets computes
                its scores once (the paper's single-layer ablation).
            targets: Shallow maps (B, C'_k, r_k·h_k, r_k·w_k), each an integer multiple r_k of its score map's size.
            mask: Hole mask at any resolution, (B, 1, H, W), 1 = hole.

        Returns:
            The targets with their hole locations rebuilt from known patches; known locations are passed through
            exactly, and an image with no known patch keeps its features.
        """
        if len(score_maps) != len(targets):
            raise ValueError(f"{len(score_maps)} score maps for {len(targets)} targets")
        scores: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        filled = []
        for features, values in zip(score_maps, targets):
            size = tuple(features.shape[-2:])
            rate = values.shape[-1] // size[1]
            if tuple(values.shape[-2:]) != (rate * size[0], rate * size[1]):
                raise ValueError(f"target of size {tuple(values.shape[-2:])} is not a multiple of its score map's {size}")
            if id(features) not in scores:
                hole = downsample_mask(mask.to(features.dtype), size)  # (B, 1, h, w)
                scores[id(features)] = attention_scores(features, hole, self.patch_size, self.softmax_scale)
            attn, has_known = scores[id(features)]
            rebuilt = transfer(attn, values, size, rate, self.patch_size)  # (B, C', r·h, r·w): p_j = Σ_i s_ij p_i
            hole = downsample_mask(mask.to(values.dtype), tuple(values.shape[-2:]))
            out = hole * rebuilt + (1.0 - hole) * values  # only hole locations are replaced
            filled.append(torch.where(has_known[:, None, None, None], out, values))
        return filled
