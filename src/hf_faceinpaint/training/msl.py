"""Training MSL (`MSLInpainter`): the generator against its spectral-norm PatchGAN discriminator. Per micro-step:
  2. generate the composited inpainting  out = m · G(x ⊙ (1 − m), m) + (1 − m) · x;
  3. discriminator step: D learns real from out (eq. 10; out is detached, G gets no gradient here);
  4. generator step: λ_rec L1 + λ_perc perceptual + λ_style style + λ_adv adversarial (eq. 12), D frozen.
(Steps 1 and 5, the batch and the EMA, are the loop's: `trainer.py`.)
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator

from ..losses import PerceptualStyleLoss, l1_loss
from ..models.msl import MSLConfig, MSLInpainter
from ..models.vgg import load_vgg16
from .config import TrainConfig
from .steps import adversarial_step
from .task import GANTask


def gan_step(
    accelerator: Accelerator,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    perceptual_style: PerceptualStyleLoss,
    images: torch.Tensor,
    hole: torch.Tensor,
    config: TrainConfig,
    step: int,
) -> dict[str, torch.Tensor]:
    """One MSL discriminator step then one generator step on a batch (steps 2-4 of the module docstring).

    Args:
        accelerator: The `Accelerator` the models and optimizers were prepared with.
        generator: The prepared generator.
        discriminator: The prepared discriminator.
        opt_g: The generator's prepared optimizer.
        opt_d: The discriminator's prepared optimizer.
        perceptual_style: The VGG16 perceptual + style loss.
        images: Real faces, (B, 3, R, R) in [-1, 1].
        hole: Masks, (B, 1, R, R), 1 = hole.
        config: Learning rates, loss kind and weights.
        step: The optimizer step, for the NaN guard's message.

    Returns:
        The losses of this micro-step, keyed for logging.
    """
    weights = config.msl
    fake = generator(images, hole)  # 2. the composited inpainting

    def losses() -> dict[str, torch.Tensor]:
        zero = fake.new_zeros(())
        perceptual = weights.w_perc > 0 or weights.w_style > 0  # off in a structure-first phase: no VGG forward
        perc, style = perceptual_style(fake, images) if perceptual else (zero, zero)
        return {"rec": l1_loss(fake, images), "perc": perc, "style": style}

    return adversarial_step(
        accelerator, discriminator, opt_g, opt_d, images, fake, hole, losses,
        {"rec": weights.w_rec, "perc": weights.w_perc, "style": weights.w_style, "adv": weights.w_adv},
        weights.adversarial, config.w_gp, (config.lr_g, config.lr_d), step, config.output_dir,
    )


class MSLTask(GANTask):
    """MSL: one `gan_step` per micro-step (see `task.Task`).

    Args:
        config: The training settings.
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "irregular"  # the MSL paper's Table 1 buckets

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        super().__init__(config, accelerator)
        vgg = load_vgg16(config.vgg_weights, config.vgg_normalization)
        self.perceptual_style = PerceptualStyleLoss(vgg).to(accelerator.device)

    def build(self, architecture: MSLConfig) -> MSLInpainter:
        """The generator, its discriminator and optimizers."""
        model = MSLInpainter(architecture)
        return self.setup(model, trained=model)

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One `gan_step`; returns its losses."""
        return gan_step(
            self.accelerator, self.generator, self.discriminator, self.opt_g, self.opt_d, self.perceptual_style,
            images, hole, self.config, step,
        )

    def inference_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Validation inpaints with the (EMA) generator itself."""
        return model

    def training_section(self, state: dict[str, Any]) -> str:
        """The model card's training paragraph: preset, steps, batch, data and loss weights."""
        weights = self.config.msl
        return (
            f"Trained with `train.py` {self.trained_on(state)}. Losses: L1 ×{weights.w_rec}, perceptual ×{weights.w_perc}, style ×{weights.w_style}, "
            f"{weights.adversarial} ×{weights.w_adv}. These weights are the EMA generator. They inherit the licence "
            "terms of the training data."
        )
