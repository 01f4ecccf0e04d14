"""IR-SE residual units (Deng et al., "ArcFace", CVPR 2019: improved residual units with squeeze-and-excitation,
Hu et al. 2018), as in TreB1eN's InsightFace_Pytorch and pSp's encoders/helpers.py, with the same module names, so
an IR-SE-50 face-recognition checkpoint (pSp's `model_ir_se50.pth`) loads key for key into `ir_se_body`.

    unit(x) = shortcut(x) + SE( BN( conv3x3_s( PReLU( conv3x3( BN(x) ) ) ) ) )
with shortcut = identity (subsampled when strided) or a strided 1×1 conv + BN when the width changes.
"""

from __future__ import annotations

import torch
from torch import nn


class SEModule(nn.Module):
    """Squeeze-and-excitation: channel weights from the global average (keys `fc1`, `fc2`, both without bias).

    Args:
        channels: Channels of the input.
        reduction: Squeeze ratio (16 in IR-SE-50).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, max(1, channels // reduction), 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(max(1, channels // reduction), channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))  # (B, C, H, W)


class BottleneckIRSE(nn.Module):
    """One IR-SE residual unit.

    Args:
        in_channels: Input channels.
        depth: Output channels.
        stride: 2 halves the resolution (first unit of every stage), 1 keeps it.
        reduction: Squeeze ratio of the SE module.
    """

    def __init__(self, in_channels: int, depth: int, stride: int, reduction: int = 16) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)  # identity, subsampled when strided
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)  # (B, depth, H/stride, W/stride)


def ir_se_body(widths: tuple[int, ...], units: tuple[int, ...], reduction: int = 16) -> nn.Sequential:
    """The four stages of IR-SE units after the stem; stage s starts with a stride-2 unit.

    Args:
        widths: Output channels of each stage; the stem's width is widths[0] (IR-SE-50: 64, 128, 256, 512).
        units: Units per stage (IR-SE-50: 3, 4, 14, 3).
        reduction: Squeeze ratio of the SE modules.

    Returns:
        A flat `nn.Sequential` of all units (key `body.{i}` as in the checkpoints); resolution /2 per stage.
    """
    if len(widths) != len(units) or min(units) < 1:
        raise ValueError(f"widths {widths} and units {units} must have one positive entry per stage")
    blocks = []
    channels = widths[0]
    for width, count in zip(widths, units):
        blocks.append(BottleneckIRSE(channels, width, 2, reduction))
        blocks += [BottleneckIRSE(width, width, 1, reduction) for _ in range(count - 1)]
        channels = width
    return nn.Sequential(*blocks)
