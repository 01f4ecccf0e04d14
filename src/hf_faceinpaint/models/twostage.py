"""Two-stage face inpainting: latent feature reconstruction, then texture generation with multi-layer attention
(Zhang & Liu, "Face image restoration based on latent feature reconstruction and attention mechanism"; paper text in
shared/papers/).

Stage 1, structure reconstructor (section 3, Fig. 1): a pSp encoder maps the masked image and its mask to W+ style
vectors (coarse / middle / fine groups, `psp.py`) that drive a pretrained, frozen StyleGAN2 generator
(`stylegan2.py`). Its image is resized to the model's resolution: average-pooled as in pSp when the generator is
larger (the paper's 18 styles mean a 1024² generator for 256² images), upsampled bilinearly when it is smaller.

Stage 2, texture generator (section 4, Fig. 2): the stage-1 image composited into the known pixels, plus the mask,
goes through an encoder of gated convolutions with ELU features, O = σ(Gating) ⊙ ELU(Feature) (section 4.3):
    layer 1 at R (5×5), layers 2-4 stride 2 (R/2, R/4, R/8), layers 5-6 at R/8 dilated 2 and 4.
Attention scores computed on the deep layers 4, 5 and 6 fill the holes of the shallow layers 3, 2 and 1
(`MultiLayerContextualAttention`, transfer rates 2, 4, 8), and the decoder upsamples back, concatenating each filled
map at its resolution. The decoder's RGB output is added to its input (the upsampled stage-1 result composited into
the known pixels) and, as always, pixels outside the mask are copied from the input image.

The paper gives no widths or depths. The texture encoder follows DeepFill v2's refinement branch (a 5×5 stem,
stride-2 gated convs, dilated gated convs at the bottleneck), one level deeper, so that the three deep layers share
one R/8 score map (32² at 256², as large as DeepFill's matching map) with growing receptive fields.
Ablations (paper Table 2) are config switches: variant 1 = `use_structure_stage=False, attention_layers=(6,)`,
variant 2 = `attention_layers=(6,)`; a single score layer fills all three shallow layers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import GatedConv2d, GatedUpConv2d
from ..layers.multilayer_attention import MultiLayerContextualAttention
from .discriminator import PatchDiscriminator
from .base import Inpainter
from .psp import PSpEncoder
from .registry import register_preset
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator

# Deep layer whose attention scores fill shallow layers 3, 2 and 1 (paper eqs. for p^3, p^2, p^1).
_PAPER_PAIRS = {3: 4, 2: 5, 1: 6}


@dataclass
class TwoStageConfig:
    """Configuration of the two-stage model and of its stage-2 critic.

    Args:
        resolution: Side of the square images the model works on, a power of two ≥ 32 (the paper uses 256).
        use_structure_stage: Run stage 1; False is the paper's variant 1 (texture generator alone).
        stylegan_resolution: Output side of the StyleGAN2 generator (1024 for 18 styles); 0 = `resolution`.
        stylegan_style_dim: Dimension of w (512).
        stylegan_n_mlp: Layers of the mapping network (8).
        stylegan_channel_base: StyleGAN2 channels at side r are min(base // r, max): 32768 = config F.
        stylegan_channel_max: StyleGAN2 channel cap (512).
        stylegan_lr_mlp: Learning-rate multiplier of the mapping network (0.01).
        stylegan_conv_clamp: Activation clamp of NVlabs ADA generators (256), or None.
        encoder_widths: Channels of the pSp encoder's four IR-SE stages (IR-SE-50: 64, 128, 256, 512).
        encoder_units: IR-SE units per stage (IR-SE-50: 3, 4, 14, 3).
        encoder_se_reduction: Squeeze ratio of the encoder's SE modules (16).
        style_groups: First middle and first fine style index (pSp and the paper: 3 and 7, for every generator size:
            the groups follow the resolution a style drives, so a smaller generator has a smaller fine group).
        texture_widths: Channels of texture-encoder layers 1-4 (layers 5-6 keep the last width).
        texture_dilations: Dilations of layers 5 and 6.
        attention_layers: Deep layers whose scores fill the shallow layers: (4, 5, 6) pairs them with 3, 2, 1
            (the paper's full model); a single layer, e.g. (6,), fills all three (the paper's variants).
        attention_patch_size: Patch size of the attention on the score maps (3).
        attention_softmax_scale: Multiplier of the cosine similarity before the softmax (DeepFill: 10).
        discriminator_widths: Channels of the stage-2 WGAN-GP critic (a PatchGAN without spectral norm).
    """

    resolution: int = 256
    use_structure_stage: bool = True
    stylegan_resolution: int = 1024
    stylegan_style_dim: int = 512
    stylegan_n_mlp: int = 8
    stylegan_channel_base: int = 32768
    stylegan_channel_max: int = 512
    stylegan_lr_mlp: float = 0.01
    stylegan_conv_clamp: Optional[float] = None
    encoder_widths: tuple[int, ...] = (64, 128, 256, 512)
    encoder_units: tuple[int, ...] = (3, 4, 14, 3)
    encoder_se_reduction: int = 16
    style_groups: tuple[int, ...] = (3, 7)
    texture_widths: tuple[int, ...] = (32, 64, 128, 256)
    texture_dilations: tuple[int, ...] = (2, 4)
    attention_layers: tuple[int, ...] = (4, 5, 6)
    attention_patch_size: int = 3
    attention_softmax_scale: float = 10.0
    discriminator_widths: tuple[int, ...] = field(default=(64, 128, 256, 256))

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare and hash the same after a round trip.
        for name in ("encoder_widths", "encoder_units", "style_groups", "texture_widths", "texture_dilations",
                     "attention_layers", "discriminator_widths"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.resolution < 32 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 32, got {self.resolution}")
        if len(self.texture_widths) != 4 or len(self.texture_dilations) != 2:
            raise ValueError(
                f"texture_widths needs 4 entries and texture_dilations 2, got {self.texture_widths}, {self.texture_dilations}"
            )
        if self.attention_layers != (4, 5, 6) and not (len(self.attention_layers) == 1 and self.attention_layers[0] in (4, 5, 6)):
            raise ValueError(f"attention_layers must be (4, 5, 6) or a single layer among them, got {self.attention_layers}")
        n_styles = self.stylegan.n_styles  # also validates the generator settings
        if len(self.style_groups) != 2 or not 0 < self.style_groups[0] < self.style_groups[1] < n_styles:
            raise ValueError(
                f"style_groups {self.style_groups} must split the generator's {n_styles} styles into three non-empty "
                "(coarse, middle, fine) groups"
            )

    @property
    def stylegan(self) -> StyleGAN2Config:
        """The StyleGAN2 generator's architecture."""
        return StyleGAN2Config(
            resolution=self.stylegan_resolution or self.resolution, style_dim=self.stylegan_style_dim,
            n_mlp=self.stylegan_n_mlp, channel_base=self.stylegan_channel_base, channel_max=self.stylegan_channel_max,
            lr_mlp=self.stylegan_lr_mlp, conv_clamp=self.stylegan_conv_clamp,
        )

    def with_stylegan(self, generator: StyleGAN2Config) -> "TwoStageConfig":
        """A copy whose StyleGAN2 settings are those of `generator` (e.g. read from a pretrained weights file)."""
        return dataclasses.replace(
            self, **{f"stylegan_{f.name}": getattr(generator, f.name) for f in dataclasses.fields(StyleGAN2Config)}
        )

    def score_layer(self, target: int) -> int:
        """The deep layer (4-6) whose attention scores fill shallow layer `target` (1-3)."""
        return _PAPER_PAIRS[target] if len(self.attention_layers) == 3 else self.attention_layers[0]


class StructureReconstructor(nn.Module):
    """Stage 1: pSp encoder into a StyleGAN2 generator.

    Args:
        config: The model configuration.
    """

    def __init__(self, config: TwoStageConfig) -> None:
        super().__init__()
        generator = config.stylegan
        self.resolution = config.resolution
        self.encoder = PSpEncoder(
            4, config.resolution, generator.n_styles, generator.style_dim, config.encoder_widths,
            config.encoder_units, config.encoder_se_reduction, config.style_groups,
        )
        self.generator = StyleGAN2Generator(generator)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, R, R) in [-1, 1]; mask: (B, 1, R, R), 1 = hole. Returns the raw stage-1 image (B, 3, R, R)."""
        x = torch.cat([image * (1.0 - mask), mask], dim=1)  # (B, 4, R, R): the masked image plus the mask
        styles = self.encoder(x) + self.generator.latent_avg  # (B, n_styles, style_dim), pSp's start_from_latent_avg
        out = self.generator(styles)  # (B, 3, G, G)
        if out.shape[-1] > self.resolution:
            return F.adaptive_avg_pool2d(out, self.resolution)  # pSp's face_pool
        if out.shape[-1] < self.resolution:
            return F.interpolate(out, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return out


class TextureDecoderLevel(nn.Module):
    """×2 gated upsampling, then a gated conv over [upsampled, attention-filled encoder map].

    Args:
        in_channels: Channels coming from the level below.
        out_channels: Channels of this level (and of the filled encoder map).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = GatedUpConv2d(in_channels, out_channels, activation="elu", norm=False)
        self.fuse = GatedConv2d(2 * out_channels, out_channels, 3, activation="elu", norm=False)

    def forward(self, x: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x), filled], dim=1))  # (B, C_out, 2h, 2w)


