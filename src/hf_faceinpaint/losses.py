"""Training losses (MSL paper section 2.2, eqs. 7-12; WGAN-GP for the two-stage model).

    L_total = λ_perc L_perc + λ_style L_style + λ_adv L_adv + λ_rec L_rec          (12)
with the paper's weights λ_perc = 0.05, λ_style = 120, λ_rec = 1, λ_adv = 0.1 (the training defaults).
All image arguments are (B, 3, H, W) in [-1, 1]; masks are (B, 1, H, W) with 1 = hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL_KINDS = ("nsgan", "hinge", "wgan-gp")


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
        # Compare in fp32: under bf16 autocast the features are bf16, too coarse for a mean of small differences.
        perceptual = sum(l1_loss(p.float(), t.float()) for p, t in zip(pred_features, target_features))
        style = sum(l1_loss(gram_matrix(p), gram_matrix(t)) for p, t in zip(pred_features, target_features))
        return perceptual, style


def hole_patch_weights(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Each patch logit's weight: the hole's largest share among its cell and the 8 around it (the patch sees them).

    A patch discriminator scores every patch, but a patch of known pixels is the same in the real and the composited
    image; weighting by the hole lets the adversarial loss judge only what was filled. mask: (B, 1, H, W), 1 = hole;
    logits: (B, 1, h, w). Returns (B, 1, h, w) in [0, 1].
    """
    share = F.adaptive_avg_pool2d(mask.to(logits.dtype), logits.shape[-2:])  # (B, 1, h, w)
    return F.max_pool2d(share, 3, stride=1, padding=1)


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.expand_as(values).sum().clamp_min(1e-6)


