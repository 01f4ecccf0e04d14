"""Training the two-stage model (`TwoStageInpainter`), one stage per run, with the same loop as MSL (`trainer.py`);
the paper's settings of each stage are in configs/twostage-stage1.yaml and configs/twostage-stage2.yaml.

Stage 1, `StructureTask` (paper section 3.2): the pSp encoder learns W+ codes for the frozen StyleGAN2 generator,
    L_S = L2 + 0.8 LPIPS + 0.1 L_ID + 6 L_hole + L_valid          on the raw stage-1 image; Adam, lr 1e-3, batch 2.
The generator comes from --stylegan-weights (its architecture replaces the preset's) or, without it, is a random
generator, which stays frozen: stage 1 then only exercises the pipeline. ArcFace (--id-weights) also initialises the
encoder's IR-SE body when the shapes match, as pSp does.

Stage 2, `TextureTask` (paper section 4.4): the texture generator on top of the frozen structure stage of
--stage1-checkpoint (a stage-1 run's `final` folder, loaded strictly: the whole model continues from there),
    L_T = 10 L_perc + L_adv + 100 L1,   critic: WGAN-GP          Adam, lr 1e-4 × 0.96 every 100k steps, batch 1.
L1 and L_perc are taken on the raw refined image, the critic sees the composited one.

In each stage only that stage's modules are handed to Accelerate (and hence to DistributedDataParallel) and have
gradients; the rest of the model is frozen. The EMA follows the whole model, and the whole model is saved, so a
stage-1 `final` folder loads with `TwoStageInpainter.from_pretrained` (its texture stage untrained).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn

from ..losses import IdentityLoss, PerceptualL2Loss, StructureLoss, StructureLossWeights, l1_loss
from ..metrics import LPIPS
from ..models.arcface import ArcFaceIRSE
from ..hub import load_state_dict_strict
from ..models.stylegan2_weights import load_stylegan2
from ..models.twostage import StructureReconstructor, TwoStageConfig, TwoStageInpainter
from ..models.vgg import load_vgg16
from .config import TrainConfig
from .steps import adversarial_step, set_learning_rate, update
from .task import BaseTask, GANTask

_LICENCE = "These weights are the EMA model. They inherit the licence terms of the training data"


class StructureOnly(nn.Module):
    """The stage-1 inpainting: the structure reconstructor's image inside the hole, the input outside it.

    Args:
        structure: The structure reconstructor.
    """

    def __init__(self, structure: StructureReconstructor) -> None:
        super().__init__()
        self.structure = structure

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, R, R) in [-1, 1]; mask: (B, 1, R, R), 1 = hole. Returns (B, 3, R, R)."""
        return mask * self.structure(image, mask).clamp(-1.0, 1.0) + (1.0 - mask) * image


