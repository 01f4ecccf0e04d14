"""MSL: face image inpainting with multi-scale semantic learning (Zuo & Yang; paper text in shared/papers/).

Generator, top to bottom (paper Fig. 1):
  1. three parallel gated-conv encoders with 3×3, 5×5 and 7×7 kernels (section 2.1.1, eqs. 1-3);
  2. on each encoder's bottleneck, multi-scale semantic learning: channel semantic learning (Fig. 2) then spatial
     semantic learning, i.e. contextual attention over 3×3 patches (Fig. 3, eqs. 4-6);
  3. the three branches concatenated and decoded by upsampling gated convs, with skip connections from all three
     encoders at each resolution, ending in a tanh RGB image.
The output is always composited: out = mask · pred + (1 − mask) · input. The face stages that msl-face adds around
this network (a face draft, structure and detail transfers) are the pipeline's (`pipeline.py`, `face/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import ChannelSemanticLearning, ContextualAttention, GatedConv2d, GatedUpConv2d
from .discriminator import PatchDiscriminator
from .base import Inpainter
from .registry import register_preset


@dataclass
class MSLConfig:
    """Configuration of the MSL generator (and of the discriminator it is trained against).

    Args:
        resolution: Side of the square images the model is trained at (the paper uses 256).
        widths: Channels per encoder level; level 0 is at full resolution and every further level halves it,
            so the bottleneck sits at resolution / 2**(len(widths) - 1).
        convs_per_level: Extra stride-1 gated convs after each level's first conv (the depth).
        kernel_sizes: Kernel size of each parallel encoder (3, 5, 7 in the paper).
        use_semantic_learning: Run the multi-scale semantic learning module; False is the paper's "w/o MSL" ablation.
        se_reduction: Squeeze ratio of the channel semantic learning FC layers.
        attention_patch_size: Patch size of the contextual attention (3 in the paper).
        attention_softmax_scale: Softmax scale lambda of eq. 5 (10, as in DeepFill).
        attention_rate: Match patches at 1/rate of the bottleneck resolution to bound memory (1 = full).
        discriminator_widths: Channels of the spectral-norm PatchGAN discriminator's stride-2 convs.
    """

    resolution: int = 256
    widths: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_level: int = 1
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    use_semantic_learning: bool = True
    se_reduction: int = 4
    attention_patch_size: int = 3
    attention_softmax_scale: float = 10.0
    attention_rate: int = 1
    discriminator_widths: tuple[int, ...] = field(default=(64, 128, 256, 256))

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare and hash the same after a round trip.
        self.widths = tuple(int(w) for w in self.widths)
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        self.discriminator_widths = tuple(int(w) for w in self.discriminator_widths)
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least two levels, got {self.widths}")
        if not self.kernel_sizes or any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be positive odd numbers, got {self.kernel_sizes}")
        if self.resolution % self.size_multiple:
            raise ValueError(f"resolution {self.resolution} is not a multiple of {self.size_multiple}")

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the downsampling factor times the attention rate)."""
        return 2 ** (len(self.widths) - 1) * self.attention_rate


