"""Channel semantic learning (MSL paper section 2.1.2, "第一步", Fig. 2) checked against a hand computation.

SENet (Hu et al. 2018) plus a gate:
    w   = sigmoid(FC_2(ReLU(FC_1(GAP(x)))))     channel weights
    z   = concat(x ⊙ w, x)                       weighted map next to the input (channel concat)
    out = FC_a(z) ⊙ sigmoid(FC_b(z))             two parallel FC branches, the second gated by a sigmoid
The FC layers act per pixel (1×1 convolutions); the hand version uses matrix products with the module's weights.
"""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint.layers import ChannelSemanticLearning


def _fc(conv: torch.nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
    """A fully connected layer applied at every pixel: out[b,o,h,w] = sum_i W[o,i] t[b,i,h,w] + bias[o]."""
    weight = conv.weight[:, :, 0, 0]
    return torch.einsum("oi,bihw->bohw", weight, t) + conv.bias.view(1, -1, 1, 1)


def _by_hand(module: ChannelSemanticLearning, x: torch.Tensor) -> torch.Tensor:
    fc1, fc2 = module.excite[1], module.excite[3]
    gap = x.mean(dim=(2, 3), keepdim=True)  # global average pooling, (B, C, 1, 1)
    w = torch.sigmoid(_fc(fc2, torch.clamp_min(_fc(fc1, gap), 0.0)))  # (B, C, 1, 1)
    z = torch.cat([x * w, x], dim=1)  # (B, 2C, H, W)
    return _fc(module.value, z) * torch.sigmoid(_fc(module.gate, z))


@pytest.mark.parametrize("channels, reduction", [(8, 4), (16, 16), (6, 2)])
def test_equals_gated_se_by_hand(channels: int, reduction: int) -> None:
    module = ChannelSemanticLearning(channels, reduction).double()
    x = torch.randn(3, channels, 5, 7, dtype=torch.float64)
    out = module(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _by_hand(module, x), atol=1e-10, rtol=0)


def test_fc1_squeezes_by_the_reduction_ratio() -> None:
    module = ChannelSemanticLearning(32, reduction=4)
    assert module.excite[1].in_channels == 32 and module.excite[1].out_channels == 8
    assert module.excite[3].in_channels == 8 and module.excite[3].out_channels == 32
    assert module.value.in_channels == 64 and module.gate.in_channels == 64  # FC_a / FC_b see concat(x⊙w, x)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_fewer_channels_than_reduction_keeps_one_hidden_unit(channels: int) -> None:
    module = ChannelSemanticLearning(channels, reduction=4).double()
    assert module.excite[1].out_channels == 1
    x = torch.randn(2, channels, 4, 4, dtype=torch.float64)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out, _by_hand(module, x), atol=1e-10, rtol=0)


def test_channel_weights_depend_on_global_pool_only() -> None:
    """The SE weights see only GAP(x): a spatial permutation of x permutes the output the same way."""
    module = ChannelSemanticLearning(6, reduction=2).double()
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    perm = torch.randperm(20)
    x_perm = x.flatten(2)[:, :, perm].view(1, 6, 4, 5)
    out_perm = module(x).flatten(2)[:, :, perm].view(1, 6, 4, 5)
    torch.testing.assert_close(module(x_perm), out_perm, atol=1e-12, rtol=0)


def test_input_is_not_modified_and_gradients_flow() -> None:
    module = ChannelSemanticLearning(4, reduction=2)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    x_copy = x.detach().clone()
    module(x).square().sum().backward()
    assert torch.equal(x.detach(), x_copy)
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
