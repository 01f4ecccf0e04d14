"""StyleGAN2 ops: modulated convolution against per-sample grouped convolution, the FIR filters against direct
computation, and the generator's style count and rosinality key layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.layers.stylegan2 import ModulatedConv2d, Upsample, fused_leaky_relu, make_kernel, upfirdn2d
from hf_faceinpaint.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def grouped_reference(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eqs. 1-3 with explicit per-sample weights, run as one grouped convolution (rosinality's fused path)."""
    batch, channels, height, width = x.shape
    k = conv.kernel_size
    style = conv.modulation.weight * conv.modulation.scale  # EqualLinear by hand
    style = w @ style.t() + conv.modulation.bias  # (B, C_in)
    weight = conv.weight / math.sqrt(channels * k * k) * style[:, None, :, None, None]  # (B, C_out, C_in, k, k)
    if conv.demodulate:
        weight = weight / (weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).sqrt()
    if conv.upsample:
        grouped = weight.transpose(1, 2).reshape(batch * channels, conv.out_channels, k, k)
        out = F.conv_transpose2d(x.reshape(1, batch * channels, height, width), grouped, stride=2, groups=batch)
        out = out.view(batch, conv.out_channels, *out.shape[-2:])
        # Blur by hand: pad (1, 1), then the 4x4 [1, 3, 3, 1] filter (×4 for the zero-inserted signal).
        kernel = (make_kernel((1, 3, 3, 1)) * 4).to(x.dtype)
        out = F.pad(out, [1, 1, 1, 1])
        return F.conv2d(out, kernel.flip(0, 1)[None, None].repeat(conv.out_channels, 1, 1, 1), groups=conv.out_channels)
    grouped = weight.reshape(batch * conv.out_channels, channels, k, k)
    out = F.conv2d(x.reshape(1, batch * channels, height, width), grouped, padding=k // 2, groups=batch)
    return out.view(batch, conv.out_channels, height, width)


@pytest.mark.parametrize(
    ("kernel_size", "demodulate", "upsample"),
    [(3, True, False), (3, False, False), (1, False, False), (1, True, False), (3, True, True), (3, False, True)],
)
def test_modulated_conv_equals_grouped_conv(kernel_size: int, demodulate: bool, upsample: bool) -> None:
    conv = ModulatedConv2d(5, 6, kernel_size, style_dim=7, demodulate=demodulate, upsample=upsample).double()
    with torch.no_grad():
        conv.modulation.bias.normal_()  # not the initial all-ones styles
    x, w = torch.randn(3, 5, 6, 6, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    out = conv(x, w)
    assert out.shape == (3, 6, 12, 12) if upsample else (3, 6, 6, 6)
    torch.testing.assert_close(out, grouped_reference(conv, x, w), rtol=1e-10, atol=1e-10)


def test_demodulation_normalises_output_variance() -> None:
    conv = ModulatedConv2d(64, 64, 3, style_dim=8)
    x = torch.randn(4, 64, 16, 16)
    out = conv(x, torch.randn(4, 8) * 3)  # large styles are divided out again
    assert 0.7 < out[..., 2:-2, 2:-2].std().item() < 1.3


def test_upfirdn2d_against_direct_formula() -> None:
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    kernel = torch.rand(4, 4, dtype=torch.float64)
    out = upfirdn2d(x, kernel, up=2, pad=(2, 1))
    zeros = torch.zeros(2, 3, 10, 10, dtype=torch.float64)
    zeros[..., ::2, ::2] = x  # zero insertion
    padded = F.pad(zeros, [2, 1, 2, 1])
    expected = torch.zeros(2, 3, 10, 10, dtype=torch.float64)
    for i in range(10):
        for j in range(10):  # a true convolution: the flipped kernel slides over the padded signal
            expected[..., i, j] = (padded[..., i : i + 4, j : j + 4] * kernel.flip(0, 1)).sum(dim=(-1, -2))
    torch.testing.assert_close(out, expected)


def test_upsample_keeps_constant_images() -> None:
    up = Upsample((1, 3, 3, 1))
    out = up(torch.full((1, 3, 8, 8), 0.5))
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.full_like(out[..., 2:-2, 2:-2], 0.5))


def test_fused_leaky_relu() -> None:
    x, bias = torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, -0.5])
    torch.testing.assert_close(fused_leaky_relu(x, bias), torch.tensor([[-0.5 * 0.2, 1.5]]) * math.sqrt(2))


