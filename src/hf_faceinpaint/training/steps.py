"""Pieces shared by every model family's training step: the NaN guard and the discriminator (critic) update."""

from __future__ import annotations

import torch

from ..losses import discriminator_loss, gradient_penalty, interpolate
from .checkpoint import list_checkpoints


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; training stopped before applying the bad update."""


def check_finite(accelerator, step: int, output_dir: str, **losses: torch.Tensor) -> None:
    """Stop every process when any process has a non-finite loss, naming the losses and the last good checkpoint."""
    bad = torch.tensor([float(not torch.isfinite(v).all()) for v in losses.values()], device=accelerator.device)
    bad = accelerator.reduce(bad, reduction="sum")
    if bad.any():
        names = ", ".join(name for name, flag in zip(losses, bad.tolist()) if flag)
        found = list_checkpoints(output_dir)
        last = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"non-finite loss ({names}) at step {step}; stopped before applying it. {last} "
            "(resume it with --resume latest, e.g. with a lower learning rate)"
        )


def discriminator_step(
    accelerator,
    discriminator: torch.nn.Module,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    fake: torch.Tensor,
    hole: torch.Tensor,
    kind: str,
    w_gp: float,
    step: int,
    output_dir: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One update of D on real vs. detached fake images, in one forward (one DDP forward per backward).

    Args:
        accelerator: The `Accelerator` D and its optimizer were prepared with.
        discriminator: The prepared discriminator, taking (image, mask).
        opt_d: Its prepared optimizer.
        images: Real faces, (B, 3, R, R) in [-1, 1].
        fake: Composited outputs, (B, 3, R, R); detached here.
        hole: Masks, (B, 1, R, R), 1 = hole.
        kind: "nsgan", "hinge" or "wgan-gp" (the critic loss plus the gradient penalty on interpolates).
        w_gp: Gradient-penalty weight (WGAN-GP only).
        step: The optimizer step, for the NaN guard's message.
        output_dir: The run's folder, for the NaN guard's message.
        generator: Random generator for the WGAN-GP interpolation weights (default: torch's global one).

    Returns:
        D's loss.
    """
    if kind == "wgan-gp":
        mixed = interpolate(images, fake, generator)
        logits = discriminator(torch.cat([images, fake.detach(), mixed]), hole.repeat(3, 1, 1, 1))
        real_logits, fake_logits, mixed_logits = logits.chunk(3)
        d_loss = discriminator_loss("wgan-gp", real_logits, fake_logits)
        d_loss = d_loss + w_gp * gradient_penalty(mixed_logits, mixed)
    else:
        real_logits, fake_logits = discriminator(torch.cat([images, fake.detach()]), hole.repeat(2, 1, 1, 1)).chunk(2)
        d_loss = discriminator_loss(kind, real_logits, fake_logits)
    check_finite(accelerator, step, output_dir, d_loss=d_loss)
    accelerator.backward(d_loss)
    opt_d.step()
    opt_d.zero_grad(set_to_none=True)
    return d_loss
