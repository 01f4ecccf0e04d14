"""MSL generator specifics (what every preset must do is in test_common.py): the ablation switch, the three kernel
sizes, config and input checks, dtype."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint import MSLConfig, MSLInpainter


def small(config: MSLConfig) -> MSLConfig:
    """The preset's architecture at a small resolution, so a CPU test of the 256² presets stays fast."""
    config.resolution = 4 * config.size_multiple
    return config


def random_batch(batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(batch, 3, resolution, resolution) * 2 - 1  # (B, 3, H, W)
    mask = torch.zeros(batch, 1, resolution, resolution)
    mask[:, :, resolution // 4 : resolution // 2, resolution // 3 : resolution - 2] = 1  # (B, 1, H, W)
    return image, mask


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