def discriminator_loss(
    kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The discriminator's side of eq. 10 and its variants.

    Args:
        kind: "nsgan" (the paper's log-loss: -log D(x) - log(1 - D(G(z))), with logits), "hinge", or "wgan-gp"
            (the critic's E[D(fake)] - E[D(real)]; add `gradient_penalty` separately).
        real_logits: D's output on real images.
        fake_logits: D's output on generated (detached) images.
        weights: Optional per-logit weights (e.g. `hole_patch_weights`); the means become weighted means.
    """
    if kind == "nsgan":
        return _mean(F.softplus(-real_logits), weights) + _mean(F.softplus(fake_logits), weights)
    if kind == "hinge":
        return _mean(F.relu(1.0 - real_logits), weights) + _mean(F.relu(1.0 + fake_logits), weights)
    if kind == "wgan-gp":
        return _mean(fake_logits, weights) - _mean(real_logits, weights)
    raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_KINDS}")


def generator_loss(kind: str, fake_logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's side: non-saturating -log D(G(z)) for "nsgan", -E[D(G(z))] for "hinge" and "wgan-gp"
    (weighted means with `weights`, as in `discriminator_loss`)."""
    if kind == "nsgan":
        return _mean(F.softplus(-fake_logits), weights)
    if kind in ("hinge", "wgan-gp"):
        return -_mean(fake_logits, weights)
    raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_KINDS}")


def feature_matching_loss(
    real_features: list[torch.Tensor], fake_features: list[torch.Tensor], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """pix2pixHD's feature-matching loss (Wang et al. 2018, eq. 4): the mean over D's layers of the L1 distance
    between its features of the real and of the generated image (the real ones detached).

    It gives the generator a dense target per feature instead of one logit per patch. mask: (B, 1, H, W), 1 = hole;
    when given, each layer's mean is weighted as `hole_patch_weights` weights logits, so features of known pixels
    (the same in both images) do not dilute it.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"feature matching needs the same non-empty list of layers for real and fake, "
                         f"got {len(real_features)} and {len(fake_features)}")
    terms = []
    for real, fake in zip(real_features, fake_features):
        weights = hole_patch_weights(mask, fake) if mask is not None else None
        terms.append(_mean((fake - real.detach()).abs(), weights))
    return torch.stack(terms).mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's random points x̂ = α·real + (1 − α)·fake, one α per image, ready for a gradient w.r.t. x̂.
    α is drawn from `rng` when given (on real's device), else from torch's global random generator."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=rng)
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


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||∇_x D(x)||₂²] on real images, which keeps a discriminator without spectral
    norm from growing sharp around the real data (multiply by γ/2 as the loss weight).

    Args:
        real_logits: D's output on `real`.
        real: The real images, with `requires_grad` set before D's forward.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(dim=1).mean()


# ---- Two-stage model (paper sections 3.2 and 4.4) ----------------------------------------------------------------


@dataclass
class StructureLossWeights:
    """Weights of the structure stage's loss L_S, one per term (the paper's L_S = L2 + 0.8 LPIPS + 0.1 L_ID + 6 L_hole
    + L_valid is the training default, `training.config.StructureWeights`).

    Args:
        l2: Mean squared error over the whole image.
        lpips: LPIPS perceptual distance.
        id: Identity loss 1 − cos(R(gt), R(out)) with an ArcFace network R.
        hole: L1 inside the hole.
        valid: L1 outside the hole.
    """

    l2: float
    lpips: float
    id: float
    hole: float
    valid: float


def hole_valid_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_hole, L_valid): L1 inside and outside the hole, each a sum over its pixels divided by all C·H·W entries
    (Liu et al.'s partial-convolution losses, where the weight 6 on L_hole comes from). mask: (B, 1, H, W), 1 = hole."""
    error = (pred - target).abs()  # (B, 3, H, W)
    return (mask * error).mean(), ((1.0 - mask) * error).mean()


class IdentityLoss(nn.Module):
    """L_ID = 1 − <R(gt), R(out)>, with R a frozen ArcFace network returning unit embeddings (pSp's IDLoss).

    As in pSp, images are brought to 256² (adaptive average pooling), the face region [35:223, 32:220] of an
    FFHQ-aligned 256² face is cropped, and pooled to ArcFace's 112² input.

    Args:
        arcface: Frozen face-recognition network: (B, 3, 112, 112) in [-1, 1] -> (B, E) unit vectors.
    """

    def __init__(self, arcface: nn.Module) -> None:
        super().__init__()
        self.arcface = arcface.requires_grad_(False).eval()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) in [-1, 1] -> (B, E)."""
        faces = F.adaptive_avg_pool2d(images, 256)[:, :, 35:223, 32:220]  # (B, 3, 188, 188): pSp's face crop
        return self.arcface(F.adaptive_avg_pool2d(faces, 112))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_embedding = self.embed(target)
        return (1.0 - (self.embed(pred) * target_embedding).sum(dim=1)).mean()


class StructureLoss(nn.Module):
    """The structure stage's loss L_S (paper section 3.2), on the raw stage-1 image.

    Args:
        weights: The five weights.
        lpips: An LPIPS module taking images in [0, 1] and returning per-image distances (`metrics.LPIPS`);
            required when `weights.lpips` > 0.
        identity: An `IdentityLoss`; required when `weights.id` > 0.

    Raises:
        ValueError: A term has a positive weight but no network to compute it.
    """

    def __init__(
        self, weights: StructureLossWeights, lpips: nn.Module | None = None, identity: IdentityLoss | None = None
    ) -> None:
        super().__init__()
        if weights.lpips > 0 and lpips is None:
            raise ValueError("the LPIPS term (weight > 0) needs an LPIPS network")
        if weights.id > 0 and identity is None:
            raise ValueError(
                "the identity term L_ID (weight > 0) needs ArcFace IR-SE50 weights (e.g. pSp's model_ir_se50.pth, "
                "--id-weights); set its weight to 0 (--w-id 0) to train without it"
            )
        self.weights, self.lpips, self.identity = weights, lpips, identity

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """pred, target: (B, 3, H, W) in [-1, 1]; mask: (B, 1, H, W), 1 = hole. Returns every term and "total"."""
        terms = {"l2": F.mse_loss(pred, target)}
        terms["hole"], terms["valid"] = hole_valid_l1(pred, target, mask)
        if self.lpips is not None:
            terms["lpips"] = self.lpips((pred + 1) / 2, (target + 1) / 2).mean()
        if self.identity is not None:
            terms["id"] = self.identity(pred, target)
        terms["total"] = sum(getattr(self.weights, name) * value for name, value in terms.items())
        return terms


class PerceptualL2Loss(nn.Module):
    """The texture stage's perceptual loss L_perc = Σ_taps mean((P(gt) − P(out))²) on VGG16 activations (paper
    section 4.4 writes an L2 norm; the taps, pool1-pool3, are the ones the MSL loss uses).

    Args:
        vgg: A frozen VGG16 feature extractor taking RGB in [-1, 1] (`models.vgg.VGG16Features`).
        taps: The tap points.
    """

    def __init__(self, vgg: nn.Module, taps: tuple[str, ...] = ("pool1", "pool2", "pool3")) -> None:
        super().__init__()
        self.vgg, self.taps = vgg, taps
        self.vgg.requires_grad_(False).eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.vgg(target, taps=self.taps)
        pred_features = self.vgg(pred, taps=self.taps)
        return sum(F.mse_loss(p.float(), t.float()) for p, t in zip(pred_features, target_features))
