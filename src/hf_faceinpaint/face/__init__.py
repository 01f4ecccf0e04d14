"""The face stages a pipeline composes around a network (`pipeline.FaceInpaintPipeline`): the aligned frame's
geometry, the framer, the draft and the detail stages. Interfaces in `base`; importing this package registers every
implementation by class name."""

from .base import DetailStage, Draft, FaceDraft, FaceFramer
from .draft import GappyPCADraft, GappyPCADraftConfig
from .exemplars import ExemplarConfig, ExemplarDetail
from .framing import CascadeFramer, CascadeFramerConfig
from .structure import StructureConfig, StructureTransfer
from .symmetry import MirrorConfig, MirrorDetail

__all__ = [
    "CascadeFramer",
    "CascadeFramerConfig",
    "DetailStage",
    "Draft",
    "ExemplarConfig",
    "ExemplarDetail",
    "FaceDraft",
    "FaceFramer",
    "GappyPCADraft",
    "GappyPCADraftConfig",
    "MirrorConfig",
    "MirrorDetail",
    "StructureConfig",
    "StructureTransfer",
]
