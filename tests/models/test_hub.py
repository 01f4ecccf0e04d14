"""Hub packaging: config.json and the model card, and bad checkpoints failing clearly (round trips of every preset
are in test_common.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_faceinpaint import CheckpointError, FaceInpaintPipeline, MSLConfig, MSLInpainter
from hf_faceinpaint.models.registry import load_model, load_pretrained


def tiny() -> MSLInpainter:
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16, 16), discriminator_widths=(8, 16)))
    # Non-trivial BN statistics, so a round trip that dropped buffers would show.
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32) * 2 - 1, (torch.rand(4, 1, 32, 32) > 0.7).float())
    return model.eval()


def test_config_json_and_model_card(tmp_path: Path) -> None:
    model = tiny()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["widths"] == [8, 16, 16] and config["_class_name"] == "MSLInpainter"
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    card = (tmp_path / "README.md").read_text()
    assert "library_name: hf-faceinpaint" in card
    assert "pipeline_tag: image-to-image" in card
    assert "MSLInpainter" in card and f"{sum(p.numel() for p in model.parameters()):,}" in card
    # Saving again re-renders the card instead of keeping a stale one.
    model.save_pretrained(tmp_path, model_card_kwargs={"model_name": "renamed-model"})
    assert "renamed-model" in (tmp_path / "README.md").read_text()


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    tiny().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    dropped = sorted(weights)[0]
    del weights[dropped]
    weights["extra.weight"] = torch.zeros(1)
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        MSLInpainter.from_pretrained(tmp_path)
    assert dropped in str(err.value) and "extra.weight" in str(err.value)


def test_mismatched_config_names_shapes(tmp_path: Path) -> None:
    tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["widths"] = [8, 16, 32]  # a different architecture than the weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="mis-shaped keys"):
        MSLInpainter.from_pretrained(tmp_path)


def test_corrupted_weights_file(tmp_path: Path) -> None:
    tiny().save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        MSLInpainter.from_pretrained(tmp_path)


def test_unknown_config_field(tmp_path: Path) -> None:
    tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["not_a_field"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not a valid MSLInpainter config: unknown MSLConfig fields: not_a_field"):
        MSLInpainter.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("resolution", None, "resolution must be an integer, got null"),
        ("resolution", 2**20, "resolution = 1048576 is outside 0..65536"),
        ("resolution", 4096, "resolution 4096 is outside 16..2048"),
        ("widths", [16, 32, 64, 200000], r"widths\[3\] = 200000 is outside"),
        ("widths", [16, 32, 64, 60000], "parameters; at most 1,000,000,000 are loaded"),
        ("widths", "deep", 'widths must be a list of at most 16 numbers, got "deep"'),
        ("use_semantic_learning", 1, "use_semantic_learning must be true or false"),
        ("attention_softmax_scale", float("inf"), "attention_softmax_scale = inf is not a finite number"),
    ],
)
def test_a_crafted_config_is_refused_before_anything_is_allocated(
    tmp_path: Path, field: str, value: object, needle: str
) -> None:
    tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(CheckpointError, match=needle):
        load_pretrained(tmp_path)


def test_activation_memory_is_bounded(tmp_path: Path) -> None:
    """Also for a pipeline's network."""
    config = {**asdict(tiny().config), "resolution": 2048, "widths": [512, 512, 512, 512]}  # huge maps
    with pytest.raises(ValueError, match="GiB of activations per image; at most 16 GiB are allowed"):
        MSLInpainter.checked_config(config)
    assert MSLInpainter.checked_config(asdict(tiny().config)) == tiny().config
    FaceInpaintPipeline.around(tiny()).save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values["network"].update(resolution=2048, widths=[512, 512, 512, 512])
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="GiB of activations per image"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(("text", "needle"), [("null", "must hold a JSON object"), ("[" * 100_000, "not valid JSON"),
                                              ("{", "not valid JSON")])
def test_a_config_that_is_not_a_json_object_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    tiny().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(text)
    for load in (load_pretrained, MSLInpainter.from_pretrained):
        with pytest.raises(CheckpointError, match=needle):
            load(tmp_path)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model directory"):
        MSLInpainter.from_pretrained(str(tmp_path / "nope" / "deeper"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        MSLInpainter.from_pretrained(tmp_path / "empty")


def test_hub_id_offline_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(OSError, match=r"could not be reached \(offline mode is set \(HF_HUB_OFFLINE\)\)"):
        MSLInpainter.from_pretrained("some-org/not-cached-model", cache_dir=tmp_path)


def test_untrained_preset_is_refused_without_opt_in() -> None:
    with pytest.raises(ValueError, match="without trained weights"):
        load_model("msl-tiny-128")
    assert isinstance(load_model("msl-tiny-128", allow_untrained=True), MSLInpainter)


def test_unknown_preset() -> None:
    with pytest.raises(KeyError, match="available presets"):
        MSLInpainter.from_preset("msl-9000")
