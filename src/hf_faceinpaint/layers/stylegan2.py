"""StyleGAN2 building blocks in plain PyTorch (Karras et al., "Analyzing and improving the image quality of StyleGAN",
CVPR 2020), with the module and parameter names of rosinality's widely used port (`stylegan2-pytorch`, model.py), so
its checkpoints load key for key. No custom CUDA kernels: the "fused" leaky ReLU and the FIR filter (upfirdn2d) are
written with standard operators, and run on any device and dtype.

Equalised learning rate: every weight is stored as N(0, 1) / lr_mul and scaled by lr_mul / sqrt(fan_in) when used.
Modulated convolution (paper eqs. 1-3):
    w'_ijk  = s_i · w_ijk                                     (1)  modulate input channel i by the style s
    σ_j     = sqrt( Σ_ik w'_ijk² + ε )                        (2)  expected output std of channel j
    w''_ijk = w'_ijk / σ_j                                    (3)  demodulate
implemented as in NVlabs' "non-fused" path: scale the activations by s, convolve with the shared weight, scale the
output by 1/σ. It is the same maths as a grouped convolution with per-sample weights, with one weight for the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU


def make_kernel(taps: tuple[float, ...]) -> torch.Tensor:
    """The separable 2-D FIR filter outer(taps, taps), normalised to sum 1. (k,) -> (k, k)."""
    kernel = torch.tensor(taps, dtype=torch.float32)
    kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, and filter with a 2-D FIR kernel, per channel (NVlabs' upfirdn2d, down = 1).

    Args:
        x: Feature map, (B, C, H, W).
        kernel: FIR filter, (k, k); applied as a true convolution (flipped), as upfirdn2d does.
        up: Upsampling factor (zeros are inserted after every input pixel).
        pad: Zero padding (before, after) on both axes of the upsampled map; must be non-negative.

    Returns:
        (B, C, H·up + pad[0] + pad[1] − k + 1, W·up + pad[0] + pad[1] − k + 1).
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])  # a zero after every pixel on both axes
        x = x.reshape(batch, channels, height * up, width * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = kernel.flip(0, 1).to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)  # (C, 1, k, k)
    return F.conv2d(x, weight, groups=channels)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Bias, leaky ReLU (slope 0.2) and the gain √2, on (B, C, ...) activations with a (C,) bias."""
    bias = bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x + bias, LRELU_SLOPE) * LRELU_GAIN


class FusedLeakyReLU(nn.Module):
    """A learned per-channel bias followed by the scaled leaky ReLU (rosinality key: `activate.bias`).

    Args:
        channels: Channels of the activations.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    """Normalise every latent vector to unit second moment: z / sqrt(mean(z²) + 1e-8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """A fully connected layer with equalised learning rate, optionally followed by the scaled leaky ReLU.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        bias_init: Initial bias value (1 for the style affine layers, so styles start near 1).
        lr_mul: Learning-rate multiplier (0.01 in the mapping network).
        activation: Apply `fused_leaky_relu` after the bias.
    """

    def __init__(
        self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_dim) -> (B, out_dim)."""
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    """FIR low-pass filter with padding, after a transposed convolution (the kernel is scaled by factor² there).

    Args:
        taps: 1-D filter taps, e.g. (1, 3, 3, 1).
        pad: Zero padding (before, after).
        upsample_factor: Upsampling factor of the preceding layer; the kernel is multiplied by its square so the
            zero-inserted signal keeps its mean.
    """

    def __init__(self, taps: tuple[float, ...], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """×2 (or ×factor) upsampling with a FIR filter, for the RGB skip connections.

    Args:
        taps: 1-D filter taps, e.g. (1, 3, 3, 1).
        factor: Upsampling factor.
    """

    def __init__(self, taps: tuple[float, ...], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor**2)
        extra = len(taps) - factor
        self.pad = ((extra + 1) // 2 + factor - 1, extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, factor·H, factor·W)."""
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are modulated per sample by a style vector and (optionally) demodulated, eqs. 1-3.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size (3 for the synthesis convs, 1 for ToRGB).
        style_dim: Dimension of the latent w the style is computed from.
        demodulate: Apply eqs. 2-3 (False for ToRGB).
        upsample: Double the resolution: transposed convolution with stride 2, then the FIR filter.
        blur_taps: Taps of the FIR filter used when upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: tuple[float, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            factor = 2
            extra = (len(blur_taps) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((extra + 1) // 2 + factor - 1, extra // 2 + 1), upsample_factor=factor)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W); w: (B, style_dim). Returns (B, C_out, H, W), or (B, C_out, 2H, 2W) when upsampling."""
        batch = x.shape[0]
        style = self.modulation(w)  # (B, C_in): s of eq. 1
        weight = self.scale * self.weight[0]  # (C_out, C_in, k, k), equalised learning rate
        x = x * style.view(batch, -1, 1, 1)  # eq. 1 applied to the activations instead of the weights
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # (B, C_out, 2H + 1, 2W + 1)
            x = self.blur(x)  # (B, C_out, 2H, 2W)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            modulated = weight[None] * style.view(batch, 1, -1, 1, 1)  # (B, C_out, C_in, k, k): w' of eq. 1
            sigma_inv = torch.rsqrt(modulated.square().sum(dim=(2, 3, 4)) + 1e-8)  # (B, C_out): 1/σ_j of eq. 2
            x = x * sigma_inv.view(batch, -1, 1, 1)  # eq. 3
        return x


class NoiseInjection(nn.Module):
    """Adds a single-channel noise map scaled by a learned strength (rosinality key: `noise.weight`)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); noise: (1 or B, 1, H, W)."""
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned constant the synthesis network starts from (rosinality key: `input.input`).

    Args:
        channels: Channels of the constant.
        size: Its side (4).
    """

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)  # (B, C, 4, 4)


class StyledConv(nn.Module):
    """Modulated 3×3 convolution, noise, bias and leaky ReLU: one synthesis layer.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        style_dim: Dimension of w.
        upsample: Double the resolution (the first layer of every block above 4²).
        blur_taps: FIR filter taps for the upsampling.
        conv_clamp: Clamp the activations to ±conv_clamp (NVlabs' `conv_clamp`, 256 in its FFHQ models), or None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        upsample: bool = False,
        blur_taps: tuple[float, ...] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.activate(self.noise(self.conv(x, w), noise))
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class ToRGB(nn.Module):
    """1×1 modulated convolution (no demodulation) to RGB, added to the upsampled RGB image of the previous block.

    Args:
        in_channels: Input channels.
        style_dim: Dimension of w.
        upsample: Upsample the incoming skip image (all but the 4² block).
        blur_taps: FIR filter taps for that upsampling.
        conv_clamp: Clamp this block's RGB contribution to ±conv_clamp, or None.
    """

    def __init__(
        self,
        in_channels: int,
        style_dim: int,
        upsample: bool = True,
        blur_taps: tuple[float, ...] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W); w: (B, style_dim); skip: (B, 3, H/2, W/2) or None. Returns (B, 3, H, W)."""
        rgb = self.conv(x, w) + self.bias
        if self.conv_clamp is not None:
            rgb = rgb.clamp(-self.conv_clamp, self.conv_clamp)
        return rgb if skip is None else rgb + self.upsample(skip)
