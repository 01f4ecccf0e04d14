"""The update every task's step is made of: the divergence guards (NaN losses; losses far above their running median;
NaN or exploded weights), one optimizer update, the discriminator (critic) update, and the adversarial step shared by
the tasks that train a generator against a discriminator."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch import nn

from ..losses import discriminator_loss, generator_loss, gradient_penalty, interpolate
from .checkpoint import list_checkpoints


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN, infinite or far out of range; training stopped without saving it."""


def check_finite(accelerator: Accelerator, step: int, output_dir: str, **losses: torch.Tensor) -> None:
    """Stop every process when any process has a non-finite loss, naming the losses and the last good checkpoint."""
    bad = torch.tensor([float(not torch.isfinite(v).all()) for v in losses.values()], device=accelerator.device)
    bad = accelerator.reduce(bad, reduction="sum")
    if bad.any():
        names = ", ".join(name for name, flag in zip(losses, bad.tolist()) if flag)
        raise TrainingDiverged(f"non-finite loss ({names}) at step {step}; stopped before applying it. "
                               f"{last_good(output_dir)}")


def last_good(output_dir: str) -> str:
    """The end of a divergence message: the checkpoint to go back to."""
    found = list_checkpoints(output_dir)
    last = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was written yet"
    return f"{last} (resume it with --resume latest, e.g. with a lower learning rate)"


def check_weights(accelerator: Accelerator, step: int, output_dir: str, max_weight: float,
                  **modules: nn.Module | None) -> None:
    """Stop every process when a model has diverged, naming the tensors and the last good checkpoint: a parameter or
    buffer of `modules` NaN or infinite (BatchNorm running statistics included, which a huge learning rate can make
    infinite while every loss stays finite), or a trained parameter (requires_grad) larger in magnitude than
    `max_weight` (0: no limit), which a too high learning rate reaches while everything stays finite. Called on
    every log step and before each checkpoint and the final save, so that a diverged model is never saved."""
    bad = [problem for name, module in modules.items() if module is not None
           for problem in _weight_problems(name, module, max_weight)]
    if not accelerator.reduce(torch.tensor(float(len(bad)), device=accelerator.device), reduction="sum").item():
        return
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "") if bad else "on another process"
    raise TrainingDiverged(f"diverged weights at step {step} ({shown}); nothing was saved. {last_good(output_dir)}")


def _weight_problems(name: str, module: nn.Module, max_weight: float) -> list[str]:
    """"NAME.KEY is not finite" or "NAME.KEY reaches |w| = ..." for each bad tensor of `module`."""
    trained = {key for key, param in module.named_parameters() if param.requires_grad}
    tensors = {key: value for key, value in module.state_dict().items() if value.is_floating_point() and value.numel()}
    # the largest magnitude of each tensor (NaN or inf where one of its values is), read back in one transfer
    peaks = torch.stack([value.detach().abs().max().float() for value in tensors.values()]).tolist() if tensors else []
    problems = []
    for key, peak in zip(tensors, peaks):
        if not math.isfinite(peak):
            problems.append(f"{name}.{key} is not finite")
        elif max_weight and key in trained and peak > max_weight:
            problems.append(f"{name}.{key} reaches |w| = {peak:.3g} > {max_weight:g}")
    return problems


class LossWatch:
    """Stops training when a loss leaves its usual range while still finite: its magnitude above `factor` times the
    median magnitude of its last `window` values (and above 1, so that terms near zero do not count), once it has
    `warmup` values. The losses are averaged over the processes first, so every process decides alike.

    Args:
        factor: The multiple of the running median that stops training (0: never).
        window: How many recent values the median is taken over.
        warmup: How many values a loss needs before it is judged.
    """

    def __init__(self, factor: float, window: int = 100, warmup: int = 20) -> None:
        self.factor, self.window, self.warmup = factor, window, warmup
        self.history: dict[str, deque[float]] = {}

    def check(self, accelerator: Accelerator, step: int, output_dir: str, losses: dict[str, torch.Tensor]) -> None:
        """Judge this step's `losses` by name (then add them to the history); raises `TrainingDiverged`."""
        if not self.factor or not losses:
            return
        values = torch.stack([value.detach().float().reshape(()) for value in losses.values()])
        values = accelerator.reduce(values, reduction="mean").abs().tolist()
        for name, value in zip(losses, values):
            recent = self.history.setdefault(name, deque(maxlen=self.window))
            if len(recent) >= self.warmup and value > max(self.factor * statistics.median(recent), 1.0):
                raise TrainingDiverged(
                    f"{name} left its range at step {step}: {value:.3g}, over {self.factor:g} times its running "
                    f"median {statistics.median(recent):.3g}; stopped before saving. {last_good(output_dir)}"
                )
            recent.append(value)


