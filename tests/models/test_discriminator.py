"""The spectral-norm patch discriminator: its logits and the layer features a feature-matching loss reads."""

from __future__ import annotations

import torch

from hf_faceinpaint.models.discriminator import PatchDiscriminator


def test_features_are_each_stride_2_layer_then_the_logits_of_forward() -> None:
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(in_channels=4, widths=(8, 16, 32)).eval()
    image, mask = torch.randn(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    features = discriminator.features(image, mask)
    assert [tuple(f.shape) for f in features] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2, 1, 4, 4)]
    assert all(f.min() < 0 for f in features[:-1])  # after LeakyReLU: negative values survive, scaled
    torch.testing.assert_close(features[-1], discriminator(image, mask))
    moved = discriminator.features(image, 1.0 - mask)
    assert not torch.equal(moved[0], features[0])  # the mask is an input channel
