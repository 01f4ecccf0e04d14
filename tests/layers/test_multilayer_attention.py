"""Multi-layer contextual attention: scores from a deep map fill only the holes of shallower maps, retrieve a
duplicated known patch, work at every resolution ratio, and share one score computation between targets."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint.layers import MultiLayerContextualAttention

SIDE = 16  # score map side


def duplicated_scene(channels: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A random score map whose block around the hole (rows/cols 1-6) is copied from rows/cols 9-14, and a
    16² mask (1 = hole) covering score cells 3-4."""
    features = torch.randn(1, channels, SIDE, SIDE)
    features[..., 1:7, 1:7] = features[..., 9:15, 9:15]
    mask = torch.zeros(1, 1, SIDE, SIDE)
    mask[..., 3:5, 3:5] = 1
    return features, mask


@pytest.mark.parametrize("rate", [1, 2, 4])
def test_hole_is_filled_from_the_duplicated_patch(rate: int) -> None:
    features, mask = duplicated_scene()
    values = torch.randn(1, 5, SIDE * rate, SIDE * rate)
    attention = MultiLayerContextualAttention(patch_size=3, softmax_scale=1000.0)  # near one-hot attention
    (filled,) = attention([features], [values], mask)
    hole = torch.zeros(SIDE * rate, SIDE * rate, dtype=torch.bool)
    hole[3 * rate : 5 * rate, 3 * rate : 5 * rate] = True
    # Known locations pass through bit for bit; every hole pixel is the value 8 score cells further on.
    assert torch.equal(filled[..., ~hole], values[..., ~hole])
    shift = 8 * rate
    twin = values[..., 3 * rate + shift : 5 * rate + shift, 3 * rate + shift : 5 * rate + shift]
    torch.testing.assert_close(filled[..., 3 * rate : 5 * rate, 3 * rate : 5 * rate], twin, atol=1e-4, rtol=0)


def test_several_targets_at_their_own_rates() -> None:
    features, mask = duplicated_scene()
    deep = [features, features.clone(), features]
    targets = [torch.randn(1, 3, SIDE * r, SIDE * r) for r in (2, 4, 8)]
    attention = MultiLayerContextualAttention(softmax_scale=1000.0)
    outputs = attention(deep, targets, torch.nn.functional.interpolate(mask, scale_factor=8))  # mask at any size
    for out, values, rate in zip(outputs, targets, (2, 4, 8)):
        assert out.shape == values.shape
        hole = slice(3 * rate, 5 * rate)
        assert not torch.equal(out[..., hole, hole], values[..., hole, hole])
        out[..., hole, hole] = values[..., hole, hole]
        assert torch.equal(out, values)  # nothing but the hole changed


def test_shared_score_map_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from hf_faceinpaint.layers import multilayer_attention

    calls = []
    real = multilayer_attention.attention_scores

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(multilayer_attention, "attention_scores", counting)
    features, mask = duplicated_scene()
    MultiLayerContextualAttention()([features] * 3, [torch.randn(1, 2, SIDE * r, SIDE * r) for r in (1, 2, 4)], mask)
    assert len(calls) == 1


def test_no_known_patch_keeps_the_features() -> None:
    features = torch.randn(1, 4, 4, 4)
    values = torch.randn(1, 2, 8, 8)
    (out,) = MultiLayerContextualAttention()([features], [values], torch.ones(1, 1, 8, 8))
    assert torch.equal(out, values)


def test_gradients_flow_to_scores_and_values() -> None:
    features, mask = duplicated_scene()
    features.requires_grad_(True)
    values = torch.randn(1, 3, 32, 32, requires_grad=True)
    (out,) = MultiLayerContextualAttention()([features], [values], mask)
    out.square().sum().backward()
    assert features.grad.abs().sum() > 0 and values.grad.abs().sum() > 0


def test_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        MultiLayerContextualAttention()([torch.randn(1, 2, 4, 4)], [torch.randn(1, 2, 10, 10)], torch.zeros(1, 1, 4, 4))
