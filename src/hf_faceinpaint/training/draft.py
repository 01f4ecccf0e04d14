"""Training the face draft's refiner (`face.draft.GappyPCADraft`): from the gappy-PCA guess to a sharp face. Per
micro-step, on aligned faces at 2S² (S the PCA's grid) with face-mix holes (`--mask-kind face`):
  2. fit the PCA to the known pixels exactly as inference does (eq. 1, float32, no gradient), and let the refiner
     draw the face on the grid (with its fine level, on the twice finer grid, from the known pixels there too); the
     fake is that face inside the hole's cells, the known cells elsewhere;
  3. discriminator step: a spectral-norm patch discriminator learns real faces from fakes (hinge loss);
  4. refiner step: L1 on K×K cell means (`--lowpass`; the hole's cells weighted `--w-draft-hole`, the structure held
     to the truth) + hinge adversarial + the MSL paper's perceptual and style losses (VGG16 pool1-pool3), which
     reward drawn eyes and lips over their blurred posterior mean.
Only the refiner learns; the PCA stays as fitted (`scripts/fit_face_prior.py`). The model the run saves is the whole
draft (PCA and EMA refiner), a `save_pretrained` folder that `scripts/export_shipped_model.py --draft` puts into a
pipeline. (Steps 1 and 5, the batch and the EMA, are the loop's: `trainer.py`.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from ..face.draft import GappyPCADraft, GappyPCADraftConfig
from ..face.filters import known_cells
from ..face.prior import load_fit_file
from ..hub import load_state_dict_strict
from ..losses import PerceptualStyleLoss
from ..models.discriminator import PatchDiscriminator
from ..models.vgg import load_vgg16
from .config import ConfigError, TrainConfig
from .steps import adversarial_step
from .task import GANTask

DISCRIMINATOR_WIDTHS = (64, 128, 256)  # the refiner's patch discriminator: receptive field of a few cells


class DraftInpainter(nn.Module):
    """The draft as an inpainter, for validation: its face inside the hole, the input outside it."""

    def __init__(self, draft: GappyPCADraft) -> None:
        super().__init__()
        self.draft = draft

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, R, R) in [-1, 1]; mask: (B, 1, R, R), 1 = hole. Returns (B, 3, R, R)."""
        return mask * self.draft(image, mask).face + (1.0 - mask) * image


class DraftTask(GANTask):
    """The refiner of a `GappyPCADraft` against a patch discriminator (see the module docstring).

    Args:
        config: The training settings.
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "irregular"

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        super().__init__(config, accelerator)
        weights = config.draft
        self.features = None
        if weights.w_draft_perc or weights.w_draft_style:
            vgg = load_vgg16(config.vgg_weights, config.vgg_normalization)
            self.features = PerceptualStyleLoss(vgg).to(accelerator.device)

    def resolution(self, architecture: GappyPCADraftConfig) -> int:
        """Faces are drawn at twice the PCA's grid (the refiner's fine level), unless --resolution says otherwise."""
        return self.config.resolution or 2 * architecture.size

    def build(self, architecture: GappyPCADraftConfig) -> GappyPCADraft:
        """The draft with its PCA (from --prior-weights, or with the refiner from --init-from), the discriminator and
        the optimizers; only the refiner is trained."""
        draft = GappyPCADraft(architecture)
        if draft.refiner is None:
            raise ConfigError(f"{self.config.model} has no refiner to train (refiner_width 0)")
        if self.config.prior_weights:
            load_fit_file(draft.pca, self.config.prior_weights)
        elif not self.config.init_from:
            raise ConfigError(f"{self.config.model} needs its PCA: pass --prior-weights FILE (scripts/fit_face_prior.py)"
                              " or --init-from a draft or pipeline folder")
        draft.pca.requires_grad_(False)
        return self.setup(draft, trained=draft.refiner,
                          discriminator=PatchDiscriminator(4, DISCRIMINATOR_WIDTHS, spectral_norm=True))

    component = "draft"

    def init_from(self, model: GappyPCADraft, spec: str) -> None:
        """Start from a draft (`task.BaseTask.init_from`), strictly, but for one warm start: a refiner without the
        fine level starts this one's, whose fine level then starts as the grid's face upsampled (`PriorRefiner`)."""
        state = self.init_state(model, spec)
        if model.refiner.fine is not None and not any(key.startswith("refiner.fine") for key in state):
            own = model.state_dict()
            state = {**{key: own[key] for key in own if key.startswith("refiner.fine")}, **state}
        load_state_dict_strict(model, state, spec)

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One discriminator step, then one refiner step (see the module docstring)."""
        draft, weights = self.model, self.config.draft
        pca, side = draft.pca, draft.pca.size * (2 if draft.config.refiner_fine else 1)
        with torch.no_grad():
            guess, cells, share, _ = pca(images, hole)  # (B, 3, S, S) ×2, (B, 1, S, S)
            # the known cells and the target on the output's grid (S, or 2S with the fine level)
            out_cells, out_share = known_cells(images, 1.0 - hole, side) if draft.config.refiner_fine else (cells, share)
            target = F.adaptive_avg_pool2d(images, side)
            fine = (out_cells, out_share) if draft.config.refiner_fine else ()
        missing = 1.0 - out_share  # (B, 1, side, side): the hole's share of each cell
        with self.accelerator.autocast():
            face = self.generator(cells, share, guess, *fine).float()  # (B, 3, side, side)
        fake = out_share * out_cells + missing * face

        def losses() -> dict[str, torch.Tensor]:
            # L1 on K×K cell means: the structure is held to the truth, the finer detail left to the other losses
            error = F.avg_pool2d(face - target, weights.lowpass).abs()  # (B, 3, side/K, side/K)
            pooled = F.avg_pool2d(missing, weights.lowpass)
            terms = {"l1_hole": (error * pooled).sum() / (3 * pooled.sum()).clamp_min(1.0), "l1": error.mean()}
            zero = fake.new_zeros(())
            terms["perc"], terms["style"] = (zero, zero) if self.features is None else self.features(fake, target)
            return terms

        return adversarial_step(
            self.accelerator, self.discriminator, self.opt_g, self.opt_d, target, fake, missing, losses,
            {"l1_hole": weights.w_draft_hole, "l1": 1.0, "perc": weights.w_draft_perc, "style": weights.w_draft_style,
             "adv": weights.w_draft_adv},
            "hinge", self.config.w_gp, (self.config.lr_g, self.config.lr_d), step, self.config.output_dir,
        )

    def inference_model(self, model: GappyPCADraft) -> nn.Module:
        """Validation inpaints with the draft alone."""
        return DraftInpainter(model)

    def training_section(self, state: dict[str, Any]) -> str:
        """The model card's training paragraph."""
        weights = self.config.draft
        return (
            f"The refiner of a gappy-PCA face draft, trained with `train.py` {self.trained_on(state)}. Losses: L1 on {weights.lowpass}×{weights.lowpass} cell means (hole ×"
            f"{weights.w_draft_hole}), hinge adversarial ×{weights.w_draft_adv}, perceptual ×{weights.w_draft_perc}, "
            f"style ×{weights.w_draft_style}. These weights are the EMA model. They inherit the licence terms of the "
            "training data."
        )

