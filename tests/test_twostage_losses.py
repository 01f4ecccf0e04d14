"""The two-stage model's losses against hand-computed values: L_hole / L_valid, L_S's weighting, L_ID and L_perc."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.losses import (
    IdentityLoss,
    PerceptualL2Loss,
    StructureLoss,
    StructureLossWeights,
    hole_valid_l1,
)


def test_hole_and_valid_l1_by_hand() -> None:
    pred = torch.zeros(1, 1, 1, 4)
    target = torch.tensor([[[[1.0, -2.0, 3.0, 0.5]]]])
    mask = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    hole, valid = hole_valid_l1(pred, target, mask)
    assert hole.item() == pytest.approx((1 + 2) / 4) and valid.item() == pytest.approx((3 + 0.5) / 4)


class Half(torch.nn.Module):
    """An LPIPS stand-in: per-image mean absolute difference of [0, 1] images."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().mean(dim=(1, 2, 3))


class Embed(torch.nn.Module):
    """An ArcFace stand-in: the unit-normalised mean colour of the 112² crop."""

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        assert faces.shape[-2:] == (112, 112)
        return F.normalize(faces.mean(dim=(2, 3)), dim=1)


def test_structure_loss_combines_the_terms() -> None:
    pred, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    weights = StructureLossWeights(l2=2.0, lpips=3.0, id=5.0, hole=7.0, valid=11.0)
    terms = StructureLoss(weights, Half(), IdentityLoss(Embed()))(pred, target, mask)
    hole, valid = hole_valid_l1(pred, target, mask)
    lpips = ((pred - target).abs() / 2).mean()
    torch.testing.assert_close(terms["l2"], ((pred - target) ** 2).mean())
    torch.testing.assert_close(terms["lpips"], lpips)
    expected = 2 * terms["l2"] + 3 * lpips + 5 * terms["id"] + 7 * hole + 11 * valid
    torch.testing.assert_close(terms["total"], expected)
    assert 0 <= terms["id"].item() <= 2


def test_identity_loss_is_zero_for_the_same_face_and_trains_the_prediction() -> None:
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    loss = IdentityLoss(Embed())
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.rand(2, 3, 64, 64, requires_grad=True)
    loss(pred, target).backward()
    assert pred.grad.abs().sum() > 0


def _weights(lpips: float = 0.8, id: float = 0.1) -> StructureLossWeights:
    return StructureLossWeights(l2=1.0, lpips=lpips, id=id, hole=6.0, valid=1.0)


def test_missing_networks_fail_clearly() -> None:
    with pytest.raises(ValueError, match="--id-weights.*--w-id 0"):
        StructureLoss(_weights(), Half(), None)
    with pytest.raises(ValueError, match="LPIPS"):
        StructureLoss(_weights(id=0.0), None, None)
    terms = StructureLoss(_weights(lpips=0.0, id=0.0))(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    assert set(terms) == {"l2", "hole", "valid", "total"}


class TwoTaps(torch.nn.Module):
    def forward(self, x: torch.Tensor, taps: tuple[str, ...]) -> list[torch.Tensor]:
        return [x, F.avg_pool2d(x, 2)]


def test_perceptual_l2_by_hand() -> None:
    pred, target = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    expected = ((pred - target) ** 2).mean() + ((F.avg_pool2d(pred, 2) - F.avg_pool2d(target, 2)) ** 2).mean()
    torch.testing.assert_close(PerceptualL2Loss(TwoTaps(), taps=("a", "b"))(pred, target), expected)
