"""Training losses (MSL paper section 2.2, eqs. 7-12; WGAN-GP for the two-stage model).

    L_total = λ_perc L_perc + λ_style L_style + λ_adv L_adv + λ_rec L_rec          (12)
with the paper's defaults λ_perc = 0.05, λ_style = 120, λ_rec = 1, λ_adv = 0.1.
All image arguments are (B, 3, H, W) in [-1, 1]; masks are (B, 1, H, W) with 1 = hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL_KINDS = ("nsgan", "hinge", "wgan-gp")


@dataclass
class LossWeights:
    """Weights of eq. 12 (the paper's values are the defaults).

    Args:
        rec: λ_rec, L1 reconstruction.
        perc: λ_perc, VGG16 perceptual loss.
        style: λ_style, Gram-matrix style loss.
        adv: λ_adv, adversarial loss of the generator.
        gp: Gradient-penalty weight (WGAN-GP only; 10 as in Gulrajani et al.).
    """

    rec: float = 1.0
    perc: float = 0.05
    style: float = 120.0
    adv: float = 0.1
    gp: float = 10.0


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 11: mean absolute error."""
    return (pred - target).abs().mean()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Eq. 8: φ φᵀ normalised by C·H·W, so the style loss does not grow with the layer size. (B, C, H, W) -> (B, C, C)."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width).float()  # Gram in fp32, even under autocast
    return torch.bmm(flat, flat.transpose(1, 2)) / (channels * height * width)


class PerceptualStyleLoss(nn.Module):
    """Perceptual (eq. 7) and style (eqs. 8-9) losses on VGG16 pool1-pool3 activations.

    Args:
        vgg: A frozen VGG16 feature extractor taking RGB in [-1, 1] and returning the activations at `taps`.
        taps: The tap points; the paper uses pool1, pool2 and pool3.
    """

    def __init__(self, vgg: nn.Module, taps: tuple[str, ...] = ("pool1", "pool2", "pool3")) -> None:
        super().__init__()
        self.vgg, self.taps = vgg, taps
        self.vgg.requires_grad_(False).eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (L_perc, L_style): per-layer mean L1 distances, summed over the taps."""
        with torch.no_grad():
            target_features = self.vgg(target, taps=self.taps)
        pred_features = self.vgg(pred, taps=self.taps)
        perceptual = sum(l1_loss(p, t) for p, t in zip(pred_features, target_features))
        style = sum(l1_loss(gram_matrix(p), gram_matrix(t)) for p, t in zip(pred_features, target_features))
        return perceptual, style


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's side of eq. 10 and its variants.

    Args:
        kind: "nsgan" (the paper's log-loss: -log D(x) - log(1 - D(G(z))), with logits), "hinge", or "wgan-gp"
            (the critic's E[D(fake)] - E[D(real)]; add `gradient_penalty` separately).
        real_logits: D's output on real images.
        fake_logits: D's output on generated (detached) images.
    """
    if kind == "nsgan":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_KINDS}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side: non-saturating -log D(G(z)) for "nsgan", -E[D(G(z))] for "hinge" and "wgan-gp"."""
    if kind == "nsgan":
        return F.softplus(-fake_logits).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_KINDS}")


def interpolate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's random points x̂ = α·real + (1 − α)·fake, one α per image, ready for a gradient w.r.t. x̂."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)


def gradient_penalty(mixed_logits: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||∇_x̂ D(x̂)||₂ − 1)²].

    Args:
        mixed_logits: D's output on the interpolates (part of the same D forward as real and fake, so one
            DistributedDataParallel forward covers all three).
        mixed: The interpolates from `interpolate`.
    """
    (grad,) = torch.autograd.grad(mixed_logits.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
