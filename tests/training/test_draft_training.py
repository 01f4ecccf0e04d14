"""The face draft's refiner trained by `train.py` (`training/draft.py`): only the refiner learns, a run resumes, and
--init-from takes a pipeline's draft (a shipped name too), or warm-starts a fine level from a refiner without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from hf_faceinpaint.face.draft import DRAFT_PRESETS, GappyPCADraft
from hf_faceinpaint.face.prior import fit_pca, save_fit
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.training import main, parse_config
from hf_faceinpaint.training.draft import DraftTask

from test_trainer import flags


@pytest.fixture(scope="module")
def pca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PCA of the draft preset's size (64², 200 components) fitted on random faces."""
    path = tmp_path_factory.mktemp("pca") / "pca.safetensors"
    faces = torch.rand(110, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_fit(path, *fit_pca(faces, 200))
    return path


def test_the_refiner_trains_and_resumes_and_the_pca_stays(tmp_path: Path, face_folder: Path, vgg_file: Path,
                                                            pca_file: Path) -> None:
    settings = dict(model="pca-refiner-128", resolution=None, prior_weights=pca_file, mask_kind="face", max_steps=2,
                    checkpoint_every=1, sample_every=0, val_every=2, w_draft_style=0.5)
    assert main(flags(face_folder, vgg_file, tmp_path / "run", **settings)) == 0
    assert main(flags(face_folder, vgg_file, tmp_path / "run", **{**settings, "max_steps": 3}, resume="latest")) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["step"] for r in records if "loss/g" in r) == [1, 2, 3]
    last = [r for r in records if "loss/g" in r][-1]
    assert {"loss/l1_hole", "loss/l1", "loss/perc", "loss/style", "loss/adv", "loss/d"} <= set(last)
    assert any("val/psnr" in r for r in records)
    trained = GappyPCADraft.from_pretrained(tmp_path / "run" / "final")
    assert trained.config == DRAFT_PRESETS["pca-refiner-128"]
    config = parse_config(flags(face_folder, vgg_file, tmp_path / "x", **settings))
    task = DraftTask(config, Accelerator(cpu=True))
    built = task.build(trained.config)  # the same PCA file in a new draft
    assert [name for name, p in built.named_parameters() if p.requires_grad] == [
        name for name, _ in built.named_parameters() if name.startswith("refiner.")]
    assert task.trained is built.refiner
    for key, value in trained.state_dict().items():
        if key.startswith("pca."):  # the PCA is as fitted: only the refiner learned
            assert torch.equal(value, built.state_dict()[key]), key
    assert "Losses: L1 on 4×4 cell means" in (tmp_path / "run" / "final" / "README.md").read_text()


def test_init_from_takes_a_pipelines_draft_and_warm_starts_a_fine_level(tmp_path: Path, face_folder: Path,
                                                                        vgg_file: Path) -> None:
    config = parse_config(flags(face_folder, vgg_file, tmp_path / "run", model="pca-refiner-128", resolution=None,
                                init_from="msl-face", mask_kind="face"))
    task = DraftTask(config, Accelerator(cpu=True))
    draft = GappyPCADraft(DRAFT_PRESETS["pca-refiner-128"])
    task.init_from(draft, "msl-face")
    shipped = load_model("msl-face").draft
    for key, value in draft.state_dict().items():
        assert torch.equal(value, shipped.state_dict()[key]), key
    # a refiner without the fine level (pca-refiner-64, msl-face v3) starts this one's; its fine level starts as
    # the grid's face upsampled
    coarse = GappyPCADraft(DRAFT_PRESETS["pca-refiner-64"])
    coarse.load_state_dict({k: v for k, v in shipped.state_dict().items() if not k.startswith("refiner.fine")})
    coarse.save_pretrained(tmp_path / "v3")
    warm = GappyPCADraft(DRAFT_PRESETS["pca-refiner-128"])
    task.init_from(warm, str(tmp_path / "v3"))
    assert torch.equal(warm.refiner.stem[0].weight, coarse.refiner.stem[0].weight)
    assert warm.refiner.fine_head.weight.abs().max() == 0
