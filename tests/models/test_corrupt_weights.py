"""Corrupt weights are refused at load, naming the tensor: NaN or infinite values in a floating tensor, and a dtype
the model's tensor cannot take (integer or bool into float, float into integer); float16 into float32 still loads.
Covers pipelines (the draft's int8 basis codes), a component of its own (a draft folder) and the loader that does
not go through `from_pretrained`: the draft's PCA file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_faceinpaint import CheckpointError, FaceInpaintPipeline, MSLConfig, MSLInpainter
from hf_faceinpaint.face import CascadeFramer, GappyPCADraft, GappyPCADraftConfig
from hf_faceinpaint.face.prior import GappyPCA, load_fit_file

CONV = "network.encoders.0.levels.0.0.conv.weight"  # a floating weight of every MSL pipeline


def tiny_draft(refiner_width: int = 0) -> GappyPCADraft:
    return GappyPCADraft(GappyPCADraftConfig(size=16, components=12, ridge=0.5, refiner_width=refiner_width,
                                             refiner_fine=False))


def saved_model(folder: Path) -> dict[str, torch.Tensor]:
    """A tiny MSL pipeline saved to `folder` (with a draft: its int8 and float tensors); returns its weights."""
    network = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16, 16), discriminator_widths=(8, 16)))
    FaceInpaintPipeline(network, CascadeFramer(), tiny_draft()).save_pretrained(folder)
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
        FaceInpaintPipeline.from_pretrained(tmp_path)
    assert CONV in str(err.value) and "is corrupt" in str(err.value)


def test_float16_weights_and_integer_buffers_of_their_own_dtype_load(tmp_path: Path) -> None:
    weights = saved_model(tmp_path)
    integers = {str(v.dtype) for v in weights.values() if not v.is_floating_point()}
    assert {"torch.int8", "torch.int64"} <= integers  # the prior's basis codes, BN's counters
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, tmp_path / "model.safetensors")
    model = FaceInpaintPipeline.from_pretrained(tmp_path)
    assert model.state_dict()[CONV].dtype == torch.float32
    torch.testing.assert_close(model.state_dict()[CONV], weights[CONV].half().float())


def test_a_float_tensor_is_refused_where_the_model_holds_integers(tmp_path: Path) -> None:
    weights = saved_model(tmp_path)
    codes = next(key for key, value in weights.items() if value.dtype == torch.int8)
    weights[codes] = weights[codes].float()
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"wrong dtype: {codes} \(float32, the model needs int8\)"):
        FaceInpaintPipeline.from_pretrained(tmp_path)


@pytest.mark.parametrize(("key", "damage"), [("mean", "nan"), ("variance", "int8")])
def test_a_corrupt_pca_file_is_refused(tmp_path: Path, key: str, damage: str) -> None:
    pca = GappyPCA(16, 12, 0.5)
    state = {"mean": pca.mean, "basis": pca.basis.contiguous(), "variance": pca.variance}  # as `save_fit` writes
    state[key] = damaged(state[key], damage)
    path = tmp_path / "pca.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError, match=key):
        load_fit_file(GappyPCA(16, 12, 0.5), path)


@pytest.mark.parametrize(("key", "damage"), [("refiner.head.weight", "inf"), ("refiner.stem.0.weight", "bool")])
def test_a_corrupt_draft_folder_is_refused(tmp_path: Path, key: str, damage: str) -> None:
    tiny_draft(refiner_width=8).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state[key] = damaged(state[key], damage)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="is corrupt"):
        GappyPCADraft.from_pretrained(tmp_path)
