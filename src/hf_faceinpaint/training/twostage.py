"""Training the two-stage model (`TwoStageInpainter`), one stage per run, with the same loop as MSL (`trainer.py`).

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
from torch import nn

from ..losses import (
    IdentityLoss,
    PerceptualL2Loss,
    StructureLoss,
    StructureLossWeights,
    generator_loss,
    l1_loss,
)
from ..metrics import LPIPS
from ..models.arcface import ArcFaceIRSE
from ..models.hub import load_state_dict_strict
from ..models.stylegan2_weights import load_stylegan2
from ..models.twostage import StructureReconstructor, TwoStageConfig, TwoStageInpainter
from ..models.vgg import load_vgg16
from .config import TrainConfig
from .steps import check_finite, discriminator_step

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


class StructureTask:
    """Stage 1: train the pSp encoder with L_S against the frozen StyleGAN2 generator.

    Args:
        config: The training settings (`stage` = 1).
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "square"

    def __init__(self, config: TrainConfig, accelerator) -> None:
        self.config, self.accelerator = config, accelerator
        device = accelerator.device
        lpips = None
        if config.w_lpips > 0:
            lpips = LPIPS(load_vgg16(config.vgg_weights, config.vgg_normalization), config.lpips_weights).to(device)
        self.arcface = ArcFaceIRSE.from_file(config.id_weights) if config.w_id > 0 else None
        if self.arcface is None:
            accelerator.print("stage 1: identity loss off (--w-id 0), training without ArcFace weights")
        identity = IdentityLoss(self.arcface).to(device) if self.arcface is not None else None
        weights = StructureLossWeights(config.w_l2, config.w_lpips, config.w_id, config.w_hole, config.w_valid)
        self.loss = StructureLoss(weights, lpips, identity)

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
        self.structure, self.optimizer = self.accelerator.prepare(self.model.structure, self.optimizer)
        return (self.structure,)

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One update of the encoder on L_S; returns "loss/g" (L_S) and its terms."""
        with self.accelerator.autocast():
            terms = self.loss(self.structure(images, hole), images, hole)
        check_finite(self.accelerator, step, self.config.output_dir, **{f"loss_{k}": v for k, v in terms.items()})
        self.accelerator.backward(terms["total"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss/g": terms.pop("total"), **{f"loss/{name}": value for name, value in terms.items()}}

    def inference_model(self, model: TwoStageInpainter) -> nn.Module:
        """Validation and samples show the stage-1 inpainting."""
        return StructureOnly(model.structure)

    def training_section(self, state: dict[str, Any]) -> str:
        config = self.config
        identity = f"identity (ArcFace `{config.id_weights}`) ×{config.w_id}" if config.w_id > 0 else "no identity loss"
        return (
            f"Stage 1 (structure reconstructor) trained with `train.py --stage 1` from the `{config.model}` preset for "
            f"{state['step']} steps at batch {config.batch_size} × {len(state['positions'])} processes on "
            f"`{config.dataset}`. StyleGAN2 generator: {self.generator_source}. Losses: L2 ×{config.w_l2}, LPIPS "
            f"×{config.w_lpips}, {identity}, L1 hole ×{config.w_hole}, L1 valid ×{config.w_valid}. The texture stage "
            f"is untrained: train it with `--stage 2 --stage1-checkpoint` on this folder. {_LICENCE}."
        )


class TextureTask:
    """Stage 2: train the texture generator (L_T, WGAN-GP critic) on top of the frozen structure stage.

    Args:
        config: The training settings (`stage` = 2).
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "square"

    def __init__(self, config: TrainConfig, accelerator) -> None:
        self.config, self.accelerator = config, accelerator
        self.perceptual = PerceptualL2Loss(load_vgg16(config.vgg_weights, config.vgg_normalization)).to(accelerator.device)

    def build(self, architecture: TwoStageConfig) -> TwoStageInpainter:
        """The model (from the stage-1 checkpoint when it has a structure stage), its critic and optimizers."""
        if self.config.stage1_checkpoint:
            self.model = TwoStageInpainter.from_pretrained(self.config.stage1_checkpoint)
            _check_same_architecture(self.model.config, architecture, self.config.stage1_checkpoint)
        else:
            self.model = TwoStageInpainter(architecture)
        self.model.requires_grad_(False).to(self.accelerator.device)  # the frozen parts are not prepared
        self.model.texture.requires_grad_(True).train()
        if self.model.structure is not None:
            self.model.structure.eval()  # frozen: its BatchNorm keeps the stage-1 statistics
        self.discriminator = self.model.build_discriminator()
        betas = (self.config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.model.texture.parameters(), lr=self.config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr_d, betas=betas)
        return self.model

    def prepare(self) -> tuple[nn.Module, ...]:
        self.texture, self.discriminator, self.opt_g, self.opt_d = self.accelerator.prepare(
            self.model.texture, self.discriminator, self.opt_g, self.opt_d
        )
        return self.texture, self.discriminator

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One critic step then one texture-generator step; returns the losses and the learning rate."""
        config = self.config
        # Step decay, a pure function of the step so that a resumed run continues the schedule.
        decay = config.lr_decay ** (step // config.lr_decay_every)
        for optimizer, base in ((self.opt_g, config.lr_g), (self.opt_d, config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * decay
        with torch.no_grad():
            coarse = self.model.coarse(images, hole)  # (B, 3, R, R): frozen stage 1 composited into the known pixels
        refined = self.texture(coarse, hole)  # (B, 3, R, R), raw
        fake = hole * refined + (1.0 - hole) * images

        # The interpolation weights come from a generator seeded by (seed, step, process), not from the global RNG,
        # which a resumed run's new DataLoader iterator has advanced: resuming then reproduces the losses exactly.
        seed = np.random.SeedSequence([config.seed, step, self.accelerator.process_index]).generate_state(1)[0]
        alphas = torch.Generator(images.device).manual_seed(int(seed))
        d_loss = discriminator_step(
            self.accelerator, self.discriminator, self.opt_d, images, fake, hole, "wgan-gp", config.w_gp, step,
            config.output_dir, alphas,
        )
        # Generator step: the critic is frozen and called outside DDP, as in the MSL step.
        critic = self.accelerator.unwrap_model(self.discriminator)
        critic.requires_grad_(False)
        with self.accelerator.autocast():
            adv = generator_loss("wgan-gp", critic(fake, hole))
            l1 = l1_loss(refined, images)
            perc = self.perceptual(refined, images)
        critic.requires_grad_(True)
        g_loss = config.w_tex_l1 * l1 + config.w_tex_perc * perc + config.w_tex_adv * adv  # L_T
        check_finite(self.accelerator, step, config.output_dir, g_loss=g_loss, l1=l1, perc=perc, adv=adv)
        self.accelerator.backward(g_loss)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        lr = torch.tensor(config.lr_g * decay, device=images.device)
        return {"loss/d": d_loss, "loss/g": g_loss, "loss/l1": l1, "loss/perc": perc, "loss/adv": adv, "lr/g": lr}

    def inference_model(self, model: TwoStageInpainter) -> nn.Module:
        """Validation and samples show the full two-stage inpainting."""
        return model

    def training_section(self, state: dict[str, Any]) -> str:
        config = self.config
        start = (
            f"on top of the stage-1 checkpoint `{config.stage1_checkpoint}` (structure stage frozen)"
            if config.stage1_checkpoint
            else "without a structure stage (the paper's variant 1)"
        )
        return (
            f"Stage 2 (texture generator) trained with `train.py --stage 2` from the `{config.model}` preset {start} "
            f"for {state['step']} steps at batch {config.batch_size} × {len(state['positions'])} processes on "
            f"`{config.dataset}`. Losses: L1 ×{config.w_tex_l1}, perceptual ×{config.w_tex_perc}, WGAN-GP "
            f"×{config.w_tex_adv} (gradient penalty ×{config.w_gp}); learning rate {config.lr_g} × {config.lr_decay} "
            f"every {config.lr_decay_every} steps. {_LICENCE}."
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
