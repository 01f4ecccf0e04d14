"""What every registered preset must do, whatever its family (the timm / diffusers tester-mixin pattern):
forward and backward at a small size, compositing, bit-exact save / load, the `load_model` round trip, and the class
chosen from `config.json` (also for folders saved before the class name was written)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from hf_faceinpaint import MSLConfig, TwoStageConfig, list_presets
from hf_faceinpaint.components import CLASS_KEY, COMPONENTS
from hf_faceinpaint.models.registry import INFERENCE_FORMAT, inference_layout, load_model, load_pretrained, preset_config


def small(name: str) -> torch.nn.Module:
    """The preset's architecture switches at a CPU-test size (the 256² and StyleGAN2 presets are hundreds of MB)."""
    config = preset_config(name)
    if isinstance(config, MSLConfig):
        config = dataclasses.replace(config, resolution=2 * config.size_multiple,
                                     widths=tuple(min(w, 16) for w in config.widths), discriminator_widths=(8, 16))
    elif isinstance(config, TwoStageConfig):
        config = dataclasses.replace(
            config, resolution=32, stylegan_resolution=0, stylegan_style_dim=8, stylegan_n_mlp=2,
            stylegan_channel_base=128, stylegan_channel_max=16, encoder_widths=(4, 8, 12, 16),
            encoder_units=(1, 1, 1, 1), texture_widths=(4, 8, 8, 12), discriminator_widths=(8, 16),
        )
    model = next(cls for cls in COMPONENTS.values() if type(config) is cls.config_class)(config)
    # non-trivial BatchNorm statistics, so a round trip that dropped buffers would show
    model.train()
    with torch.no_grad():
        model(*batch(4, config.resolution))
    return model.eval()


def batch(size: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(size * side)
    image = torch.rand(size, 3, side, side, generator=generator) * 2 - 1  # (B, 3, H, W)
    mask = torch.zeros(size, 1, side, side)
    mask[..., side // 4 : 3 * side // 4, side // 3 : side - 2] = 1  # (B, 1, H, W)
    return image, mask


PRESETS = list_presets()


@pytest.mark.parametrize("name", PRESETS)
def test_forward_backward_and_compositing(name: str) -> None:
    model = small(name).train()
    image, mask = batch(2, model.config.resolution)
    raw = model.generate(image, mask)
    assert raw.shape == image.shape
    raw.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.eval()
    other = torch.where(mask.bool(), torch.rand_like(image), image)  # same known pixels, other hole content
    with torch.inference_mode():
        out = model(image, mask)
        assert torch.equal(out * (1 - mask), image * (1 - mask))  # known pixels are the input, exactly
        assert torch.equal(out, model(other, mask)) and not torch.equal(out, image)
    logits = model.build_discriminator()(image, mask)
    assert logits.shape[:2] == (2, 1)


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip_is_bit_exact_and_names_the_class(name: str, tmp_path: Path) -> None:
    model = small(name)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config[CLASS_KEY] == type(model).__name__
    image, mask = batch(2, model.config.resolution)
    with torch.inference_mode():
        expected = model(image, mask)
        served = load_model(str(tmp_path / "ckpt"))
        for loaded in (type(model).from_pretrained(tmp_path / "ckpt"), load_pretrained(tmp_path / "ckpt"), served):
            assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
            assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
            if loaded is not served:
                assert torch.equal(loaded(image, mask), expected)
        # load_model lays 4-D weights out for inference, and gives what the saved model gives in that layout
        weights = served.state_dict().values()
        assert all(w.dim() != 4 or w.is_contiguous(memory_format=INFERENCE_FORMAT) for w in weights)
        assert torch.equal(served(image, mask), inference_layout(model)(image, mask))


@pytest.mark.parametrize("name", PRESETS)
def test_folders_saved_before_the_class_name_still_load(name: str, tmp_path: Path) -> None:
    model = small(name)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config[CLASS_KEY]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert type(load_pretrained(tmp_path)) is type(model)


def test_an_unknown_class_name_is_refused(tmp_path: Path) -> None:
    small("msl-tiny-128").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[CLASS_KEY] = "NoSuchInpainter"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="NoSuchInpainter"):
        load_pretrained(tmp_path)
