"""Gated convolution checked against MSL paper eqs. 1-3 (section 2.1.1), computed by hand.

    Gating  = W_g * I                                  (1)
    Feature = W_f * I                                  (2)
    I'      = BN( phi(Feature) ⊙ sigmoid(Gating) )     (3),  phi = LeakyReLU

The module uses one conv with 2·C_out output channels; W_f is taken as the first half and W_g as the
second half, and each is applied with our own `F.conv2d` call. BN is recomputed from its definition
(train mode: batch mean and biased batch variance; eval mode: running statistics).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.layers import GatedConv2d, GatedUpConv2d


def _split_weights(module: GatedConv2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    c = module.out_channels
    w, b = module.conv.weight, module.conv.bias
    return w[:c], b[:c], w[c:], b[c:]  # W_f, b_f, W_g, b_g


def _gated_by_hand(module: GatedConv2d, x: torch.Tensor, phi) -> torch.Tensor:
    """phi(W_f * x) ⊙ sigmoid(W_g * x) with our own convolutions (eqs. 1-3 without BN)."""
    w_f, b_f, w_g, b_g = _split_weights(module)
    conv = module.conv
    kwargs = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
    gating = F.conv2d(x, w_g, b_g, **kwargs)  # eq. 1
    feature = F.conv2d(x, w_f, b_f, **kwargs)  # eq. 2
    return phi(feature) * torch.sigmoid(gating)  # eq. 3, inside BN


def _leaky_relu_02(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= 0, t, 0.2 * t)


def _elu(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0, t, torch.exp(t) - 1.0)


def _randomise_bn(module: GatedConv2d) -> None:
    bn = module.norm
    with torch.no_grad():
        bn.weight.copy_(torch.rand_like(bn.weight) + 0.5)
        bn.bias.copy_(torch.randn_like(bn.bias))
        bn.running_mean.copy_(torch.randn_like(bn.running_mean))
        bn.running_var.copy_(torch.rand_like(bn.running_var) + 0.5)


def test_eq3_lrelu_gate_with_batchnorm_train_mode_uses_batch_statistics() -> None:
    """Eq. 3 in training: BN normalises with the batch mean and the biased batch variance (+ eps)."""
    module = GatedConv2d(3, 5, kernel_size=3, activation="lrelu", norm=True).double().train()
    _randomise_bn(module)
    x = torch.randn(4, 3, 9, 11, dtype=torch.float64)

    gated = _gated_by_hand(module, x, _leaky_relu_02)
    mean = gated.mean(dim=(0, 2, 3), keepdim=True)
    var = ((gated - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)  # biased
    bn = module.norm
    expected = (gated - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)

    out = module(x)
    assert out.shape == (4, 5, 9, 11)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_eq3_lrelu_gate_with_batchnorm_eval_mode_uses_running_statistics() -> None:
    """Eq. 3 at inference: BN uses the running mean / variance, not the batch's."""
    module = GatedConv2d(3, 5, kernel_size=5, activation="lrelu", norm=True).double()
    _randomise_bn(module)
    module.eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)

    gated = _gated_by_hand(module, x, _leaky_relu_02)
    bn = module.norm
    expected = (gated - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    expected = expected * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)

    torch.testing.assert_close(module(x), expected, atol=1e-6, rtol=0)


def test_feature_is_first_half_and_gating_second_half_of_the_conv() -> None:
    """Swapping W_f and W_g must change the result (guards the hand split used above)."""
    module = GatedConv2d(2, 3, activation="lrelu", norm=False).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    w_f, b_f, w_g, b_g = _split_weights(module)
    swapped = _leaky_relu_02(F.conv2d(x, w_g, b_g, padding=1)) * torch.sigmoid(F.conv2d(x, w_f, b_f, padding=1))
    assert not torch.allclose(module(x), swapped)
    torch.testing.assert_close(module(x), _gated_by_hand(module, x, _leaky_relu_02), atol=1e-6, rtol=0)


def test_lrelu_slope_is_0_2() -> None:
    """phi = LeakyReLU with slope 0.2 (DeepFill v2 / MSL): check on a purely negative feature."""
    module = GatedConv2d(1, 1, kernel_size=1, activation="lrelu", norm=False).double()
    with torch.no_grad():
        module.conv.weight.copy_(torch.tensor([1.0, 0.0], dtype=torch.float64).view(2, 1, 1, 1))
        module.conv.bias.zero_()
    x = -torch.ones(1, 1, 2, 2, dtype=torch.float64)
    # Feature = -1 -> phi = -0.2; Gating = 0 -> sigmoid = 0.5
    torch.testing.assert_close(module(x), torch.full_like(x, -0.1), atol=1e-12, rtol=0)


def test_elu_gate_without_norm() -> None:
    """The two-stage texture net's variant: phi = ELU, no BN."""
    module = GatedConv2d(4, 6, kernel_size=3, activation="elu", norm=False).double()
    x = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    expected = _gated_by_hand(module, x, _elu)
    torch.testing.assert_close(module(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_stride_1_keeps_size_with_same_padding(kernel_size: int) -> None:
    module = GatedConv2d(3, 4, kernel_size=kernel_size)
    assert module(torch.randn(2, 3, 16, 12)).shape == (2, 4, 16, 12)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
@pytest.mark.parametrize("size, expected", [((16, 12), (8, 6)), ((15, 9), (8, 5))])
def test_stride_2_halves_size(kernel_size: int, size: tuple[int, int], expected: tuple[int, int]) -> None:
    """MSL's three encoders use 3×3, 5×5, 7×7 gated convs; stride 2 gives ceil(H/2) × ceil(W/2)."""
    module = GatedConv2d(3, 4, kernel_size=kernel_size, stride=2)
    assert module(torch.randn(2, 3, *size)).shape == (2, 4, *expected)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_stride_2_matches_hand_computation(kernel_size: int) -> None:
    module = GatedConv2d(2, 3, kernel_size=kernel_size, stride=2, norm=False).double()
    x = torch.randn(1, 2, 10, 10, dtype=torch.float64)
    torch.testing.assert_close(module(x), _gated_by_hand(module, x, _leaky_relu_02), atol=1e-6, rtol=0)


def test_dilation_keeps_size() -> None:
    module = GatedConv2d(3, 4, kernel_size=3, dilation=2, norm=False).double()
    x = torch.randn(1, 3, 12, 12, dtype=torch.float64)
    out = module(x)
    assert out.shape == (1, 4, 12, 12)
    torch.testing.assert_close(out, _gated_by_hand(module, x, _leaky_relu_02), atol=1e-6, rtol=0)


def test_up_conv_doubles_resolution_and_equals_gated_conv_of_nearest_upsample() -> None:
    up = GatedUpConv2d(3, 5, kernel_size=3, activation="elu", norm=False).double()
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    out = up(x)
    assert out.shape == (2, 5, 8, 12)
    x_up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest ×2 by hand
    torch.testing.assert_close(out, _gated_by_hand(up.conv, x_up, _elu), atol=1e-6, rtol=0)


def test_invalid_activation_raises_value_error() -> None:
    with pytest.raises(ValueError, match="activation"):
        GatedConv2d(3, 4, activation="swishy")
    with pytest.raises(ValueError, match="activation"):
        GatedUpConv2d(3, 4, activation="swishy")
