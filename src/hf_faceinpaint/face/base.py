"""The face stages' interfaces: what the pipeline (`pipeline.FaceInpaintPipeline`) composes around a network.

- `FaceFramer`: finds the aligned frame of the face a hole lies on (`face/framing.py`).
- `FaceDraft`: draws a face from the known pixels of an aligned frame and says how much to trust it (`face/draft.py`:
  gappy PCA and its refiner; the seam where a learned generator, or the two-stage paper's pSp + StyleGAN2, plugs in).
- `DetailStage`: changes a composited fill inside its hole, given the draft (`face/structure.py`, eq. 2;
  `face/exemplars.py`, eqs. 5-6; `face/symmetry.py`, eqs. 3-4).

All work on frames in float32, without autocast: the pipeline decides the network's precision, and the stages' least
squares, correlations and blurs need float32. Every stage changes only hole pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..components import Component


@dataclass
class Draft:
    """A face drawn into a frame.

    Args:
        face: (B, 3, S, S) in [-1, 1], over the whole frame (the known pixels are not copied in).
        trust: (B,) in [0, 1]: how far the frame is an aligned face the draft fits (0: it is not one; stages that
            need a face do nothing there).
    """

    face: torch.Tensor
    trust: torch.Tensor


class FaceDraft(Component):
    """Draws a face into frames from their known pixels: `forward(image, mask) -> Draft`.

    image: (B, 3, S, S) in [-1, 1]; mask: (B, 1, S, S), 1 = hole.
    """

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Draft:
        raise NotImplementedError


class DetailStage(Component):
    """Changes a composited fill inside its hole: `forward(filled, mask, draft) -> filled`.

    filled: (B, 3, S, S) in [-1, 1], the fill inside the hole and the photo around it; mask: (B, 1, S, S), 1 = hole;
    draft: the frame's `Draft`, or None where the pipeline has no draft. Returns (B, 3, S, S), equal to `filled`
    outside the hole.
    """

    def forward(self, filled: torch.Tensor, mask: torch.Tensor, draft: Draft | None) -> torch.Tensor:
        raise NotImplementedError


class FaceFramer(Component):
    """Finds the aligned frame of the face a hole lies on (see `face/framing.py` for the methods)."""
