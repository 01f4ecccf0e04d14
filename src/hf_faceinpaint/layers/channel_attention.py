"""Channel semantic learning: SENet-style channel weights extended with a gate (MSL paper, section 2.1.2, Fig. 2).

    w   = sigmoid(FC_2(ReLU(FC_1(GAP(x)))))        channel weights (SENet, Hu et al. 2018)
    z   = concat(x ⊙ w, x)                          reweighted features next to the input
    out = FC_a(z) ⊙ sigmoid(FC_b(z))                two parallel 1×1 branches, the second one gating the first
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelSemanticLearning(nn.Module):
    """Gated squeeze-and-excitation block.

    Args:
        channels: Channels of the input (and output) feature map.
        reduction: Squeeze ratio of the first FC layer (SENet uses 16); at least 1 hidden unit is kept.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.excite = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),  # FC_1 on the pooled vector
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),  # FC_2
            nn.Sigmoid(),
        )
        self.value = nn.Conv2d(2 * channels, channels, 1)  # FC_a
        self.gate = nn.Conv2d(2 * channels, channels, 1)  # FC_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.excite(x)  # (B, C, 1, 1)
        z = torch.cat([x * weights, x], dim=1)  # (B, 2C, H, W)
        return self.value(z) * torch.sigmoid(self.gate(z))  # (B, C, H, W)