@pytest.mark.parametrize(("resolution", "n_styles"), [(1024, 18), (256, 14), (128, 12), (16, 6)])
def test_number_of_styles(resolution: int, n_styles: int) -> None:
    assert StyleGAN2Config(resolution=resolution).n_styles == n_styles


def rosinality_layout(log_size: int, n_mlp: int, channels: dict[int, int], dim: int) -> dict[str, tuple[int, ...]]:
    """The key names and shapes of rosinality's Generator.state_dict(), written out from its model.py."""
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(1, n_mlp + 1):
        keys[f"style.{i}.weight"], keys[f"style.{i}.bias"] = (dim, dim), (dim,)
    c4 = channels[4]
    keys["input.input"] = (1, c4, 4, 4)

    def styled(name: str, cin: int, cout: int, up: bool) -> None:
        keys.update({f"{name}.conv.weight": (1, cout, cin, 3, 3), f"{name}.conv.modulation.weight": (cin, dim),
                     f"{name}.conv.modulation.bias": (cin,), f"{name}.noise.weight": (1,), f"{name}.activate.bias": (cout,)})
        if up:
            keys[f"{name}.conv.blur.kernel"] = (4, 4)

    def rgb(name: str, cin: int, up: bool) -> None:
        keys.update({f"{name}.conv.weight": (1, 3, cin, 1, 1), f"{name}.conv.modulation.weight": (cin, dim),
                     f"{name}.conv.modulation.bias": (cin,), f"{name}.bias": (1, 3, 1, 1)})
        if up:
            keys[f"{name}.upsample.kernel"] = (4, 4)

    styled("conv1", c4, c4, False)
    rgb("to_rgb1", c4, False)
    cin = c4
    for block, level in enumerate(range(3, log_size + 1)):
        cout = channels[2**level]
        styled(f"convs.{2 * block}", cin, cout, True)
        styled(f"convs.{2 * block + 1}", cout, cout, False)
        rgb(f"to_rgbs.{block}", cout, True)
        cin = cout
    for index in range(2 * (log_size - 2) + 1):
        side = 2 ** ((index + 5) // 2)
        keys[f"noises.noise_{index}"] = (1, 1, side, side)
    return keys


def test_generator_has_rosinality_keys_and_shapes() -> None:
    config = StyleGAN2Config(resolution=32, style_dim=16, n_mlp=3, channel_base=256, channel_max=32)
    generator = StyleGAN2Generator(config)
    expected = rosinality_layout(5, 3, {4: 32, 8: 32, 16: 16, 32: 8}, 16)
    expected["latent_avg"] = (16,)  # the mean w, which rosinality keeps outside g_ema
    assert {k: tuple(v.shape) for k, v in generator.state_dict().items()} == expected


def test_generator_forward_backward_and_determinism() -> None:
    generator = StyleGAN2Generator(StyleGAN2Config(resolution=16, style_dim=8, n_mlp=2, channel_base=64, channel_max=16))
    styles = torch.randn(2, 6, 8, requires_grad=True)
    image = generator(styles)
    assert image.shape == (2, 3, 16, 16)
    torch.testing.assert_close(generator(styles), image)  # fixed noise maps: deterministic
    image.square().mean().backward()
    assert styles.grad is not None and torch.isfinite(styles.grad).all() and styles.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"styles must be \(B, 6, 8\)"):
        generator(torch.randn(2, 5, 8))


def test_conv_clamp_limits_activations() -> None:
    config = StyleGAN2Config(resolution=8, style_dim=8, n_mlp=1, channel_base=64, channel_max=8, conv_clamp=0.01)
    image = StyleGAN2Generator(config)(torch.randn(2, 4, 8) * 10)
    assert image.abs().max() <= 2 * 0.01 + 1e-6  # two ToRGB contributions, each clamped


@pytest.mark.parametrize("kwargs", [{"resolution": 48}, {"resolution": 4}, {"channel_base": 8, "resolution": 64}])
def test_bad_generator_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StyleGAN2Config(**kwargs)
