"""hf-faceinpaint: face-image inpainting models on the Hugging Face Hub."""

from .models import (
    DEFAULT_MODEL,
    CheckpointError,
    ClassicInpainter,
    MSLConfig,
    MSLInpainter,
    PatchDiscriminator,
    TwoStageConfig,
    TwoStageInpainter,
    list_presets,
    load_model,
)
from .pipeline import FaceInpaintPipeline, PipelineConfig, inpaint

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "ClassicInpainter",
    "FaceInpaintPipeline",
    "MSLConfig",
    "MSLInpainter",
    "PatchDiscriminator",
    "PipelineConfig",
    "TwoStageConfig",
    "TwoStageInpainter",
    "__version__",
    "inpaint",
    "list_presets",
    "load_model",
]
