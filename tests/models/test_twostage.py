"""Two-stage model: both stages run forward and backward on the CPU at a small resolution, the output is composited,
the ablation switches change the architecture, and the Hub packaging / registry / `inpaint` handle the class."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_faceinpaint import TwoStageConfig, TwoStageInpainter, inpaint
from hf_faceinpaint.models.registry import PRESETS, from_preset, load_model


def tiny_config(**overrides: object) -> TwoStageConfig:
    settings = dict(
        resolution=32, stylegan_resolution=0, stylegan_style_dim=8, stylegan_n_mlp=2, stylegan_channel_base=128,
        stylegan_channel_max=16, encoder_widths=(4, 8, 12, 16), encoder_units=(1, 1, 1, 1),
        texture_widths=(4, 8, 8, 12), discriminator_widths=(8, 16),
    )
    settings.update(overrides)
    return TwoStageConfig(**settings)


def batch(size: int = 2, resolution: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(size, 3, resolution, resolution) * 2 - 1
    mask = torch.zeros(size, 1, resolution, resolution)
    mask[..., resolution // 4 : 3 * resolution // 4, resolution // 4 : 3 * resolution // 4] = 1  # a square hole
    return image, mask


def test_the_paper_preset_has_18_styles() -> None:
    assert PRESETS["twostage-256"].stylegan.n_styles == 18  # the paper's 18 style vectors


def test_both_stages_forward_and_backward() -> None:
    model = TwoStageInpainter(tiny_config()).train()
    image, mask = batch()
    structure = model.structure(image, mask)  # stage 1, raw
    assert structure.shape == image.shape
    structure.square().mean().backward()
    encoder_grads = [p.grad for p in model.structure.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in encoder_grads)
    model.zero_grad()
    refined = model.generate(image, mask)  # stage 2 on top of stage 1
    assert refined.shape == image.shape
    refined.square().mean().backward()
    texture_grads = [p.grad for p in model.texture.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in texture_grads)
    assert sum(g.abs().sum() for g in texture_grads) > 0


@pytest.mark.parametrize(("resolution", "stylegan_resolution"), [(64, 32), (32, 64)])
def test_generator_resolution_differs_from_the_image(resolution: int, stylegan_resolution: int) -> None:
    model = TwoStageInpainter(tiny_config(resolution=resolution, stylegan_resolution=stylegan_resolution)).eval()
    image, mask = batch(1, resolution)
    with torch.no_grad():
        assert model.structure(image, mask).shape == image.shape  # upsampled / average-pooled to the image side


def test_ablation_variants() -> None:
    full = TwoStageInpainter(tiny_config())
    variant1 = TwoStageInpainter(tiny_config(use_structure_stage=False, attention_layers=(6,)))
    variant2 = TwoStageInpainter(tiny_config(attention_layers=(6,)))
    assert variant1.structure is None and variant2.structure is not None
    assert full.texture.score_layers == (4, 5, 6) and variant2.texture.score_layers == (6, 6, 6)
    image, mask = batch(1)
    with torch.inference_mode():
        assert variant1(image, mask).shape == image.shape
        torch.testing.assert_close(variant1.coarse(image, mask), image * (1 - mask))  # no stage-1 result to refine


def test_model_card_names_the_family(tmp_path: Path) -> None:
    TwoStageInpainter(tiny_config()).save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "TwoStageInpainter" in card and "stylegan2" in card


def test_untrained_preset_and_inpaint() -> None:
    with pytest.raises(ValueError, match="without trained weights"):
        load_model("twostage-tiny-128")
    assert isinstance(from_preset("twostage-tiny-128"), TwoStageInpainter)
    model = TwoStageInpainter(tiny_config()).eval()
    photo = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    hole = np.zeros((48, 40), bool)
    hole[10:20, 12:22] = True
    result = np.asarray(inpaint(photo, hole, model=model))
    assert result.shape == photo.shape and np.array_equal(result[~hole], photo[~hole])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resolution": 48}, "power of two >= 32"),
        ({"attention_layers": (4, 5)}, "attention_layers must be"),
        ({"texture_widths": (4, 8, 8)}, "texture_widths needs 4 entries"),
        ({"stylegan_resolution": 12}, "StyleGAN2 resolution must be a power of two"),
        ({"stylegan_resolution": 16}, "must split the generator's 6 styles"),
    ],
)
def test_bad_config(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_bad_inputs_and_config_json(tmp_path: Path) -> None:
    model = TwoStageInpainter(tiny_config())
    with pytest.raises(ValueError, match="must be 32x32"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16))
    assert dataclasses.replace(tiny_config(), resolution=64).stylegan.resolution == 64  # 0 follows the image side
