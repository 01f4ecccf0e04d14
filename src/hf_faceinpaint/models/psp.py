"""pSp encoder (Richardson et al., "Encoding in style", CVPR 2021; `GradualStyleEncoder`): an IR-SE ResNet with a
feature pyramid, whose three levels are turned into W+ style vectors by small "map2style" networks.

    c1, c2, c3 = body(x) at 1/4, 1/8, 1/16 of the input side
    p3 = c3;  p2 = up(p3) + lat1(c2);  p1 = up(p2) + lat2(c1)          (FPN, Lin et al. 2017)
    w_i = map2style_i(p3) for coarse i,  (p2) for middle i,  (p1) for fine i
map2style is log2(side) stride-2 3×3 convs with LeakyReLU, down to 1×1, then an equalised linear layer.

Style grouping (two-stage paper, section 3.1, following pSp and StyleGAN): with 18 styles, styles 0-2 (coarse: pose,
face shape) come from the smallest map, 3-6 (middle: facial features) from the middle map and 7-17 (fine: colours)
from the largest. StyleGAN defines the groups by the generator resolution a style drives (coarse 4²-8², middle
16²-32², fine above), and style i drives resolution 2^(2 + ⌈i/2⌉), so the boundaries 3 and 7 do not depend on the
number of styles: a smaller generator (14 styles at 256², 12 at 128²) keeps coarse 0-2 and middle 3-6, and its fine
group shrinks (7-13, 7-11), exactly as pSp's encoder does for every generator size. `style_groups` can move them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.irse import ir_se_body
from ..layers.stylegan2 import EqualLinear


class GradualStyleBlock(nn.Module):
    """map2style: stride-2 convolutions with LeakyReLU from a `spatial`² map down to 1×1, then a linear layer.

    Args:
        in_channels: Channels of the pyramid level.
        style_dim: Dimension of the style vector (and of the convs).
        spatial: Side of the input map (a power of two); log2(spatial) convs, at least one.
    """

    def __init__(self, in_channels: int, style_dim: int, spatial: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, style_dim, 3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            layers += [nn.Conv2d(style_dim, style_dim, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(style_dim, style_dim)
        self.style_dim = style_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, s, s) -> (B, style_dim)."""
        return self.linear(self.convs(x).view(-1, self.style_dim))


class PSpEncoder(nn.Module):
    """IR-SE backbone, feature pyramid and one map2style block per style vector.

    Args:
        in_channels: Input channels (4: the masked image and the mask).
        resolution: Input side, a power of two ≥ 32 (the pyramid levels are at 1/16, 1/8 and 1/4 of it).
        n_styles: Number of style vectors (the generator's 2·log2(res) − 2).
        style_dim: Dimension of each style vector.
        widths: Channels of the four IR-SE stages (IR-SE-50: 64, 128, 256, 512).
        units: Units per stage (IR-SE-50: 3, 4, 14, 3).
        se_reduction: Squeeze ratio of the SE modules (16).
        style_groups: First middle and first fine style index (pSp: 3 and 7).
    """

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        n_styles: int,
        style_dim: int,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        units: tuple[int, ...] = (3, 4, 14, 3),
        se_reduction: int = 16,
        style_groups: tuple[int, int] = (3, 7),
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(units) != 4:
            raise ValueError(f"the pSp backbone has four stages, got widths {widths} and units {units}")
        if not 0 < style_groups[0] < style_groups[1] < n_styles:
            raise ValueError(f"style_groups {style_groups} must split {n_styles} styles into three non-empty groups")
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])
        )
        self.body = ir_se_body(widths, units, se_reduction)
        self.stage_ends = (units[0] + units[1] - 1, sum(units[:3]) - 1, sum(units) - 1)  # units producing c1, c2, c3
        self.style_groups = style_groups
        sides = [resolution // 16] * style_groups[0] + [resolution // 8] * (style_groups[1] - style_groups[0])
        sides += [resolution // 4] * (n_styles - style_groups[1])
        self.styles = nn.ModuleList(GradualStyleBlock(widths[3], style_dim, side) for side in sides)
        self.latlayer1 = nn.Conv2d(widths[2], widths[3], 1)
        self.latlayer2 = nn.Conv2d(widths[1], widths[3], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, R, R). Returns the style vectors, (B, n_styles, style_dim)."""
        x = self.input_layer(x)
        pyramid = []
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in self.stage_ends:
                pyramid.append(x)
        c1, c2, c3 = pyramid  # (B, w1, R/4, R/4), (B, w2, R/8, R/8), (B, w3, R/16, R/16)
        p2 = _upsample_add(c3, self.latlayer1(c2))  # (B, w3, R/8, R/8)
        p1 = _upsample_add(p2, self.latlayer2(c1))  # (B, w3, R/4, R/4)
        middle, fine = self.style_groups
        levels = [c3] * middle + [p2] * (fine - middle) + [p1] * (len(self.styles) - fine)
        return torch.stack([block(level) for block, level in zip(self.styles, levels)], dim=1)


def _upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: bilinear upsampling (align_corners=True, as pSp) of the coarser map, plus the lateral map."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral
