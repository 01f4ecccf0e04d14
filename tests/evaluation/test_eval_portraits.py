"""`scripts/eval_portraits.py`: the portrait it builds around a face, and its table end to end on the bundled
public-domain face (cropped as the training faces are framed) with the shipped model and Telea."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from hf_faceinpaint.images import example_image_path
from hf_faceinpaint.masks import FACE_PARTS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "eval_portraits.py"
ASTRONAUT_FACE = (151, 18, 168)  # left, top, side of the astronaut's face framed as the training faces are


def test_the_face_sits_unchanged_on_a_blurred_mirror_of_itself(script_module: Callable[[str], ModuleType]) -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    photo = script_module("eval_portraits").portrait(face, 96, 10, 50)
    assert photo.shape == (96, 96, 3) and photo.dtype == np.uint8
    assert np.array_equal(photo[10:42, 50:82], face)
    background = np.delete(photo.reshape(-1, 3), [r * 96 + c for r in range(10, 42) for c in range(50, 82)], axis=0)
    assert background.std(axis=0).max() < face.std(axis=0).min() / 4  # blurred: the noise is gone


def test_the_table_has_framed_and_unframed_rows(tmp_path: Path) -> None:
    left, top, side = ASTRONAUT_FACE
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.open(example_image_path()).convert("RGB").crop((left, top, left + side, top + side)).save(folder / "a.png")
    done = subprocess.run([sys.executable, str(SCRIPT), str(folder), "--methods", "msl-face,telea", "--face", "128",
                           "--canvas", "320"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {tuple(cells[:2]): cells[2:] for line in done.stdout.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[0] != "method"}
    assert set(rows) == {("msl-face", "yes"), ("msl-face", "no"), ("telea", "no")}
    for cells in rows.values():
        assert len(cells) == len(FACE_PARTS)
        for cell in cells:
            psnr, ssim = map(float, re.fullmatch(r"(\S+) / (\S+)", cell).groups())
            assert 10 < psnr < 60 and 0 < ssim <= 1
    assert rows[("msl-face", "yes")] != rows[("msl-face", "no")]  # the face was found and framed


def test_a_face_larger_than_the_photo_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--face", "300", "--canvas", "200"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--face <= --canvas" in done.stderr