class TextureGenerator(nn.Module):
    """Stage 2: gated-conv (ELU) encoder-decoder with multi-layer contextual attention, residual on its input.

    Args:
        config: The model configuration.
    """

    def __init__(self, config: TwoStageConfig) -> None:
        super().__init__()
        w1, w2, w3, w4 = config.texture_widths
        d5, d6 = config.texture_dilations

        def gated(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> GatedConv2d:
            return GatedConv2d(cin, cout, kernel, stride=stride, dilation=dilation, activation="elu", norm=False)

        self.encoder = nn.ModuleList([
            gated(4, w1, 5),  # layer 1: R
            gated(w1, w2, stride=2),  # layer 2: R/2
            gated(w2, w3, stride=2),  # layer 3: R/4
            gated(w3, w4, stride=2),  # layer 4: R/8
            gated(w4, w4, dilation=d5),  # layer 5: R/8
            gated(w4, w4, dilation=d6),  # layer 6: R/8
        ])
        self.attention = MultiLayerContextualAttention(config.attention_patch_size, config.attention_softmax_scale)
        self.score_layers = tuple(config.score_layer(target) for target in (3, 2, 1))
        self.decoder = nn.ModuleList([TextureDecoderLevel(w4, w3), TextureDecoderLevel(w3, w2), TextureDecoderLevel(w2, w1)])
        self.to_rgb = nn.Conv2d(w1, 3, 3, padding=1)

    def forward(self, coarse: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """coarse: the stage-1 result composited into the known pixels, (B, 3, R, R); mask: (B, 1, R, R), 1 = hole.
        Returns the refined image (B, 3, R, R) (before compositing, not clamped)."""
        x = torch.cat([coarse, mask], dim=1)  # (B, 4, R, R)
        layers = []
        for layer in self.encoder:
            x = layer(x)
            layers.append(x)  # layer l at layers[l - 1]
        shallow = [layers[2], layers[1], layers[0]]  # layers 3, 2, 1: (B, w3, R/4), (B, w2, R/2), (B, w1, R)
        filled = self.attention([layers[l - 1] for l in self.score_layers], shallow, mask)
        for level, skip in zip(self.decoder, filled):
            x = level(x, skip)  # R/4, R/2, R
        return coarse + self.to_rgb(x)  # the texture is added to the (upsampled, composited) stage-1 result


class TwoStageInpainter(Inpainter, config_class=TwoStageConfig, tags=("stylegan2", "psp", "two-stage")):
    """Both stages, loadable with `from_pretrained` and publishable with `push_to_hub`.

    Args:
        config: Architecture settings, a `TwoStageConfig` or its dict form (as read from `config.json`). Use
            `TwoStageInpainter.from_preset(name)` for the named presets.
    """

    def __init__(self, config: TwoStageConfig | dict | None = None) -> None:
        super().__init__(config)
        config = self.config
        self.structure = StructureReconstructor(config) if config.use_structure_stage else None
        self.texture = TextureGenerator(config)

    def build_discriminator(self) -> PatchDiscriminator:
        """The stage-2 WGAN-GP critic: a PatchGAN on image + mask, without spectral norm (it has a gradient penalty)."""
        return PatchDiscriminator(4, self.config.discriminator_widths, spectral_norm=False)

    def coarse(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The texture stage's input: the stage-1 image inside the hole and the input outside it; without a
        structure stage (variant 1), the input with the hole zeroed. Shapes as in `forward`."""
        if self.structure is None:
            return image * (1.0 - mask)
        return mask * self.structure(image, mask) + (1.0 - mask) * image

    def generate(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The raw refined prediction over the whole frame, before compositing (not clamped). Shapes as in `forward`."""
        self.check_inputs(image, mask)
        mask = mask.to(image.dtype)
        return self.texture(self.coarse(image, mask), mask)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inpaint: `Inpainter.forward` with the prediction clamped to [-1, 1]. Frames are R×R, R = config.resolution."""
        return self.composite(image, mask, self.generate(image, mask.to(image.dtype)).clamp(-1.0, 1.0))

    def check_size(self, height: int, width: int) -> None:
        side = self.config.resolution
        if (height, width) != (side, side):
            raise ValueError(f"image must be {side}x{side} (the model's resolution), got {(height, width)}")


# The paper's setting: 256² images, pSp (IR-SE-50) into a 1024² StyleGAN2 config F (18 styles, the paper's count;
# FFHQ weights such as pSp's stylegan2-ffhq-config-f.pt plug in), attention scores from layers 4-6.
register_preset("twostage-256", TwoStageConfig())
# Paper Table 2, variant 1: the texture generator alone, attention scores from layer 6 only.
register_preset("twostage-256-variant1", TwoStageConfig(use_structure_stage=False, attention_layers=(6,)))
# Paper Table 2, variant 2: both stages, attention scores from layer 6 only.
register_preset("twostage-256-variant2", TwoStageConfig(attention_layers=(6,)))
# Small enough to train both stages on a CPU: 128², a 128² StyleGAN2 (12 styles) with few channels, a 5-unit IR-SE
# encoder; attention scores on a 16² map.
register_preset(
    "twostage-tiny-128",
    TwoStageConfig(
        resolution=128, stylegan_resolution=0, stylegan_style_dim=128, stylegan_n_mlp=4, stylegan_channel_base=2048,
        stylegan_channel_max=128, encoder_widths=(16, 32, 64, 128), encoder_units=(1, 1, 2, 1),
        texture_widths=(16, 32, 64, 64), discriminator_widths=(32, 64, 128, 128),
    ),
)