class MSLEncoder(nn.Module):
    """One of the three parallel encoders: gated convs with one kernel size, downsampling by stride-2 gated convs.

    Args:
        widths: Channels per level (see `MSLConfig.widths`).
        kernel_size: Kernel size of every conv in this encoder.
        convs_per_level: Extra stride-1 gated convs per level.
        in_channels: Channels of the input (masked RGB + mask).
    """

    def __init__(self, widths: tuple[int, ...], kernel_size: int, convs_per_level: int, in_channels: int = 4) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        channels = in_channels
        for level, width in enumerate(widths):
            stride = 1 if level == 0 else 2
            convs = [GatedConv2d(channels, width, kernel_size, stride=stride)]
            convs += [GatedConv2d(width, width, kernel_size) for _ in range(convs_per_level)]
            self.levels.append(nn.Sequential(*convs))
            channels = width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 4, H, W). Returns the feature map of every level, finest first: (B, widths[i], H/2^i, W/2^i)."""
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class MultiScaleSemanticLearning(nn.Module):
    """Channel semantic learning followed by spatial semantic learning (contextual attention), on one branch.

    Args:
        channels: Channels of the branch's bottleneck features.
        config: The model configuration (SE reduction and attention settings).
    """

    def __init__(self, channels: int, config: MSLConfig) -> None:
        super().__init__()
        self.channel = ChannelSemanticLearning(channels, config.se_reduction)
        self.spatial = ContextualAttention(
            config.attention_patch_size, config.attention_softmax_scale, config.attention_rate
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x), mask)  # (B, C, h, w)


class MSLDecoder(nn.Module):
    """Upsampling gated convs; at each level the three encoders' features of that resolution are concatenated in.

    Args:
        widths: The encoders' channels per level.
        branches: Number of parallel encoders (3).
    """

    def __init__(self, widths: tuple[int, ...], branches: int) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.fuses = nn.ModuleList()
        channels = branches * widths[-1]
        for width in reversed(widths[:-1]):
            self.ups.append(GatedUpConv2d(channels, width))
            self.fuses.append(GatedConv2d(width + branches * width, width, 3))  # upsampled + skips
            channels = width
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """bottleneck: (B, branches·widths[-1], h, w); skips[i]: (B, branches·widths[i], H_i, W_i). Returns the
        pre-activation RGB map (B, 3, H, W)."""
        x = bottleneck
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips[:-1])):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return self.to_rgb(x)


class MSLInpainter(Inpainter, config_class=MSLConfig, tags=("msl",)):
    """The MSL generator, loadable with `from_pretrained` and publishable with `push_to_hub`.

    Args:
        config: Architecture settings, an `MSLConfig` or its dict form (as read from `config.json`). Use
            `MSLInpainter.from_preset(name)` for the named presets.
    """

    def __init__(self, config: MSLConfig | dict | None = None) -> None:
        super().__init__(config)
        config = self.config
        self.encoders = nn.ModuleList(MSLEncoder(config.widths, k, config.convs_per_level) for k in config.kernel_sizes)
        branches, bottleneck = len(config.kernel_sizes), config.widths[-1]
        self.semantic = (
            nn.ModuleList(MultiScaleSemanticLearning(bottleneck, config) for _ in range(branches))
            if config.use_semantic_learning
            else None
        )
        self.decoder = MSLDecoder(config.widths, branches)

    def build_discriminator(self) -> PatchDiscriminator:
        """The spectral-norm PatchGAN discriminator this generator is trained against."""
        return PatchDiscriminator(4, self.config.discriminator_widths, spectral_norm=True)

    def generate(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The raw prediction over the whole frame, before compositing.

        Args:
            image: (B, 3, H, W) in [-1, 1]; hole pixels are ignored (zeroed here).
            mask: (B, 1, H, W), 1 = hole, 0 = known.
        """
        self.check_inputs(image, mask)
        mask = mask.to(image.dtype)
        x = torch.cat([image * (1.0 - mask), mask], dim=1)  # (B, 4, H, W): masked image + mask
        per_encoder = [encoder(x) for encoder in self.encoders]  # branches × levels × (B, C_l, H_l, W_l)
        bottlenecks = [features[-1] for features in per_encoder]
        if self.semantic is not None:
            bottlenecks = [module(b, mask) for module, b in zip(self.semantic, bottlenecks)]
        skips = [torch.cat(level, dim=1) for level in zip(*per_encoder)]  # per level: (B, branches·C_l, H_l, W_l)
        return torch.tanh(self.decoder(torch.cat(bottlenecks, dim=1), skips))  # (B, 3, H, W)

    def check_size(self, height: int, width: int) -> None:
        multiple = self.config.size_multiple
        if height % multiple or width % multiple:
            raise ValueError(f"image sides must be multiples of {multiple}, got {(height, width)}")


# The paper's setting: CelebA-HQ at 256², bottleneck at 32², attention over all 32² locations.
register_preset("msl-256", MSLConfig(resolution=256, widths=(32, 64, 128, 256), convs_per_level=1))
# Paper Table 2 ablation: the same network without multi-scale semantic learning.
register_preset(
    "msl-256-wo-msl", MSLConfig(resolution=256, widths=(32, 64, 128, 256), convs_per_level=1, use_semantic_learning=False)
)
# Small enough to train on a CPU: 128², bottleneck at 16² (msl-face's network).
register_preset(
    "msl-tiny-128",
    MSLConfig(resolution=128, widths=(16, 32, 64, 64), convs_per_level=0, se_reduction=4,
              discriminator_widths=(32, 64, 128, 128)),
)
