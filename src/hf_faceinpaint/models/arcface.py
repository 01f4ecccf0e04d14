"""ArcFace IR-SE-50 face-recognition network (Deng et al., CVPR 2019) for the identity loss of the structure stage,
in the layout of TreB1eN's InsightFace_Pytorch `Backbone(112, 50, mode="ir_se")`, i.e. of pSp's `model_ir_se50.pth`:
`input_layer.*`, `body.{i}.*` and `output_layer.{0,3,4}.*`. The weights are supplied by the user (never downloaded);
`ArcFaceIRSE.from_file` reads the architecture (widths, units per stage, embedding size) from the file itself.
"""

from __future__ import annotations

import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.irse import ir_se_body
from ..hub import CheckpointError, load_state_dict_strict, read_state_dict

INPUT_SIZE = 112  # ArcFace's aligned face crops are 112×112; the body reduces them 16× to 7×7


class ArcFaceIRSE(nn.Module):
    """IR-SE backbone with ArcFace's embedding head; returns unit-length embeddings.

    Args:
        widths: Channels of the four stages (IR-SE-50: 64, 128, 256, 512).
        units: Units per stage (IR-SE-50: 3, 4, 14, 3).
        embedding: Embedding size (512).
    """

    def __init__(
        self, widths: tuple[int, ...] = (64, 128, 256, 512), units: tuple[int, ...] = (3, 4, 14, 3), embedding: int = 512
    ) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])
        )
        self.body = ir_se_body(tuple(widths), tuple(units))
        side = INPUT_SIZE // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.Dropout(0.6),
            nn.Flatten(),
            nn.Linear(widths[-1] * side * side, embedding),
            nn.BatchNorm1d(embedding),
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """faces: aligned crops (B, 3, 112, 112), RGB in [-1, 1]. Returns (B, embedding), L2-normalised."""
        return F.normalize(self.output_layer(self.body(self.input_layer(faces))), dim=1)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ArcFaceIRSE":
        """Load a state dict from `.pth`/`.pt` (read with weights_only=True) or `.safetensors`, strictly.

        Checkpoints saved before PyTorch 0.4.1 (pSp's `model_ir_se50.pth`) have no BatchNorm `num_batches_tracked`
        counters; they are added as zeros (they only matter when training with momentum=None).

        Raises:
            CheckpointError: The file is missing, unreadable, or not an IR-SE ArcFace state dict.
        """
        state = read_state_dict(path, "ArcFace weights")
        model = cls(*_architecture(state, str(path)))
        for key in model.state_dict():
            if key.endswith("num_batches_tracked") and key not in state:
                state[key] = torch.zeros((), dtype=torch.long)
        load_state_dict_strict(model, state, str(path))
        return model.eval()


def _architecture(state: dict[str, torch.Tensor], source: str) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(widths, units, embedding) of an IR-SE ArcFace state dict. Strides are not stored, so a stage is a run of
    units of one width (consecutive IR-SE stages always differ in width)."""
    indices = sorted(int(m.group(1)) for key in state if (m := re.fullmatch(r"body\.(\d+)\.res_layer\.1\.weight", key)))
    if not indices or indices != list(range(len(indices))) or "output_layer.3.weight" not in state:
        raise CheckpointError(f"{source} is not an IR-SE ArcFace state dict (no body.N.res_layer / output_layer keys)")
    widths: list[int] = []
    units: list[int] = []
    for index in indices:
        depth = state[f"body.{index}.res_layer.1.weight"].shape[0]
        if widths and depth == widths[-1]:
            units[-1] += 1
        else:
            widths.append(depth)
            units.append(1)
    if len(widths) != 4:
        raise CheckpointError(f"{source}: expected four IR-SE stages, found widths {widths}")
    return tuple(widths), tuple(units), state["output_layer.3.weight"].shape[0]