class StructureTask(BaseTask):
    """Stage 1: train the pSp encoder with L_S against the frozen StyleGAN2 generator (a `task.Task`).

    Args:
        config: The training settings (`stage` = 1).
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "square"
    discriminator = None

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        super().__init__(config, accelerator)
        device, weights = accelerator.device, config.structure
        lpips = None
        if weights.w_lpips > 0:
            lpips = LPIPS(load_vgg16(config.vgg_weights, config.vgg_normalization), config.lpips_weights).to(device)
        self.arcface = ArcFaceIRSE.from_file(config.id_weights) if weights.w_id > 0 else None
        if self.arcface is None:
            accelerator.print("stage 1: identity loss off (--w-id 0), training without ArcFace weights")
        identity = IdentityLoss(self.arcface).to(device) if self.arcface is not None else None
        terms = StructureLossWeights(weights.w_l2, weights.w_lpips, weights.w_id, weights.w_hole, weights.w_valid)
        self.loss = StructureLoss(terms, lpips, identity)

    def build(self, architecture: TwoStageConfig) -> TwoStageInpainter:
        """The model with the pretrained (or random) generator; only the pSp encoder is trainable."""
        print_ = self.accelerator.print
        state = None
        if self.config.stylegan_weights:
            generator_config, state = load_stylegan2(self.config.stylegan_weights)
            if generator_config != architecture.stylegan:
                print_(f"stage 1: StyleGAN2 architecture from {self.config.stylegan_weights}: {generator_config}")
            architecture = architecture.with_stylegan(generator_config)
        self.model = TwoStageInpainter(architecture)
        structure = self.model.structure
        if state is not None:
            load_state_dict_strict(structure.generator, state, self.config.stylegan_weights)
            self.generator_source = f"pretrained weights `{self.config.stylegan_weights}` (frozen)"
        else:
            structure.generator.latent_avg.copy_(structure.generator.mean_latent())
            self.generator_source = "randomly initialised and frozen (no pretrained weights were given)"
            print_(
                "WARNING stage 1: no --stylegan-weights, so the structure stage trains against a randomly initialised, "
                "frozen StyleGAN2 generator. It cannot learn to draw faces; use this only to check the pipeline."
            )
        if self.arcface is not None:
            self._init_encoder_body()
        self.model.requires_grad_(False).to(self.accelerator.device)  # the frozen parts are not prepared
        structure.encoder.requires_grad_(True)
        self.optimizer = torch.optim.Adam(structure.encoder.parameters(), lr=self.config.lr_g, betas=(self.config.beta1, 0.999))
        return self.model

    def _init_encoder_body(self) -> None:
        """pSp starts its encoder's IR-SE body from the ArcFace weights (the 4-channel stem stays random)."""
        body = {k[len("body.") :]: v for k, v in self.arcface.state_dict().items() if k.startswith("body.")}
        target = self.model.structure.encoder.body
        if {k: v.shape for k, v in target.state_dict().items()} == {k: v.shape for k, v in body.items()}:
            target.load_state_dict(body)
            self.accelerator.print("stage 1: pSp encoder body initialised from the ArcFace IR-SE weights")
        else:
            self.accelerator.print("stage 1: the ArcFace body does not fit this encoder's widths; encoder starts random")

    def prepare(self) -> tuple[nn.Module, ...]:
        """Hand the structure stage (only its encoder has gradients) and its optimizer to Accelerate."""
        self.structure, self.optimizer = self.accelerator.prepare(self.model.structure, self.optimizer)
        return (self.structure,)

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One update of the encoder on L_S; returns "loss/g" (L_S) and its terms."""
        set_learning_rate(self.optimizer, self.config.lr_g)
        with self.accelerator.autocast():
            terms = self.loss(self.structure(images, hole), images, hole)
        total = terms.pop("total")
        update(self.accelerator, self.optimizer, total, step, self.config.output_dir, loss_total=total, **terms)
        return {"loss/g": total, **{f"loss/{name}": value for name, value in terms.items()}}

    def inference_model(self, model: TwoStageInpainter) -> nn.Module:
        """Validation and samples show the stage-1 inpainting."""
        return StructureOnly(model.structure)

    def training_section(self, state: dict[str, Any]) -> str:
        config, weights = self.config, self.config.structure
        identity = f"identity (ArcFace `{config.id_weights}`) ×{weights.w_id}" if weights.w_id else "no identity loss"
        return (
            f"Stage 1 (structure reconstructor) trained with `train.py --stage 1` {self.trained_on(state)}. StyleGAN2 "
            f"generator: {self.generator_source}. Losses: L2 ×{weights.w_l2}, LPIPS "
            f"×{weights.w_lpips}, {identity}, L1 hole ×{weights.w_hole}, L1 valid ×{weights.w_valid}. The texture stage "
            f"is untrained: train it with `--stage 2 --stage1-checkpoint` on this folder. {_LICENCE}."
        )


class TextureTask(GANTask):
    """Stage 2: train the texture generator (L_T, WGAN-GP critic) on top of the frozen structure stage.

    Args:
        config: The training settings (`stage` = 2).
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "square"

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        super().__init__(config, accelerator)
        self.perceptual = PerceptualL2Loss(load_vgg16(config.vgg_weights, config.vgg_normalization)).to(accelerator.device)

    def build(self, architecture: TwoStageConfig) -> TwoStageInpainter:
        """The model (from the stage-1 checkpoint when it has a structure stage), its critic and optimizers."""
        if self.config.stage1_checkpoint:
            model = TwoStageInpainter.from_pretrained(self.config.stage1_checkpoint)
            _check_same_architecture(model.config, architecture, self.config.stage1_checkpoint)
        else:
            model = TwoStageInpainter(architecture)
        model.requires_grad_(False).to(self.accelerator.device)  # the frozen parts are not prepared
        model.texture.requires_grad_(True).train()
        if model.structure is not None:
            model.structure.eval()  # frozen: its BatchNorm keeps the stage-1 statistics
        return self.setup(model, trained=model.texture)

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One critic step then one texture-generator step on L_T; returns the losses and the learning rate."""
        config, weights = self.config, self.config.texture
        # Step decay, a pure function of the step so that a resumed run continues the schedule.
        decay = config.lr_decay ** (step // config.lr_decay_every)
        with torch.no_grad():
            coarse = self.model.coarse(images, hole)  # (B, 3, R, R): frozen stage 1 composited into the known pixels
        refined = self.generator(coarse, hole)  # (B, 3, R, R), raw
        fake = hole * refined + (1.0 - hole) * images  # what the critic sees

        # The interpolation weights come from an rng seeded by (seed, step, process), not from the global one,
        # which a resumed run's new DataLoader iterator has advanced: resuming then reproduces the losses exactly.
        seed = np.random.SeedSequence([config.seed, step, self.accelerator.process_index]).generate_state(1)[0]
        rng = torch.Generator(images.device).manual_seed(int(seed))

        def losses() -> dict[str, torch.Tensor]:  # L1 and L_perc on the raw refined image
            return {"l1": l1_loss(refined, images), "perc": self.perceptual(refined, images)}

        logged = adversarial_step(
            self.accelerator, self.discriminator, self.opt_g, self.opt_d, images, fake, hole, losses,
            {"l1": weights.w_tex_l1, "perc": weights.w_tex_perc, "adv": weights.w_tex_adv}, "wgan-gp", config.w_gp,
            (config.lr_g * decay, config.lr_d * decay), step, config.output_dir, rng,
        )
        return {**logged, "lr/g": torch.tensor(config.lr_g * decay, device=images.device)}

    def inference_model(self, model: TwoStageInpainter) -> nn.Module:
        """Validation and samples show the full two-stage inpainting."""
        return model

    def training_section(self, state: dict[str, Any]) -> str:
        config, weights = self.config, self.config.texture
        start = (
            f"on top of the stage-1 checkpoint `{config.stage1_checkpoint}` (structure stage frozen)"
            if config.stage1_checkpoint
            else "without a structure stage (the paper's variant 1)"
        )
        return (
            f"Stage 2 (texture generator) trained with `train.py --stage 2` {self.trained_on(state)}, {start}. Losses: L1 ×{weights.w_tex_l1}, perceptual ×{weights.w_tex_perc}, WGAN-GP "
            f"×{weights.w_tex_adv} (gradient penalty ×{config.w_gp}); learning rate {config.lr_g} × "
            f"{config.lr_decay} every {config.lr_decay_every} steps. {_LICENCE}."
        )


def _check_same_architecture(loaded: TwoStageConfig, preset: TwoStageConfig, source: str) -> None:
    """The stage-1 checkpoint must be the preset's architecture (its StyleGAN2 may come from a weights file)."""
    differing = [
        f"{f.name}: checkpoint {getattr(loaded, f.name)!r} vs preset {getattr(preset, f.name)!r}"
        for f in dataclasses.fields(TwoStageConfig)
        if not f.name.startswith("stylegan_") and getattr(loaded, f.name) != getattr(preset, f.name)
    ]
    if differing:
        raise ValueError(f"--stage1-checkpoint {source} is not the --model architecture: " + "; ".join(differing))
