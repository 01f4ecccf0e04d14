"""VGG16 feature stack: torchvision key layout, strict loading from .pth / .safetensors, taps, input conventions."""

from __future__ import annotations

import hashlib
import os
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from hf_faceinpaint.hub import CheckpointError
from hf_faceinpaint.models import vgg
from hf_faceinpaint.models.vgg import TAPS, TORCHVISION_VGG16_URL, VGG16Features, load_vgg16

# tests/models/test_vgg.py -> parents[2] is the repository, ../shared sits beside it.
SHARED = Path(os.environ.get("HF_FACEINPAINT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
HED = SHARED / "weights" / "vgg16_hed" / "vgg16_features.safetensors"

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def reference_features() -> nn.Sequential:
    """torchvision.models.vgg16().features, written out layer by layer (torchvision is not available here)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


def torchvision_state_dict() -> dict[str, torch.Tensor]:
    """Random weights in the layout of torchvision's vgg16-397923af.pth, small classifier.* stand-ins included."""
    state = {f"features.{key}": value for key, value in reference_features().state_dict().items()}
    state.update({"classifier.0.weight": torch.randn(8, 4), "classifier.0.bias": torch.randn(8), "classifier.6.bias": torch.randn(3)})
    return state


def test_key_layout_matches_torchvision() -> None:
    model = VGG16Features()
    expected = {f"features.{i}.{kind}" for i in CONV_INDICES for kind in ("weight", "bias")}
    assert set(model.state_dict()) == expected
    assert sum(p.numel() for p in model.parameters()) == 14_714_688
    reference = {f"features.{k}": v.shape for k, v in reference_features().state_dict().items()}
    assert {k: v.shape for k, v in model.state_dict().items()} == reference


def test_pth_with_classifier_loads_and_matches_plain_stack(tmp_path: Path) -> None:
    state = torchvision_state_dict()
    torch.save(state, tmp_path / "vgg16.pth")
    model = VGG16Features.from_file(tmp_path / "vgg16.pth", "imagenet")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not model.imagenet_weights  # not torchvision's file (sha256 prefix 397923af)

    reference = reference_features().eval()
    reference.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
    x = torch.rand(2, 3, 40, 48) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ((x + 1) / 2 - mean) / std
    expected = {}
    with torch.no_grad():
        for index, layer in enumerate(reference):
            h = layer(h.clone())
            expected[index] = h
        outs = model(x, tuple(TAPS))
    for (name, index), out in zip(TAPS.items(), outs):
        torch.testing.assert_close(out, expected[index], rtol=1e-5, atol=1e-5, msg=name)


def test_torchvision_file_is_recognised_by_its_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save(torchvision_state_dict(), tmp_path / "vgg16.pth")
    monkeypatch.setattr(vgg, "_TORCHVISION_VGG16_SHA256_PREFIX", hashlib.sha256((tmp_path / "vgg16.pth").read_bytes()).hexdigest()[:8])
    assert VGG16Features.from_file(tmp_path / "vgg16.pth", "lpips").imagenet_weights
    assert not VGG16Features.from_file(tmp_path / "vgg16.pth", "lpips", imagenet_weights=False).imagenet_weights


def test_safetensors_float16_loads_as_float32(tmp_path: Path) -> None:
    state = {k: v.half() for k, v in torchvision_state_dict().items() if k.startswith("features.")}
    save_file(state, str(tmp_path / "vgg16.safetensors"))
    model = VGG16Features.from_file(tmp_path / "vgg16.safetensors", "caffe")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(model.features[0].weight, state["features.0.weight"].float())
    assert model.normalization == "caffe"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("features.28.bias"), "features.28.bias"),
        (lambda s: s.__setitem__("features.5.weight", torch.zeros(128, 64, 5, 5)), "features.5.weight"),
        (lambda s: s.__setitem__("features.31.weight", torch.zeros(1)), "features.31.weight"),
    ],
    ids=["missing", "mis-shaped", "unexpected"],
)
def test_bad_features_keys_are_named(tmp_path: Path, edit: Callable[[dict[str, torch.Tensor]], object], message: str) -> None:
    state = torchvision_state_dict()
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message.replace(".", r"\.")):
        VGG16Features.from_file(tmp_path / "bad.pth", "imagenet")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vgg16(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_vgg16(tmp_path / "junk.pth")


def test_taps_order_shapes_and_early_stop() -> None:
    model = VGG16Features()
    calls: list[int] = []
    model.features[10].register_forward_hook(lambda *_: calls.append(10))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    pool2, relu1_2 = model(x, ("pool2", "relu1_2"))
    assert pool2.shape == (1, 128, 8, 8) and relu1_2.shape == (1, 64, 32, 32)
    assert calls == []  # features[10] (conv3_1) lies past pool2 (index 9): never run
    shapes = [tuple(out.shape) for out in model(x, tuple(TAPS))]
    assert shapes == [(1, 64, 32, 32), (1, 64, 16, 16), (1, 128, 16, 16), (1, 128, 8, 8), (1, 256, 8, 8),
                      (1, 256, 4, 4), (1, 512, 4, 4), (1, 512, 2, 2), (1, 512, 2, 2), (1, 512, 1, 1)]
    assert calls == [10]
    with pytest.raises(ValueError, match="relu9_9"):
        model(x, ("relu9_9",))


def test_normalization_conventions() -> None:
    x = torch.rand(2, 3, 8, 8) * 2 - 1  # RGB in [-1, 1]
    u = (x + 1) / 2  # RGB in [0, 1]
    imagenet = (u - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(VGG16Features("imagenet").preprocess(x), imagenet)
    # ../shared/weights/vgg16_hed/README.md: x[:, [2, 1, 0]] * 255 - [104.007, 116.669, 122.679]
    caffe = u[:, [2, 1, 0]] * 255 - torch.tensor([104.007, 116.669, 122.679]).view(1, 3, 1, 1)
    torch.testing.assert_close(VGG16Features("caffe").preprocess(x), caffe, rtol=0, atol=1e-4)
    # lpips ScalingLayer, literally
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    assert torch.equal(VGG16Features("lpips").preprocess(x), (x - shift) / scale)
    # ... which is the ImageNet normalisation rewritten for [-1, 1]
    torch.testing.assert_close(VGG16Features("lpips").preprocess(x), imagenet)
    with pytest.raises(ValueError, match="normalization"):
        VGG16Features("bgr")  # type: ignore[arg-type]


def test_gradients_flow_to_the_input_only() -> None:
    model = VGG16Features()
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_()
    model(x, ("relu2_2",))[0].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_offline_without_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match="--vgg-weights") as info:
        load_vgg16(None)
    assert TORCHVISION_VGG16_URL in str(info.value)


def test_url_loader_marks_imagenet_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_download(url: str, **kwargs: object) -> dict[str, torch.Tensor]:
        seen.update(kwargs, url=url)
        return torchvision_state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model = load_vgg16(None, normalization="lpips")
    assert model.imagenet_weights and model.normalization == "lpips"
    assert seen["url"] == TORCHVISION_VGG16_URL and seen["weights_only"] is True and seen["check_hash"] is True


@pytest.mark.shared
@pytest.mark.skipif(not HED.is_file(), reason=f"{HED} is not present")
def test_hed_stand_in_weights() -> None:
    model = load_vgg16(HED, normalization="caffe")
    assert not model.imagenet_weights
    assert all(p.dtype == torch.float32 for p in model.parameters())
    photo = Path(__file__).resolve().parents[2] / "src" / "hf_faceinpaint" / "assets" / "astronaut.png"
    image = torch.from_numpy(np.array(Image.open(photo).convert("RGB").resize((112, 112))))
    x = image.permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, 112, 112) in [-1, 1]
    with torch.no_grad():
        outs = model(x, ("relu1_2", "relu3_3", "relu5_3", "pool5"))
    assert [o.shape[1] for o in outs] == [64, 256, 512, 512]
    assert all(torch.isfinite(o).all() and o.abs().max() > 0 for o in outs)