def update(
    accelerator: Accelerator, optimizer: torch.optim.Optimizer, loss: torch.Tensor, step: int, output_dir: str,
    **terms: torch.Tensor,
) -> None:
    """One optimizer update on `loss`: the NaN guard on `terms` (the loss and its parts), backward, step, zero_grad."""
    check_finite(accelerator, step, output_dir, **terms)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Set every parameter group's rate: the configured one applies also after resuming a checkpoint saved with
    another (a curriculum's next phase), and schedules stay pure functions of the step."""
    for group in optimizer.param_groups:
        group["lr"] = rate


def discriminator_step(
    accelerator: Accelerator,
    discriminator: torch.nn.Module,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    fake: torch.Tensor,
    hole: torch.Tensor,
    kind: str,
    w_gp: float,
    step: int,
    output_dir: str,
    rng: torch.Generator | None = None,
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
        rng: Random generator of the WGAN-GP interpolation weights (default: torch's global one).

    Returns:
        D's loss.
    """
    if kind == "wgan-gp":
        mixed = interpolate(images, fake, rng)
        logits = discriminator(torch.cat([images, fake.detach(), mixed]), hole.repeat(3, 1, 1, 1))
        real_logits, fake_logits, mixed_logits = logits.chunk(3)
        d_loss = discriminator_loss("wgan-gp", real_logits, fake_logits)
        d_loss = d_loss + w_gp * gradient_penalty(mixed_logits, mixed)
    else:
        real_logits, fake_logits = discriminator(torch.cat([images, fake.detach()]), hole.repeat(2, 1, 1, 1)).chunk(2)
        d_loss = discriminator_loss(kind, real_logits, fake_logits)
    update(accelerator, opt_d, d_loss, step, output_dir, d_loss=d_loss)
    return d_loss


def adversarial_step(
    accelerator: Accelerator,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    fake: torch.Tensor,
    hole: torch.Tensor,
    other_losses: Callable[[], dict[str, torch.Tensor]],
    weights: dict[str, float],
    kind: str,
    w_gp: float,
    rates: tuple[float, float],
    step: int,
    output_dir: str,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One discriminator step, then one generator step on Σ weights[name] · loss[name], D frozen.

    Args:
        accelerator: The `Accelerator` everything was prepared with.
        discriminator: The prepared discriminator, taking (image, mask).
        opt_g: The prepared optimizer of the trained generator (which produced `fake`).
        opt_d: The discriminator's prepared optimizer.
        images: Real faces, (B, 3, R, R) in [-1, 1].
        fake: The composited outputs, (B, 3, R, R), with their graph to the generator.
        hole: Masks, (B, 1, R, R), 1 = hole.
        other_losses: The generator's non-adversarial losses by name, computed under autocast.
        weights: The weight of each of those losses and of "adv", the adversarial one; "adv" = 0 also skips D's step.
        kind: The adversarial loss, "nsgan", "hinge" or "wgan-gp".
        w_gp: Gradient-penalty weight (WGAN-GP only).
        rates: The learning rates of the generator and the discriminator for this step.
        step: The optimizer step, for the NaN guard's message.
        output_dir: The run's folder, for the NaN guard's message.
        rng: Random generator of the WGAN-GP interpolation weights (default: torch's global one).

    Returns:
        The losses of this micro-step, keyed for logging: "loss/d", "loss/g" and "loss/NAME" for each term.
    """
    set_learning_rate(opt_g, rates[0])
    set_learning_rate(opt_d, rates[1])
    zero = fake.new_zeros(())
    d_loss = zero
    if weights["adv"] > 0:
        d_loss = discriminator_step(
            accelerator, discriminator, opt_d, images, fake, hole, kind, w_gp, step, output_dir, rng
        )
    # D is frozen and called outside DDP, so no D gradient is computed or synchronised
    plain_discriminator = accelerator.unwrap_model(discriminator)
    plain_discriminator.requires_grad_(False)
    with accelerator.autocast():
        adv = generator_loss(kind, plain_discriminator(fake, hole)) if weights["adv"] > 0 else zero
        terms = {**other_losses(), "adv": adv}
    plain_discriminator.requires_grad_(True)
    g_loss = sum(weights[name] * value for name, value in terms.items())
    update(accelerator, opt_g, g_loss, step, output_dir, g_loss=g_loss, **terms)
    return {"loss/d": d_loss, "loss/g": g_loss, **{f"loss/{name}": value for name, value in terms.items()}}
