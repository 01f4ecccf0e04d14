"""Model families (one file each), the classic OpenCV baselines, and the preset registry."""

from .classic import ClassicInpainter
from .discriminator import PatchDiscriminator
from ..hub import CheckpointError
from .msl import MSLConfig, MSLInpainter
from .registry import DEFAULT_MODEL, from_preset, list_presets, load_model, load_pretrained, preset_config
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator
from .stylegan2_weights import load_stylegan2, load_stylegan2_generator, save_stylegan2
from .twostage import TwoStageConfig, TwoStageInpainter

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "ClassicInpainter",
    "MSLConfig",
    "MSLInpainter",
    "PatchDiscriminator",
    "StyleGAN2Config",
    "StyleGAN2Generator",
    "TwoStageConfig",
    "TwoStageInpainter",
    "from_preset",
    "list_presets",
    "load_model",
    "load_pretrained",
    "load_stylegan2",
    "load_stylegan2_generator",
    "preset_config",
    "save_stylegan2",
]
