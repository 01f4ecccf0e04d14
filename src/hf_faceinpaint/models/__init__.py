"""Model families (one file each), the classic OpenCV baselines, and the preset registry."""

from .classic import ClassicInpainter
from .discriminator import PatchDiscriminator
from .hub import CheckpointError
from .msl import MSLConfig, MSLInpainter
from .registry import DEFAULT_MODEL, list_presets, load_model, load_pretrained, preset_config

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "ClassicInpainter",
    "MSLConfig",
    "MSLInpainter",
    "PatchDiscriminator",
    "list_presets",
    "load_model",
    "load_pretrained",
    "preset_config",
]
