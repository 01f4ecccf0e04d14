"""PatchGAN discriminator with spectral normalisation (Isola et al. 2017; Miyato et al. 2018), as in MSL and DeepFill v2.

Each output logit judges one overlapping patch of the input; with `spectral_norm=False` it is the plain critic used
for WGAN-GP (spectral norm and a gradient penalty are not combined).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


class PatchDiscriminator(nn.Module):
    """Strided 4×4 convs with LeakyReLU, ending in a one-channel map of patch logits.

    Args:
        in_channels: Image channels plus the mask channel (3 + 1).
        widths: Output channels of the stride-2 convs; each halves the resolution.
        spectral_norm: Wrap every conv in spectral normalisation (the MSL paper's SN discriminator).
    """

    def __init__(self, in_channels: int = 4, widths: tuple[int, ...] = (64, 128, 256, 256), spectral_norm: bool = True) -> None:
        super().__init__()
        norm = _spectral_norm if spectral_norm else (lambda module: module)
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = width
        layers.append(norm(nn.Conv2d(channels, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, H, W) in [-1, 1]; mask: (B, 1, H, W), 1 = hole. Returns logits (B, 1, H/2^n, W/2^n)."""
        return self.net(torch.cat([image, mask.to(image.dtype)], dim=1))

    def features(self, image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The activation after each stride-2 conv's LeakyReLU, (B, widths[i], H/2^(i+1), W/2^(i+1)), then the
        logits as `forward` gives them: the layers a feature-matching loss compares (pix2pixHD)."""
        out, x = [], torch.cat([image, mask.to(image.dtype)], dim=1)
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out + [x]
