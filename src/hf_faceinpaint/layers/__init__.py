"""Building blocks shared by the model families."""

from .channel_attention import ChannelSemanticLearning
from .contextual_attention import ContextualAttention, attention_scores, downsample_mask, transfer
from .gated_conv import GatedConv2d, GatedUpConv2d
from .irse import BottleneckIRSE, SEModule, ir_se_body
from .multilayer_attention import MultiLayerContextualAttention
from .stylegan2 import (
    Blur,
    ConstantInput,
    EqualLinear,
    FusedLeakyReLU,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    StyledConv,
    ToRGB,
    Upsample,
    fused_leaky_relu,
    make_kernel,
    upfirdn2d,
)

__all__ = [
    "Blur",
    "BottleneckIRSE",
    "ChannelSemanticLearning",
    "ConstantInput",
    "ContextualAttention",
    "EqualLinear",
    "FusedLeakyReLU",
    "GatedConv2d",
    "GatedUpConv2d",
    "ModulatedConv2d",
    "MultiLayerContextualAttention",
    "NoiseInjection",
    "PixelNorm",
    "SEModule",
    "StyledConv",
    "ToRGB",
    "Upsample",
    "attention_scores",
    "downsample_mask",
    "fused_leaky_relu",
    "ir_se_body",
    "make_kernel",
    "transfer",
    "upfirdn2d",
]
