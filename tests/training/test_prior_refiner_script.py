"""`scripts/train_prior_refiner.py` end to end on a few synthetic faces: train, resume, export, and the export
loads strictly into a `FacePrior` with a refiner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hf_faceinpaint.models.prior import FacePrior, fit_pca, load_fit_file, refiner_width, save_fit

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_prior_refiner.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_train_resume_and_export(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(12):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((128, 128), Image.BICUBIC).save(faces / f"{index}.png")
    pca = tmp_path / "pca.safetensors"
    save_fit(pca, *fit_pca(torch.rand(40, 3, 16, 16) * 2 - 1, 8))
    common = [str(faces), str(tmp_path / "run"), "--prior", str(pca), "--components", "8", "--width", "4",
              "--batch-size", "2", "--save-every", "1", "--log-every", "1"]

    first = run(*common, "--steps", "2")
    assert first.returncode == 0, first.stderr
    assert "step 2:" in first.stdout and "12 faces loaded" in first.stdout
    second = run(*common, "--steps", "3", "--resume", "latest")
    assert second.returncode == 0, second.stderr
    assert "resumed at step 2" in second.stdout and "step 3:" in second.stdout
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and not (tmp_path / "run" / "checkpoint.tmp").exists()

    exported = tmp_path / "refined.safetensors"
    done = run(*common, "--export", str(exported))
    assert done.returncode == 0, done.stderr
    assert refiner_width(exported) == 4
    prior = FacePrior(16, 8, 5.0, refiner_width=4)
    load_fit_file(prior, exported)  # strict: every refiner key, the PCA of the file
    torch.testing.assert_close(prior.refiner.head.weight, state["ema"]["head.weight"])


def test_a_file_that_is_not_a_prior_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    done = run(str(tmp_path), str(tmp_path / "run"), "--prior", str(bad))
    assert done.returncode != 0 and "is not a face prior file" in done.stderr
