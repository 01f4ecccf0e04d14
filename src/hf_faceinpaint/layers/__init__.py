"""Building blocks shared by the model families."""

from .channel_attention import ChannelSemanticLearning
from .contextual_attention import ContextualAttention, attention_scores, downsample_mask, transfer
from .gated_conv import GatedConv2d, GatedUpConv2d

__all__ = [
    "ChannelSemanticLearning",
    "ContextualAttention",
    "GatedConv2d",
    "GatedUpConv2d",
    "attention_scores",
    "downsample_mask",
    "transfer",
]
