"""`scripts/compare_part_boxes.py`: the hole windows, the grid's layout, and the script end to end with Telea."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from hf_faceinpaint.images import example_image_path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_part_boxes.py"


def test_the_window_is_the_box_grown_about_its_centre_in_the_frame(script_module: Callable[[str], ModuleType]) -> None:
    window = script_module("compare_part_boxes").part_window
    assert window("mouth", 100, 1.0) == (64, 84, 30, 70)
    assert window("mouth", 100, 1.5) == (59, 89, 20, 80)
    assert window("half-face", 100, 1.25) == (0, 100, 0, 56)  # grown past the frame: clipped


def test_each_row_is_the_real_crop_then_each_methods_crop(script_module: Callable[[str], ModuleType]) -> None:
    module = script_module("compare_part_boxes")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 100, 100, 3), dtype=np.uint8)
    outs = [[rng.integers(0, 256, (100, 100, 3), dtype=np.uint8) for _ in faces] for _ in range(3)]
    grid = module.comparison_grid(faces, {"mouth": outs}, ["mouth"], 1.0, 5)
    rows, width = 30, 50  # the mouth box (64:84, 30:70) with a margin of 5 on every side: 59:89, 25:75
    assert grid.shape == (2 * (rows + module.GAP), 4 * width, 3)
    second = grid[rows + module.GAP : 2 * rows + module.GAP]
    assert np.array_equal(second[:, :width], faces[1][59:89, 25:75])
    assert np.array_equal(second[:, 3 * width :], outs[2][1][59:89, 25:75])
    assert not grid[rows : rows + module.GAP].any()  # the black gap between rows


def test_the_script_writes_the_enlarged_grid(tmp_path: Path, script_module: Callable[[str], ModuleType]) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    photo = Image.open(example_image_path()).convert("RGB")
    for i, left in enumerate((151, 140)):
        photo.crop((left, 18, left + 168, 186)).save(folder / f"{i}.png")
    out = tmp_path / "grid.png"
    done = subprocess.run([sys.executable, str(SCRIPT), str(folder), "telea", "ns", "--out", str(out),
                           "--resolution", "64", "--parts", "eyes,nose", "--zoom", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    module = script_module("compare_part_boxes")
    crops = [module.part_window(part, 64, 1.25) for part in ("eyes", "nose")]
    crops = [(min(b + 12, 64) - max(t - 12, 0), min(r + 12, 64) - max(l - 12, 0)) for t, b, l, r in crops]
    height = sum(2 * (h + module.GAP) for h, _ in crops)  # two faces per part
    width = 3 * max(w for _, w in crops)  # truth | telea | ns
    grid = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert grid.shape[:2] == (2 * height, 2 * width)
    truth, telea, ns = (grid[: 2 * crops[0][0], i * 2 * width // 3 : (i + 1) * 2 * width // 3] for i in range(3))
    assert np.abs(telea - truth).mean() > 1 and np.abs(ns - telea).mean() > 0.1  # the eyes filled, by each method
    assert not list(tmp_path.glob(".grid.png*"))  # no temporary file left


def test_an_unknown_part_is_refused_by_name(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "telea", "--out", str(tmp_path / "g.png"),
                           "--parts", "eyes,ears"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "unknown --parts ears" in done.stderr
    assert not (tmp_path / "g.png").exists()


def test_a_missing_or_empty_folder_is_one_error_line(tmp_path: Path) -> None:
    for args in ([str(tmp_path / "nowhere"), "telea"], [str(tmp_path), "telea"]):
        done = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path / "g.png")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("compare_part_boxes.py: error: ")
    assert "no image files" in done.stderr and str(tmp_path) in done.stderr  # the empty folder, named
