"""Training the two-stage model through train.py's `main` with each stage's config file: stage 1 then stage 2 on tiny
settings, the variant without a structure stage, what the logs say about missing weights, and clear errors for bad
settings and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_faceinpaint import TwoStageInpainter
from hf_faceinpaint.models.arcface import ArcFaceIRSE
from hf_faceinpaint.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from hf_faceinpaint.training import main

STAGE_CONFIG = {stage: Path(__file__).resolve().parents[2] / "configs" / f"twostage-stage{stage}.yaml" for stage in (1, 2)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random stand-ins in the real formats: LPIPS heads, an ArcFace IR-SE state dict, a rosinality StyleGAN2 .pt."""
    folder = tmp_path_factory.mktemp("weights")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}, folder / "vgg.pth")
    torch.save(ArcFaceIRSE(widths=(8, 16, 24, 32), units=(1, 1, 1, 1), embedding=16).state_dict(), folder / "model_ir_se50.pth")
    generator = StyleGAN2Generator(StyleGAN2Config(resolution=32, style_dim=16, n_mlp=2, channel_base=128, channel_max=16))
    g_ema = {k: v for k, v in generator.state_dict().items() if k != "latent_avg"}
    torch.save({"g_ema": g_ema, "latent_avg": torch.randn(16)}, folder / "stylegan2.pt")
    return {"lpips": folder / "vgg.pth", "id": folder / "model_ir_se50.pth", "stylegan": folder / "stylegan2.pt"}


def flags(face_folder: Path, vgg_file: Path, output_dir: Path, **overrides: object) -> list[str]:
    settings = {
        "model": "twostage-tiny-128", "resolution": 32, "dataset": face_folder, "val-dataset": face_folder,
        "val-count": 2, "output-dir": output_dir, "max-steps": 2, "vgg-weights": vgg_file, "checkpoint-every": 2,
        "log-every": 1, "sample-every": 2, "val-every": 2, "shuffle-buffer": 8, "seed": 3,
    }
    settings.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return [item for key, value in settings.items() if value is not None for item in (f"--{key}", str(value))]


def records(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stage1_then_stage2(tmp_path: Path, face_folder: Path, vgg_file: Path, weights: dict[str, Path]) -> None:
    stage1 = tmp_path / "stage1"
    argv = flags(face_folder, vgg_file, stage1, config=STAGE_CONFIG[1], stylegan_weights=weights["stylegan"],
                 id_weights=weights["id"], lpips_weights=weights["lpips"])
    assert main(argv) == 0
    model = TwoStageInpainter.from_pretrained(stage1 / "final")
    assert model.config.stylegan == StyleGAN2Config(resolution=32, style_dim=16, n_mlp=2, channel_base=128, channel_max=16)
    pretrained = torch.load(weights["stylegan"], weights_only=True)["g_ema"]
    assert all(torch.equal(model.structure.generator.state_dict()[k], v) for k, v in pretrained.items())  # frozen
    logged = [r for r in records(stage1) if "loss/g" in r]
    assert [r["step"] for r in logged] == [1, 2]
    assert {"loss/l2", "loss/lpips", "loss/id", "loss/hole", "loss/valid"} <= set(logged[0])
    assert (stage1 / "samples" / "step-00000002.png").is_file()
    card = (stage1 / "final" / "README.md").read_text()
    assert "Stage 1 (structure reconstructor)" in card and "at batch 2 × 1 processes" in card  # the stage's config

    stage2 = tmp_path / "stage2"
    argv = flags(face_folder, vgg_file, stage2, config=STAGE_CONFIG[2], stage1_checkpoint=stage1 / "final", lr_decay_every=1)
    assert main(argv) == 0
    before, after = load_file(stage1 / "final" / "model.safetensors"), load_file(stage2 / "final" / "model.safetensors")
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("structure."))  # stage 1 frozen
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k.startswith("texture."))  # stage 2 trained
    logged = [r for r in records(stage2) if "loss/g" in r]
    assert {"loss/d", "loss/l1", "loss/perc", "loss/adv"} <= set(logged[0])
    assert [r["lr/g"] for r in logged] == pytest.approx([1e-4, 0.96e-4])  # batch 1, lr 1e-4, decayed every step here
    assert TwoStageInpainter.from_pretrained(stage2 / "final").config == model.config


@pytest.mark.slow
def test_variant1_and_stage1_without_pretrained_weights(
    tmp_path: Path, face_folder: Path, vgg_file: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    argv = flags(face_folder, vgg_file, tmp_path / "v1", model="twostage-256-variant1", config=STAGE_CONFIG[2],
                 max_steps=1, val_dataset=None, checkpoint_every=1)
    assert main(argv) == 0
    assert TwoStageInpainter.from_pretrained(tmp_path / "v1" / "final").structure is None
    argv = flags(face_folder, vgg_file, tmp_path / "s1", config=STAGE_CONFIG[1], w_id=0, lpips_weights=weights["lpips"],
                 max_steps=1, val_dataset=None, checkpoint_every=1)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "identity loss off (--w-id 0)" in out
    assert "no --stylegan-weights" in out and "randomly initialised, frozen StyleGAN2" in out
    card = (tmp_path / "s1" / "final" / "README.md").read_text()
    assert "randomly initialised and frozen" in card and "no identity loss" in card


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stage": None}, "pass --stage 1 (structure) or --stage 2 (texture)"),
        ({"stage": 1}, "--w-id 0.1 needs --id-weights FILE"),
        ({"stage": 2}, "--stage 2 of twostage-tiny-128 needs --stage1-checkpoint DIR"),
        ({"stage": 1, "model": "msl-tiny-128"}, "--stage applies to two-stage presets only"),
        ({"stage": 1, "model": "twostage-256-variant1", "w_id": 0}, "has no structure stage"),
        ({"stage": 1, "w_id": 0, "stylegan_weights": "/nonexistent/ffhq.pkl"}, "--stylegan-weights file /nonexistent/ffhq.pkl does not exist"),
        ({"stage": 2, "stage1_checkpoint": "/nonexistent"}, "is not a save_pretrained folder"),
        ({"stage": 2, "id_weights": "WEIGHTS"}, "--id-weights applies to --stage 1 only"),
    ],
)
def test_bad_settings_exit_with_a_clear_error(
    tmp_path: Path, face_folder: Path, vgg_file: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture,
    overrides: dict, message: str,
) -> None:
    overrides = {k: (weights["id"] if v == "WEIGHTS" else v) for k, v in overrides.items()}
    assert main(flags(face_folder, vgg_file, tmp_path / "run", **overrides)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ffhq.pkl", b"not a pickle", "cannot read StyleGAN2 pickle"),
        ("ffhq.pt", b"not a checkpoint", "cannot read StyleGAN2 checkpoint"),
        ("model_ir_se50.pth", b"", "cannot read ArcFace weights"),
    ],
)
def test_bad_weights_files_exit_with_a_clear_error(
    tmp_path: Path, face_folder: Path, vgg_file: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture,
    name: str, content: bytes, message: str,
) -> None:
    (tmp_path / name).write_bytes(content)
    kind = "id_weights" if name.startswith("model_ir") else "stylegan_weights"
    argv = flags(face_folder, vgg_file, tmp_path / "run", config=STAGE_CONFIG[1], lpips_weights=weights["lpips"],
                 **{"id_weights": weights["id"], kind: tmp_path / name})
    assert main(argv) == 2
    assert message in capsys.readouterr().err
