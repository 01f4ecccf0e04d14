"""MSL generator: every preset runs forward and backward with the right shapes, finite gradients and compositing."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint import MSLConfig, MSLInpainter, list_presets
from hf_faceinpaint.models.registry import PRESETS

MSL_PRESETS = [name for name in list_presets() if isinstance(PRESETS[name], MSLConfig)]


def small(config: MSLConfig) -> MSLConfig:
    """The preset's architecture at a small resolution, so a CPU test of the 256² presets stays fast."""
    config.resolution = 4 * config.size_multiple
    return config


def random_batch(batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(batch, 3, resolution, resolution) * 2 - 1  # (B, 3, H, W)
    mask = torch.zeros(batch, 1, resolution, resolution)
    mask[:, :, resolution // 4 : resolution // 2, resolution // 3 : resolution - 2] = 1  # (B, 1, H, W)
    return image, mask


@pytest.mark.parametrize("name", MSL_PRESETS)
def test_preset_forward_backward(name: str) -> None:
    model = MSLInpainter(small(PRESETS[name].__class__(**vars(PRESETS[name]))))
    model.train()
    image, mask = random_batch(2, model.config.resolution)
    raw = model.generate(image, mask)
    assert raw.shape == image.shape
    assert raw.abs().max() <= 1.0  # tanh output
    out = mask * raw + (1 - mask) * image
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", MSL_PRESETS)
def test_preset_discriminator(name: str) -> None:
    model = MSLInpainter(small(PRESETS[name].__class__(**vars(PRESETS[name]))))
    disc = model.build_discriminator()
    image, mask = random_batch(2, model.config.resolution)
    logits = disc(image, mask)
    assert logits.shape[:2] == (2, 1)
    assert all(hasattr(m, "parametrizations") for m in disc.modules() if isinstance(m, torch.nn.Conv2d))


def test_full_size_tiny_preset_composites() -> None:
    model = MSLInpainter.from_preset("msl-tiny-128").eval()
    image, mask = random_batch(2, 128)
    with torch.inference_mode():
        out = model(image, mask)
    assert out.shape == (2, 3, 128, 128)
    assert torch.equal(out * (1 - mask), image * (1 - mask))  # known pixels are the input, exactly
    assert not torch.equal(out, image)


def test_hole_content_is_ignored() -> None:
    model = MSLInpainter.from_preset("msl-tiny-128").eval()
    image, mask = random_batch(1, 128)
    other = torch.where(mask.bool(), torch.rand_like(image), image)  # same known pixels, different hole content
    with torch.inference_mode():
        assert torch.equal(model(image, mask), model(other, mask))


def test_without_semantic_learning_has_no_msl_module() -> None:
    with_msl = MSLInpainter(small(MSLConfig(widths=(8, 16, 16))))
    without = MSLInpainter(small(MSLConfig(widths=(8, 16, 16), use_semantic_learning=False)))
    assert with_msl.semantic is not None and without.semantic is None
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in with_msl.parameters())


def test_three_encoders_use_their_kernel_sizes() -> None:
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16)))
    sizes = [encoder.levels[0][0].conv.kernel_size for encoder in model.encoders]
    assert sizes == [(3, 3), (5, 5), (7, 7)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": (8,)}, "at least two levels"),
        ({"kernel_sizes": (3, 4)}, "odd"),
        ({"resolution": 100}, "multiple of"),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MSLConfig(**kwargs)


def test_bad_input_shapes() -> None:
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16)))
    with pytest.raises(ValueError, match=r"image must be \(B, 3, H, W\)"):
        model(torch.zeros(1, 4, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.zeros(1, 3, 33, 33), torch.zeros(1, 1, 33, 33))


def test_dtype_follows_the_model() -> None:
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).eval().to(torch.float64)
    image, mask = random_batch(1, 32)
    with torch.inference_mode():
        out = model(image.double(), mask.double())
    assert out.dtype == torch.float64
