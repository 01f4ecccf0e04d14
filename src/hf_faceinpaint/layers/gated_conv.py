"""Gated convolution (Yu et al., "Free-form image inpainting with gated convolution", ICCV 2019).

MSL paper eqs. 1-3:
    Gating  = W_g * I                                   (1)
    Feature = W_f * I                                   (2)
    I'      = BN( phi(Feature) ⊙ sigmoid(Gating) )      (3)
with phi = LeakyReLU. The two-stage paper's texture network uses the same gate with phi = ELU and no BN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {
    "lrelu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "none": nn.Identity,
}


class GatedConv2d(nn.Module):
    """A gated convolution: a feature conv and a gating conv of the same shape, combined per eqs. 1-3.

    Args:
        in_channels: Channels of the input feature map.
        out_channels: Channels of the output feature map.
        kernel_size: Square kernel size (3, 5 and 7 in MSL's three encoders).
        stride: Convolution stride; 2 halves the resolution.
        dilation: Dilation of both convolutions.
        activation: Feature activation phi: "lrelu" (MSL, slope 0.2), "elu" (two-stage texture net), "relu" or "none".
        norm: Apply BatchNorm after the gated product (MSL: True).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        activation: str = "lrelu",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}")
        padding = dilation * (kernel_size - 1) // 2
        # One conv producing [Feature, Gating] is the same maths as two convs W_f, W_g, with one kernel launch.
        self.conv = nn.Conv2d(
            in_channels, 2 * out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation
        )
        self.activation = _ACTIVATIONS[activation]()
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gating = self.conv(x).chunk(2, dim=1)  # (B, C_out, H', W') each: eqs. 1-2
        return self.norm(self.activation(feature) * torch.sigmoid(gating))  # eq. 3


class GatedUpConv2d(nn.Module):
    """Nearest-neighbour ×2 upsampling followed by a stride-1 gated convolution (DeepFill v2's "gated deconv").

    Args:
        in_channels: Channels of the input feature map.
        out_channels: Channels of the output feature map.
        kernel_size: Kernel size of the gated convolution.
        activation: Feature activation, as in `GatedConv2d`.
        norm: Apply BatchNorm after the gated product.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, activation: str = "lrelu", norm: bool = True
    ) -> None:
        super().__init__()
        self.conv = GatedConv2d(in_channels, out_channels, kernel_size, activation=activation, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C_out, 2H, 2W)
