"""pSp encoder: the number of styles, their coarse / middle / fine grouping over the pyramid, and the ArcFace IR-SE
loader whose layout the encoder's body shares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hf_faceinpaint import CheckpointError
from hf_faceinpaint.models.arcface import ArcFaceIRSE
from hf_faceinpaint.models.psp import PSpEncoder

WIDTHS, UNITS = (4, 8, 12, 16), (1, 1, 1, 1)


def encoder(resolution: int, n_styles: int) -> PSpEncoder:
    return PSpEncoder(4, resolution, n_styles, style_dim=6, widths=WIDTHS, units=UNITS).eval()


@pytest.mark.parametrize(("resolution", "n_styles"), [(64, 18), (64, 14), (32, 8)])
def test_number_of_styles_and_pyramid_levels(resolution: int, n_styles: int) -> None:
    model = encoder(resolution, n_styles)
    assert model(torch.randn(2, 4, resolution, resolution)).shape == (2, n_styles, 6)
    # map2style: log2(side) stride-2 convs from the level's side down to 1×1.
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in block.convs) for block in model.styles]
    sides = [resolution // 16] * 3 + [resolution // 8] * 4 + [resolution // 4] * (n_styles - 7)
    assert convs == [max(1, side.bit_length() - 1) for side in sides]


def perturbed_styles(model: PSpEncoder, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Which styles change when the weights of `module` change: (n_styles,) bool."""
    with torch.no_grad():
        before = model(x)
        for param in module.parameters():
            param.add_(torch.randn_like(param))
        return (model(x) - before).abs().amax(dim=(0, 2)) > 0


def test_grouping_follows_the_paper() -> None:
    """Styles 0-2 come from the smallest map only, 3-6 from the middle map, 7-17 from the largest (paper 3.1)."""
    model = encoder(32, 18)
    x = torch.randn(1, 4, 32, 32)
    coarse, middle, fine = torch.arange(18) < 3, (torch.arange(18) >= 3) & (torch.arange(18) < 7), torch.arange(18) >= 7
    assert torch.equal(perturbed_styles(model, model.latlayer2, x), fine)  # lateral of the largest map
    assert torch.equal(perturbed_styles(model, model.latlayer1, x), middle | fine)  # it also feeds the largest map
    assert torch.equal(perturbed_styles(model, model.body[-1], x), coarse | middle | fine)


def test_small_generator_keeps_coarse_and_middle_groups() -> None:
    model = encoder(32, 14)
    changed = perturbed_styles(model, model.latlayer2, torch.randn(1, 4, 32, 32))
    assert torch.equal(changed, torch.arange(14) >= 7)  # fine = 7-13 at 256² generators


def test_bad_grouping() -> None:
    with pytest.raises(ValueError, match="three non-empty groups"):
        PSpEncoder(4, 32, 6, 6, WIDTHS, UNITS)  # a 16² generator: no fine styles
    with pytest.raises(ValueError, match="four stages"):
        PSpEncoder(4, 32, 8, 6, (4, 8, 16), (1, 1, 1))


def test_arcface_loads_its_own_layout_and_old_checkpoints(tmp_path: Path) -> None:
    model = ArcFaceIRSE(widths=(8, 16, 24, 32), units=(1, 2, 3, 1), embedding=16).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 file
    assert {"input_layer.0.weight", "body.0.res_layer.5.fc1.weight", "output_layer.3.weight", "output_layer.4.running_var"} <= set(state)
    torch.save(state, tmp_path / "model_ir_se50.pth")
    loaded = ArcFaceIRSE.from_file(tmp_path / "model_ir_se50.pth")
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        embedding = loaded(faces)
        assert torch.equal(embedding, model(faces))
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))


def test_arcface_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        ArcFaceIRSE.from_file(tmp_path / "missing.pth")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an IR-SE ArcFace state dict"):
        ArcFaceIRSE.from_file(tmp_path / "other.pth")
    state = ArcFaceIRSE(widths=(8, 16, 24, 32), units=(1, 1, 1, 1), embedding=16).state_dict()
    state["output_layer.3.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "misshaped.pth")
    with pytest.raises(CheckpointError, match="mis-shaped keys: output_layer.3.bias"):
        ArcFaceIRSE.from_file(tmp_path / "misshaped.pth")
    (tmp_path / "garbage.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read ArcFace weights"):
        ArcFaceIRSE.from_file(tmp_path / "garbage.pth")
