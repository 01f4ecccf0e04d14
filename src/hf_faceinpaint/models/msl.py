"""MSL: face image inpainting with multi-scale semantic learning (Zuo & Yang; paper text in shared/papers/).

Generator, top to bottom (paper Fig. 1):
  1. three parallel gated-conv encoders with 3×3, 5×5 and 7×7 kernels (section 2.1.1, eqs. 1-3);
  2. on each encoder's bottleneck, multi-scale semantic learning: channel semantic learning (Fig. 2) then spatial
     semantic learning, i.e. contextual attention over 3×3 patches (Fig. 3, eqs. 4-6);
  3. the three branches concatenated and decoded by upsampling gated convs, with skip connections from all three
     encoders at each resolution, ending in a tanh RGB image.
Not in the paper, optional: a gappy-PCA face prior (`models/prior.py`) fitted to the known pixels, either as a second
input whose face the decoder corrects (`prior_input`), or blended into the fill deep inside the hole (`prior_blend`,
the shipped msl-face v2); and the mirrored face's detail deep inside a hole on one side of the face
(`mirror_detail`, `models/symmetry.py`, msl-face v7); and a real eye pair's detail from a bank of training
faces where a hole hides both eyes (`exemplar_count`, `models/exemplars.py`, msl-face v8).
The output is always composited: out = mask · pred + (1 − mask) · input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import ChannelSemanticLearning, ContextualAttention, GatedConv2d, GatedUpConv2d
from .discriminator import PatchDiscriminator
from .base import Inpainter
from .exemplars import ExemplarBank
from .prior import FacePrior, transfer_structure
from .symmetry import transfer_mirror_detail
from .registry import register_preset


@dataclass
class MSLConfig:
    """Configuration of the MSL generator (and of the discriminator it is trained against).

    Args:
        resolution: Side of the square images the model works on (the paper uses 256).
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
        stem_stride: 1 (the paper): the three encoders read the input at full resolution. 2: one shared stride-2
            gated conv (widths[0] channels) reads it first, so the three encoders run at half resolution (about a
            quarter of their cost), and the decoder ends with a gated upsampling back to full resolution that
            sees the input again.
        prior_components: Components of the gappy-PCA face prior (`models/prior.py`); 0 = no prior. With a prior,
            its face fitted to the known pixels is a second input (3 more channels) and the decoder predicts the
            residual over it.
        prior_size: Side of the grid the prior's PCA lives on.
        prior_ridge: Ridge weight of the prior's fit (eq. 1 of `models/prior.py`).
        prior_input: With a prior: True, its fitted face is a second network input and the decoder predicts the
            residual over it. False, the network sees the masked image only, and the prior's structure is given to
            its prediction afterwards (`prior_blend`).
        prior_blend: σ of the low-pass through which the prior's structure is transferred into the prediction
            (eq. 2 of `models/prior.py`), as a fraction of the frame side; 0 = no transfer.
        prior_blend_ramp: Distance into the hole at which the prior's structure is taken whole, as a fraction of
            the frame side (nearer the hole's edge its weight falls linearly to 0).
        prior_detail: κ of eq. 2: the share of the network's own high frequencies kept where the prior's
            structure is taken whole (1 = all; less damps the network's blocky detail deep inside large holes).
        prior_residual_full: The prior is trusted fully on frames whose known pixels it fits with an RMS residual
            (`FacePrior.fit`) at most this, in [-1, 1] image units.
        prior_residual_none: ... and not at all from this residual on (a frame that is not an aligned face); the
            trust falls linearly in between.
        prior_refiner_width: First-level channels of the prior's `PriorRefiner`, which sharpens the PCA's fitted
            face on the prior's grid (`scripts/train_prior_refiner.py`); 0 = no refiner.
        prior_refiner_fine: The refiner draws the face on a grid twice the prior's side (`PriorRefiner.fine`),
            from the known pixels there too.
        prior_refiner_fine_blocks: Residual blocks at the refiner's fine level (`PriorRefiner`'s `fine_blocks`),
            which draw the detail its grid cannot hold; 0 = its two convs alone (msl-face v4-v10).
        mirror_detail: σ of the mirror-detail transfer (eq. 4 of `models/symmetry.py`) as a fraction of the frame
            side: deep inside a hole on one side of the face, the detail finer than σ comes from the mirrored other
            side where that is known (a painted-over eye gets the other eye's iris and lids); 0 = off.
        mirror_detail_ramp: Distance into the hole, as a fraction of the frame side, from which the mirror's
            detail is taken whole (nearer the hole's edge its weight falls linearly to 0).
        mirror_axis_trust: The mirror's trust where its shift cannot be matched (half a face painted over): the
            frame is then mirrored about its centre, the face's axis in an aligned frame (`transfer_mirror_detail`),
            times the prior's trust in the frame; 0 = no mirror detail there (msl-face v7-v11).
        exemplar_count: Windows per part in the exemplar bank (`models/exemplars.py`, eqs. 5-6: a real eye pair's
            detail where the hole hides both eyes), cut by `scripts/fit_exemplar_bank.py`; 0 = no bank.
        exemplar_detail: σ of the exemplar-detail transfer (eq. 6 of `models/exemplars.py`) as a fraction of the
            frame side: the detail finer than this comes from the exemplar.
        exemplar_ramp: Distance into the hole, as a fraction of the frame side, from which the exemplar's detail is
            taken whole.
        exemplar_contrast: The exemplar's detail is taken only on its eyes themselves (r of eq. 6,
            `exemplars.feature_region`): where its grey window lies at least this far from its skin (in [-1, 1];
            wholly from twice this), so the skin around them is left smooth; 0 = everywhere in the eyes' core
            (msl-face v8 and v9).
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
    stem_stride: int = 1
    prior_components: int = 0
    prior_size: int = 64
    prior_ridge: float = 1.5
    prior_input: bool = True
    prior_blend: float = 0.0
    prior_blend_ramp: float = 0.08
    prior_detail: float = 1.0
    prior_residual_full: float = 0.25
    prior_residual_none: float = 0.3
    prior_refiner_width: int = 0
    prior_refiner_fine: bool = False
    prior_refiner_fine_blocks: int = 0
    mirror_detail: float = 0.0
    mirror_detail_ramp: float = 0.03125
    mirror_axis_trust: float = 0.0
    exemplar_count: int = 0
    exemplar_detail: float = 0.015625
    exemplar_ramp: float = 0.03125
    exemplar_contrast: float = 0.0

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare and hash the same after a round trip.
        self.widths = tuple(int(w) for w in self.widths)
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        self.discriminator_widths = tuple(int(w) for w in self.discriminator_widths)
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least two levels, got {self.widths}")
        if not self.kernel_sizes or any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be positive odd numbers, got {self.kernel_sizes}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if not 0 <= self.prior_detail <= 1:
            raise ValueError(f"prior_detail must lie in [0, 1], got {self.prior_detail}")
        residuals = 0 <= self.prior_residual_full < self.prior_residual_none
        if not (self.prior_blend >= 0 and self.prior_blend_ramp > 0 and residuals):
            raise ValueError(
                "need prior_blend >= 0, prior_blend_ramp > 0 and 0 <= prior_residual_full < prior_residual_none, got "
                f"{self.prior_blend}, {self.prior_blend_ramp}, {self.prior_residual_full}, {self.prior_residual_none}"
            )
        if self.prior_refiner_width < 0 or (self.prior_refiner_width and not self.prior_components):
            raise ValueError(f"prior_refiner_width needs a prior and must be >= 0, got {self.prior_refiner_width}")
        if self.prior_refiner_fine and not self.prior_refiner_width:
            raise ValueError("prior_refiner_fine needs a refiner (prior_refiner_width > 0)")
        if self.prior_refiner_fine_blocks < 0 or (self.prior_refiner_fine_blocks and not self.prior_refiner_fine):
            raise ValueError("prior_refiner_fine_blocks needs the refiner's fine level (prior_refiner_fine) and must "
                             f"be >= 0, got {self.prior_refiner_fine_blocks}")
        if not (self.mirror_detail >= 0 and self.mirror_detail_ramp > 0 and 0 <= self.mirror_axis_trust <= 1):
            raise ValueError(f"need mirror_detail >= 0, mirror_detail_ramp > 0 and mirror_axis_trust in [0, 1], got "
                             f"{self.mirror_detail}, {self.mirror_detail_ramp}, {self.mirror_axis_trust}")
        exemplars = self.exemplar_count >= 0 and self.exemplar_detail > 0 and self.exemplar_ramp > 0
        if not (exemplars and self.exemplar_contrast >= 0):
            raise ValueError(f"need exemplar_count >= 0, exemplar_detail > 0, exemplar_ramp > 0 and exemplar_contrast "
                             f">= 0, got {self.exemplar_count}, {self.exemplar_detail}, {self.exemplar_ramp}, "
                             f"{self.exemplar_contrast}")
        if self.prior_components and not self.prior_input and not self.prior_blend:
            raise ValueError("a prior that is neither an input (prior_input) nor blended in (prior_blend) is unused")
        if self.resolution % self.size_multiple:
            raise ValueError(f"resolution {self.resolution} is not a multiple of {self.size_multiple}")

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the downsampling factor times the attention rate)."""
        return self.stem_stride * 2 ** (len(self.widths) - 1) * self.attention_rate

    @property
    def in_channels(self) -> int:
        """Channels of the network input: masked RGB + mask, plus the prior's RGB face when there is a prior."""
        return 4 + (3 if self.prior_components and self.prior_input else 0)


class MSLEncoder(nn.Module):
    """One of the three parallel encoders: gated convs with one kernel size, downsampling by stride-2 gated convs.

    Args:
        widths: Channels per level (see `MSLConfig.widths`).
        kernel_size: Kernel size of every conv in this encoder.
        convs_per_level: Extra stride-1 gated convs per level.
        in_channels: Channels of the input (masked RGB + mask [+ prior], or the stem's widths[0]).
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
        stem_stride: 2 when the encoders ran at half resolution: one more gated upsampling, fused with the
            full-resolution input (`stem_channels` channels), brings the features back to full resolution.
        stem_channels: Channels of the full-resolution input (used with `stem_stride` 2).
    """

    def __init__(self, widths: tuple[int, ...], branches: int, stem_stride: int = 1, stem_channels: int = 4) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.fuses = nn.ModuleList()
        channels = branches * widths[-1]
        for width in reversed(widths[:-1]):
            self.ups.append(GatedUpConv2d(channels, width))
            self.fuses.append(GatedConv2d(width + branches * width, width, 3))  # upsampled + skips
            channels = width
        self.full_up = GatedUpConv2d(channels, channels) if stem_stride == 2 else None
        self.full_fuse = GatedConv2d(channels + stem_channels, channels, 3) if stem_stride == 2 else None
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], stem: torch.Tensor) -> torch.Tensor:
        """bottleneck: (B, branches·widths[-1], h, w); skips[i]: (B, branches·widths[i], H_i, W_i); stem: the
        full-resolution input (B, C_in, H, W). Returns the pre-activation RGB map (B, 3, H, W)."""
        x = bottleneck
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips[:-1])):
            x = fuse(torch.cat([up(x), skip], dim=1))
        if self.full_up is not None:
            x = self.full_fuse(torch.cat([self.full_up(x), stem], dim=1))  # (B, widths[0], H, W)
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
        # a stride-2 stem: one gated conv downsamples once before the three encoders
        self.stem = GatedConv2d(config.in_channels, config.widths[0], 3, stride=2) if config.stem_stride == 2 else None
        encoder_in = config.in_channels if self.stem is None else config.widths[0]
        self.encoders = nn.ModuleList(
            MSLEncoder(config.widths, k, config.convs_per_level, encoder_in) for k in config.kernel_sizes
        )
        branches, bottleneck = len(config.kernel_sizes), config.widths[-1]
        self.semantic = (
            nn.ModuleList(MultiScaleSemanticLearning(bottleneck, config) for _ in range(branches))
            if config.use_semantic_learning
            else None
        )
        self.decoder = MSLDecoder(config.widths, branches, config.stem_stride, config.in_channels)
        self.prior = (
            FacePrior(config.prior_size, config.prior_components, config.prior_ridge, config.prior_refiner_width,
                      config.prior_refiner_fine, config.prior_refiner_fine_blocks)
            if config.prior_components
            else None
        )
        self.exemplars = ExemplarBank(config.exemplar_count) if config.exemplar_count else None

    def build_discriminator(self) -> PatchDiscriminator:
        """The spectral-norm PatchGAN discriminator this generator is trained against."""
        return PatchDiscriminator(4, self.config.discriminator_widths, spectral_norm=True)

    def generate(self, image: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        """The raw prediction over the whole frame, before compositing.

        Args:
            image: (B, 3, H, W) in [-1, 1]; hole pixels are ignored (zeroed here).
            mask: (B, 1, H, W), 1 = hole, 0 = known.
            guide: Models with a prior as input only: a face to refine instead of the prior's fit, (B, 3, H, W) in [-1, 1]
                (the pipeline passes a coarser pass's result, upsampled: coarse-to-fine).
        """
        self.check_inputs(image, mask)
        mask = mask.to(image.dtype)
        config = self.config
        x = torch.cat([image * (1.0 - mask), mask], dim=1)  # (B, 4, H, W): masked image + mask
        prior = fitted = None
        if guide is not None and not self.takes_guide:
            raise ValueError("only a model with a face prior as input takes a guide")
        if self.prior is not None and (guide is None or config.prior_blend):
            # the prior's face fitted to the known pixels, and the PCA's residual (a blended face is not sharpened
            # when no frame is trusted: it is not used)
            fitted = self.prior.fit(image, mask, config.prior_residual_none if not config.prior_input else math.inf)
        if self.prior is not None and config.prior_input:
            # the prior's face (or the guide): a second input, the face the decoder corrects
            prior = fitted[0].to(image.dtype) if guide is None else guide.to(image.dtype)  # (B, 3, H, W)
            x = torch.cat([x, prior], dim=1)  # (B, 7, H, W)
        encoder_in = x if self.stem is None else self.stem(x)  # (B, C_in, H, W) or (B, widths[0], H/2, W/2)
        per_encoder = [encoder(encoder_in) for encoder in self.encoders]  # branches × levels × (B, C_l, H_l, W_l)
        bottlenecks = [features[-1] for features in per_encoder]
        if self.semantic is not None:
            bottlenecks = [module(b, mask) for module, b in zip(self.semantic, bottlenecks)]
        skips = [torch.cat(level, dim=1) for level in zip(*per_encoder)]  # per level: (B, branches·C_l, H_l, W_l)
        out = self.decoder(torch.cat(bottlenecks, dim=1), skips, x)  # (B, 3, H, W)
        # with a prior the network predicts the correction to the prior's face; without one, the image itself
        out = torch.tanh(out) if prior is None else prior + out
        side = image.shape[-1]
        trust = None  # the prior's trust in the frame being an aligned face (B,), where it is fitted
        if fitted is not None:
            span = config.prior_residual_none - config.prior_residual_full
            trust = ((config.prior_residual_none - fitted[1]) / span).clamp(0.0, 1.0)  # (B,)
        if config.prior_blend and (trust.is_meta or trust.any()):  # else eq. 2 changes nothing
            # the prior's structure deep inside the hole (eq. 2 of models/prior.py); x of eq. 2: the fill in the
            # hole, the photo around it
            out = transfer_structure(self.composite(image, mask, out), fitted[0], mask, config.prior_blend * side,
                                     config.prior_blend_ramp * side, trust, config.prior_detail)
        if self.exemplars is not None:  # a real eye pair's detail deep inside the hole (eqs. 5-6, models/exemplars.py)
            out = self.exemplars.transfer(self.composite(image, mask, out), mask, config.exemplar_detail * side,
                                          config.exemplar_ramp * side, trust, config.exemplar_contrast)
        if config.mirror_detail:  # the mirrored face's detail deep inside the hole (eq. 4 of models/symmetry.py)
            out = transfer_mirror_detail(self.composite(image, mask, out), mask, config.mirror_detail * side,
                                         config.mirror_detail_ramp * side, trust, config.mirror_axis_trust)
        return out

    @property
    def takes_guide(self) -> bool:
        """Whether `generate` takes a guide face (a coarser pass's result) in place of the prior's fit."""
        return self.prior is not None and self.config.prior_input

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
# Small enough to train on a CPU: 128², bottleneck at 16² (the first shipped msl-face).
register_preset(
    "msl-tiny-128",
    MSLConfig(resolution=128, widths=(16, 32, 64, 64), convs_per_level=0, se_reduction=4,
              discriminator_widths=(32, 64, 128, 128)),
)
# The default model's architecture (msl-face v2): a stride-2 stem before the three encoders (levels at 1/2, 1/4 and
# 1/8; attention on the 16² bottleneck), and the gappy-PCA face prior (100 components on a 64² grid) as a second
# input whose face the decoder corrects. 2.4 GFLOPs at 128².
register_preset(
    "msl-prior-128",
    MSLConfig(resolution=128, widths=(16, 32, 64), convs_per_level=0, stem_stride=2, prior_components=100,
              discriminator_widths=(32, 64, 128, 128)),
)
