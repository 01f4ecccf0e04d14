"""Corrupt weights are refused at load, naming the tensor: NaN or infinite values in a floating tensor, and a dtype
the model's tensor cannot take (integer or bool into float, float into integer); float16 into float32 still loads.
Covers the loaders that do not go through `from_pretrained`: the face prior's PCA and refiner files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_faceinpaint import CheckpointError, MSLConfig, MSLInpainter
from hf_faceinpaint.models.prior import FacePrior, load_fit_file, load_refiner_file

CONV = "encoders.0.levels.0.0.conv.weight"  # a floating weight of every MSL model


def saved_model(folder: Path) -> dict[str, torch.Tensor]:
    """A tiny MSL model saved to `folder` (with a face prior: its int8 and float16 tensors); returns its weights."""
    config = MSLConfig(resolution=32, widths=(8, 16, 16), discriminator_widths=(8, 16), prior_size=16,
                       prior_components=12)
    MSLInpainter(config).save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def damaged(tensor: torch.Tensor, damage: str) -> torch.Tensor:
    if damage == "nan":
        return tensor.clone().index_fill_(0, torch.tensor([0]), float("nan"))
    if damage == "inf":
        return tensor.clone().index_fill_(0, torch.tensor([1]), -float("inf"))
    return (tensor * 100).to(getattr(torch, damage))  # int8 or bool: what a silent cast made garbage of


@pytest.mark.parametrize(("damage", "needle"), [("nan", "NaN or infinite values"), ("inf", "NaN or infinite values"),
                                                 ("int8", "wrong dtype"), ("bool", "wrong dtype")])
def test_a_corrupt_checkpoint_is_refused_naming_the_tensor(tmp_path: Path, damage: str, needle: str) -> None:
    weights = saved_model(tmp_path)
    assert CONV in weights
    weights[CONV] = damaged(weights[CONV], damage)
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=needle) as err:
        MSLInpainter.from_pretrained(tmp_path)
    assert CONV in str(err.value) and "is corrupt" in str(err.value)


def test_float16_weights_and_integer_buffers_of_their_own_dtype_load(tmp_path: Path) -> None:
    weights = saved_model(tmp_path)
    integers = {str(v.dtype) for v in weights.values() if not v.is_floating_point()}
    assert {"torch.int8", "torch.int64"} <= integers  # the prior's basis codes, BN's counters
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, tmp_path / "model.safetensors")
    model = MSLInpainter.from_pretrained(tmp_path)
    assert model.state_dict()[CONV].dtype == torch.float32
    torch.testing.assert_close(model.state_dict()[CONV], weights[CONV].half().float())


def test_a_float_tensor_is_refused_where_the_model_holds_integers(tmp_path: Path) -> None:
    weights = saved_model(tmp_path)
    codes = next(key for key, value in weights.items() if value.dtype == torch.int8)
    weights[codes] = weights[codes].float()
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"wrong dtype: {codes} \(float32, the model needs int8\)"):
        MSLInpainter.from_pretrained(tmp_path)


@pytest.mark.parametrize(("key", "damage"), [("mean", "nan"), ("variance", "int8"), ("refiner.head.weight", "inf"),
                                             ("refiner.stem.0.weight", "bool")])
def test_a_corrupt_face_prior_file_is_refused(tmp_path: Path, key: str, damage: str) -> None:
    prior = FacePrior(16, 12, 0.5, refiner_width=4)
    state = {k: v.contiguous() for k, v in prior.state_dict().items()}
    state["basis"] = state.pop("basis_codes").float() * state.pop("basis_scale")[:, None]  # a PCA as `save_fit` writes
    state[key] = damaged(state[key], damage)
    path = tmp_path / "prior.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError, match=key.removeprefix("refiner.")):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4), path)
    if key.startswith("refiner."):  # the refiner-only file of `--export-refiner`
        save_file({k: v for k, v in state.items() if k.startswith("refiner.")}, path)
        with pytest.raises(CheckpointError, match="is corrupt"):
            load_refiner_file(FacePrior(16, 12, 0.5, refiner_width=4), path)
