"""Small generated evaluation data (no ../shared needed): face-like images, a mask folder with known buckets,
random LPIPS / VGG16 weights and a tiny TorchScript stand-in for the FID Inception network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from hf_faceinpaint.models.vgg import VGG16Features

# Hole rectangles (height, width) on a 64×64 canvas, at even offsets and of even sides, so nearest-neighbour
# resizing to 32×32 keeps the hole ratio exactly: 4 in (10%, 20%], 4 in (20%, 30%], one below, one above.
RECTANGLES = {
    "m00.png": (20, 24), "m01.png": (24, 24), "m02.png": (22, 30), "m03.png": (28, 28),
    "m04.png": (30, 30), "m05.png": (32, 32), "m06.png": (34, 34), "m07.png": (28, 40),
    "m08.png": (8, 8), "m09.png": (48, 48),
}


def smooth_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random colour image (low-frequency noise upsampled), (height, width, 3) uint8."""
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((width, height), Image.BICUBIC))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """8 non-square 48×40 PNG photos (centre-cropped and resized by the evaluation)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        Image.fromarray(smooth_image(rng, 48, 40)).save(folder / f"face_{index}.png")
    return folder


@pytest.fixture
def mask_folder(tmp_path: Path) -> Path:
    """The `RECTANGLES` masks, 64×64, 255 = hole, with a masks.csv of their native ratios (as NVIDIA's folder)."""
    folder = tmp_path / "masks"
    folder.mkdir()
    rows = ["file,hole_ratio"]
    for index, (name, (height, width)) in enumerate(RECTANGLES.items()):
        mask = np.zeros((64, 64), np.uint8)
        top, left = 2 * (index % 3), 2 * (index % 5)
        mask[top : top + height, left : left + width] = 255
        Image.fromarray(mask).save(folder / name)
        rows.append(f"{name},{np.count_nonzero(mask) / mask.size:.6f}")
    (folder / "masks.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def lpips_files(tmp_path: Path) -> tuple[Path, Path]:
    """(random VGG16 backbone as float16 safetensors, random LPIPS v0.1 heads .pth)."""
    backbone = tmp_path / "vgg16_random.safetensors"
    save_file({k: v.half().contiguous() for k, v in VGG16Features().state_dict().items()}, str(backbone))
    heads = tmp_path / "lpips_heads.pth"
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}, heads)
    return backbone, heads


class _TinyInception(nn.Module):
    """(B, 3, 299, 299) -> (B, 2048): a fixed random projection of 4×4 average-pooled pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(48, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.adaptive_avg_pool2d(x, 4).flatten(1))


@pytest.fixture
def fid_weights(tmp_path: Path) -> Path:
    """A TorchScript file with the FID Inception interface, for `--fid-weights`."""
    path = tmp_path / "tiny_inception.pt"
    torch.jit.save(torch.jit.script(_TinyInception()), str(path))
    return path


@pytest.fixture
def one_error_line(capsys: pytest.CaptureFixture[str]) -> Callable[..., None]:
    """A check: exit status 2 and exactly one "error: ..." line on stderr that contains every needle."""

    def check(status: int, *needles: str) -> None:
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert status == 2, err
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        for needle in needles:
            assert needle in lines[0], lines[0]

    return check
