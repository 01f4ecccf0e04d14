"""Losses against hand-computed values (MSL paper eqs. 7-11; WGAN-GP)."""

from __future__ import annotations

import math

import pytest
import torch

from hf_faceinpaint.losses import (
    PerceptualStyleLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    gradient_penalty,
    gram_matrix,
    hole_patch_weights,
    interpolate,
    l1_loss,
    r1_penalty,
)


def test_l1_by_hand() -> None:
    pred = torch.tensor([[0.5, -1.0], [0.25, 1.0]])
    target = torch.tensor([[0.0, 0.0], [0.25, -1.0]])
    assert l1_loss(pred, target).item() == pytest.approx((0.5 + 1.0 + 0.0 + 2.0) / 4)


def test_gram_by_hand() -> None:
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, C=2, H=1, W=2)
    expected = torch.tensor([[[1 + 4, 3 - 2], [3 - 2, 9 + 1]]]) / (2 * 1 * 2)  # φφᵀ / (C·H·W)
    torch.testing.assert_close(gram_matrix(features), expected)


class TwoTaps(torch.nn.Module):
    """A stand-in feature extractor with known outputs: the image itself and its 2×2 average pool."""

    def forward(self, x: torch.Tensor, taps: tuple[str, ...]) -> list[torch.Tensor]:
        return [x.clone(), torch.nn.functional.avg_pool2d(x, 2)]


def test_perceptual_and_style_by_hand() -> None:
    pred, target = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    perceptual, style = PerceptualStyleLoss(TwoTaps(), taps=("a", "b"))(pred, target)
    pooled = torch.nn.functional.avg_pool2d
    expected_perc = (pred - target).abs().mean() + (pooled(pred, 2) - pooled(target, 2)).abs().mean()
    expected_style = sum(
        (gram_matrix(a) - gram_matrix(b)).abs().mean() for a, b in ((pred, target), (pooled(pred, 2), pooled(target, 2)))
    )
    torch.testing.assert_close(perceptual, expected_perc)
    torch.testing.assert_close(style, expected_style)


def test_perceptual_gradients_reach_only_the_prediction() -> None:
    pred = torch.rand(1, 3, 4, 4, requires_grad=True)
    target = torch.rand(1, 3, 4, 4, requires_grad=True)
    perceptual, style = PerceptualStyleLoss(TwoTaps(), taps=("a", "b"))(pred, target)
    (perceptual + style).backward()
    assert pred.grad is not None and target.grad is None


def test_nsgan_is_the_papers_log_loss() -> None:
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sigmoid = torch.sigmoid
    expected_d = -(torch.log(sigmoid(real)).mean() + torch.log(1 - sigmoid(fake)).mean())  # eq. 10, D maximises
    expected_g = -torch.log(sigmoid(fake)).mean()  # non-saturating generator loss
    torch.testing.assert_close(discriminator_loss("nsgan", real, fake), expected_d)
    torch.testing.assert_close(generator_loss("nsgan", fake), expected_g)


def test_hinge_and_wgan_by_hand() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.25])
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.25) / 2)
    assert generator_loss("hinge", fake).item() == pytest.approx(0.875)
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-0.875 - 1.25)
    assert generator_loss("wgan-gp", fake).item() == pytest.approx(0.875)


