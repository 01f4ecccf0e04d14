"""The StyleGAN2 generator (Karras et al. 2020, config F) driven by W+ style vectors, as the two-stage model's
structure reconstructor uses it. Module and parameter names follow rosinality's `stylegan2-pytorch` `Generator`, so a
rosinality `g_ema` state dict loads key for key (plus `latent_avg`, the mean w). Loading NVlabs and rosinality
checkpoints is in `stylegan2_weights.py`.

Layer l of the synthesis network reads style vector l: the 4² conv reads style 0, the 4² ToRGB style 1, and every
block at 2^k (k ≥ 3) reads styles 2k−5 (upsampling conv), 2k−4 (conv) and 2k−3 (ToRGB, shared with the next block's
first conv). Hence n_styles = 2·log2(resolution) − 2: 18 at 1024², 14 at 256².
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..layers.stylegan2 import ConstantInput, EqualLinear, PixelNorm, StyledConv, ToRGB


@dataclass
class StyleGAN2Config:
    """Architecture of a StyleGAN2 generator (NVlabs' names for the channel settings).

    Args:
        resolution: Output side, a power of two ≥ 8.
        style_dim: Dimension of z and w (512 in the papers).
        n_mlp: Layers of the mapping network (8).
        channel_base: Channels at resolution r are min(channel_base // r, channel_max); 32768 is config F
            (rosinality's channel_multiplier=2), 16384 is NVlabs' "paper256" (channel_multiplier=1).
        channel_max: The channel cap (512).
        lr_mlp: Learning-rate multiplier of the mapping network (0.01).
        conv_clamp: Activation clamp of NVlabs' ADA models (256), or None (rosinality, original StyleGAN2).
    """

    resolution: int = 1024
    style_dim: int = 512
    n_mlp: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    lr_mlp: float = 0.01
    conv_clamp: Optional[float] = None

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 8, got {self.resolution}")
        if self.channels(self.resolution) < 1:
            raise ValueError(f"channel_base {self.channel_base} leaves no channels at {self.resolution}²")
        if self.n_mlp < 1 or self.style_dim < 1:
            raise ValueError(f"n_mlp and style_dim must be positive, got {self.n_mlp} and {self.style_dim}")

    def channels(self, resolution: int) -> int:
        """Feature channels of the synthesis block at `resolution`²."""
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def n_styles(self) -> int:
        """Number of W+ style vectors: 2·log2(resolution) − 2."""
        return 2 * int(math.log2(self.resolution)) - 2


class StyleGAN2Generator(nn.Module):
    """Mapping network, constant input, modulated convolutions with noise, and ToRGB skip connections.

    Args:
        config: The architecture, a `StyleGAN2Config` or its dict form.
    """

    def __init__(self, config: StyleGAN2Config | dict) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = StyleGAN2Config(**config)
        self.config = config
        dim, clamp = config.style_dim, config.conv_clamp
        self.style = nn.Sequential(
            PixelNorm(), *(EqualLinear(dim, dim, lr_mul=config.lr_mlp, activation=True) for _ in range(config.n_mlp))
        )
        self.input = ConstantInput(config.channels(4))
        self.conv1 = StyledConv(config.channels(4), config.channels(4), dim, conv_clamp=clamp)
        self.to_rgb1 = ToRGB(config.channels(4), dim, upsample=False, conv_clamp=clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        log_size = int(math.log2(config.resolution))
        channels = config.channels(4)
        for level in range(3, log_size + 1):
            out = config.channels(2**level)
            self.convs.append(StyledConv(channels, out, dim, upsample=True, conv_clamp=clamp))
            self.convs.append(StyledConv(out, out, dim, conv_clamp=clamp))
            self.to_rgbs.append(ToRGB(out, dim, conv_clamp=clamp))
            channels = out
        # Fixed per-layer noise maps (NVlabs' noise_const): the output is a deterministic function of the styles.
        self.noises = nn.Module()
        for index in range(2 * (log_size - 2) + 1):
            side = 2 ** ((index + 5) // 2)
            self.noises.register_buffer(f"noise_{index}", torch.randn(1, 1, side, side))
        # The mean w; pSp adds it to the encoder's output (start_from_latent_avg).
        self.register_buffer("latent_avg", torch.zeros(dim))

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network f: (B, style_dim) z -> (B, style_dim) w."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, count: int = 4096, seed: int = 0) -> torch.Tensor:
        """The mean of f(z) over `count` seeded samples z ~ N(0, I), (style_dim,); the RNG of torch is not touched."""
        param = self.input.input
        z = torch.randn(count, self.config.style_dim, generator=torch.Generator().manual_seed(seed))
        return self.mapping(z.to(param.device, param.dtype)).mean(dim=0)

    def forward(self, styles: torch.Tensor) -> torch.Tensor:
        """Synthesise images from W+ style vectors.

        Args:
            styles: (B, n_styles, style_dim), one w per layer (see the module docstring).

        Returns:
            Images, (B, 3, resolution, resolution), nominally in [-1, 1] (not clamped).
        """
        if styles.ndim != 3 or styles.shape[1:] != (self.n_styles, self.config.style_dim):
            raise ValueError(
                f"styles must be (B, {self.n_styles}, {self.config.style_dim}), got {tuple(styles.shape)}"
            )
        noises = list(self.noises.buffers())
        x = self.input(styles.shape[0])  # (B, C_4, 4, 4)
        x = self.conv1(x, styles[:, 0], noises[0])
        rgb = self.to_rgb1(x, styles[:, 1])  # (B, 3, 4, 4)
        for block, to_rgb in enumerate(self.to_rgbs):
            first = 2 * block + 1  # style index of this block's upsampling conv
            x = self.convs[2 * block](x, styles[:, first], noises[first])  # (B, C, 2h, 2w)
            x = self.convs[2 * block + 1](x, styles[:, first + 1], noises[first + 1])
            rgb = to_rgb(x, styles[:, first + 2], rgb)
        return rgb
