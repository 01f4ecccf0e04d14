"""The registry: presets registered by their families, the one model-spec resolution, and the loaded-model cache."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from hf_faceinpaint import MSLConfig, MSLInpainter
from hf_faceinpaint.hub import HUB_CLASSES
from hf_faceinpaint.models import registry
from hf_faceinpaint.models.classic import ClassicInpainter


def test_every_family_registered_its_presets_and_class() -> None:
    assert {"msl-256", "msl-tiny-128", "twostage-256", "twostage-tiny-128"} <= set(registry.list_presets())
    assert {"MSLInpainter", "TwoStageInpainter", "FaceInpaintPipeline"} <= set(HUB_CLASSES)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_preset("msl-256", MSLConfig())
    with pytest.raises(ValueError, match="not a MSLInpainter preset"):
        MSLInpainter.from_preset("twostage-tiny-128")


def test_resolve_model_says_what_a_spec_is(tmp_path: Path) -> None:
    telea = registry.resolve_model("telea")
    assert isinstance(telea.model, ClassicInpainter) and telea.source.startswith("OpenCV")
    shipped = registry.resolve_model(None)
    assert shipped.name == "msl-face" and shipped.source.startswith("shipped checkpoint: ") and not shipped.untrained
    untrained = registry.resolve_model("msl-tiny-128", allow_untrained=True)
    assert untrained.untrained and "UNTRAINED" in untrained.source
    MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(tmp_path)
    assert registry.resolve_model(str(tmp_path)).source == f"local directory: {tmp_path.resolve()}"


def test_loaded_checkpoints_are_cached_by_spec_device_and_dtype(tmp_path: Path) -> None:
    registry.MODEL_CACHE.clear()
    MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(tmp_path)
    first = registry.load_model(str(tmp_path))
    assert registry.load_model(str(tmp_path)) is first
    assert registry.load_model(str(tmp_path), dtype=torch.float64) is not first  # another dtype, another copy
    assert registry.load_model("msl-face") is registry.load_model(None)
    MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(tmp_path)  # rewritten: loaded afresh
    assert registry.load_model(str(tmp_path)) is not first
    assert registry.load_model("msl-tiny-128", allow_untrained=True) is not registry.load_model(
        "msl-tiny-128", allow_untrained=True
    )  # untrained presets are never cached


def test_concurrent_loads_share_one_model(tmp_path: Path) -> None:
    registry.MODEL_CACHE.clear()
    MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(tmp_path)
    loaded: list[torch.nn.Module] = []
    threads = [threading.Thread(target=lambda: loaded.append(registry.load_model(str(tmp_path)))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loaded[0] is loaded[1]


def test_the_cache_keeps_the_last_few(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.MODEL_CACHE.clear()
    monkeypatch.setattr(registry, "CACHE_SIZE", 2)
    folders = []
    for index in range(3):
        folders.append(tmp_path / str(index))
        MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(folders[-1])
    first = registry.load_model(str(folders[0]))
    registry.load_model(str(folders[1]))
    registry.load_model(str(folders[2]))  # drops the least recently used, folders[0]
    assert registry.load_model(str(folders[0])) is not first


@pytest.mark.parametrize("device", ["meta", "cuda", "cuda:99"])
def test_a_device_no_model_can_run_on_is_a_value_error(tmp_path: Path, device: str) -> None:
    """The Python API's `device=`: the meta device (no data), or CUDA on a machine without it (or without that
    many GPUs), is a ValueError naming the device, not an AssertionError from torch or a crash at inference."""
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"device '{device}'"):
        registry.load_model(str(tmp_path), device=device)