def test_hole_patch_weights_and_weighted_adversarial_means_by_hand() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0:2, 0:4] = 1.0  # a hole over the top-left 4×4 cell's upper half
    weights = hole_patch_weights(mask, torch.zeros(1, 1, 2, 2))  # logits on a 2×2 grid of 4×4 cells
    torch.testing.assert_close(weights, torch.full((1, 1, 2, 2), 0.5))  # every cell sees that cell: its 3×3 max
    far = torch.zeros(1, 1, 16, 16)
    far[..., :4, :4] = 1.0
    weights = hole_patch_weights(far, torch.zeros(1, 1, 4, 4))[0, 0]
    assert weights[:2, :2].eq(1).all() and weights[2:].eq(0).all() and weights[:, 2:].eq(0).all()

    real, fake = torch.tensor([[2.0, 0.5]]), torch.tensor([[-2.0, 0.25]])
    only_second = torch.tensor([[0.0, 1.0]])  # patches without hole drop out
    assert discriminator_loss("hinge", real, fake, only_second).item() == pytest.approx(0.5 + 1.25)
    assert generator_loss("hinge", fake, only_second).item() == pytest.approx(-0.25)
    halves = torch.tensor([[1.0, 3.0]])
    assert discriminator_loss("wgan-gp", real, fake, halves).item() == pytest.approx((-2 + 0.75) / 4 - 3.5 / 4)
    torch.testing.assert_close(generator_loss("nsgan", fake, torch.ones_like(fake)), generator_loss("nsgan", fake))


def test_feature_matching_by_hand() -> None:
    real = [torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]
    fake = [torch.full((1, 2, 2, 2), 0.5).requires_grad_(True), torch.full((1, 1, 1, 1), -1.0).requires_grad_(True)]
    # the mean over layers of each layer's mean |fake - real|: (0.5 + 2) / 2
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.25)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :2, :2] = 1.0  # a hole in the top-left 4×4 cell only: at 2×2, every cell sees it (3×3 max) at 1/4
    fake[0].data[..., 1, 1] = 4.5  # the bottom-right cell's error, 4 in both channels
    # layer 1: weights 1/4 everywhere, so the plain mean (0.5·3 + 4.5) / 4; layer 2: weight 1/16 on its one cell
    assert feature_matching_loss(real, fake, mask).item() == pytest.approx((6.0 / 4 + 2.0) / 2)
    far = torch.zeros(1, 1, 16, 16)
    far[..., :4, :4] = 1.0  # at 4×4, only the top-left 2×2 cells see the hole: errors elsewhere drop out
    moved = torch.zeros(1, 1, 4, 4)
    moved[..., 3, 3] = 7.0
    assert feature_matching_loss([torch.zeros(1, 1, 4, 4)], [moved], far).item() == 0.0
    feature_matching_loss(real, fake).backward()
    assert fake[0].grad is not None and fake[1].grad.abs().sum() > 0  # the fake side carries the gradient
    with pytest.raises(ValueError, match="same non-empty list of layers"):
        feature_matching_loss(real, fake[:1])


def test_unknown_adversarial_kind() -> None:
    with pytest.raises(ValueError, match="unknown adversarial loss 'lsgan'"):
        discriminator_loss("lsgan", torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_loss("lsgan", torch.zeros(1))


def test_gradient_penalty_by_hand() -> None:
    # D(x) = sum(w ⊙ x): its input gradient is w everywhere, so the penalty is (||w||₂ − 1)² whatever x̂ is.
    weight = torch.full((1, 1, 2, 2), 0.25)
    real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    mixed = interpolate(real, fake, torch.Generator().manual_seed(5))
    assert torch.equal(mixed, interpolate(real, fake, torch.Generator().manual_seed(5)))  # α from the given rng
    assert mixed.requires_grad and ((mixed >= torch.minimum(real, fake) - 1e-6) & (mixed <= torch.maximum(real, fake) + 1e-6)).all()
    logits = (weight * mixed).flatten(1).sum(1)
    expected = (math.sqrt(4 * 0.25**2) - 1.0) ** 2
    assert gradient_penalty(logits, mixed).item() == pytest.approx(expected)


def test_r1_penalty_by_hand() -> None:
    # D(x) = sum(x²): its input gradient is 2x, so the penalty is the batch mean of 4 ||x||₂².
    real = torch.tensor([[1.0, 2.0], [0.5, 0.0]], requires_grad=True)
    logits = real.square().sum(1)
    assert r1_penalty(logits, real).item() == pytest.approx((4 * 5.0 + 4 * 0.25) / 2)
    logits.sum().backward()  # the penalty kept the graph of D's forward usable (create_graph)
