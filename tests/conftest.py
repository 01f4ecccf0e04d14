"""Shared fixtures. Tests run on the CPU from a fresh clone; ../shared data is only used when present."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SHARED = Path(os.environ.get("HF_FACEINPAINT_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def script_module() -> Callable[[str], ModuleType]:
    """Import `scripts/NAME.py` as a module (scripts are not in the package): script_module("eval_portraits")."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder with the real data, or skip when this clone has none beside it."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def no_shipped_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this installation has no shipped trained checkpoint (as before `msl-face` was trained)."""
    from hf_faceinpaint import editor
    from hf_faceinpaint.models import registry

    for module in (registry, editor):
        monkeypatch.setattr(module, "shipped_checkpoint", lambda name: None)


@pytest.fixture(scope="session")
def eyes_painted_over() -> tuple[np.ndarray, np.ndarray]:
    """The bundled 512² portrait and a mask of two 48×30 ellipses over its eyes: with both eyes hidden, the face
    cascade finds no face there, Telea's fill or not."""
    from hf_faceinpaint.images import example_image_path, image_array, load_image

    photo = image_array(load_image(example_image_path()))  # (512, 512, 3)
    rows, cols = np.ogrid[: photo.shape[0], : photo.shape[1]]
    eyes = [(202, 99), (249, 103)]  # the ellipses' centres (col, row)
    mask = np.logical_or.reduce([((cols - x) / 24) ** 2 + ((rows - y) / 15) ** 2 <= 1 for x, y in eyes])
    return photo, mask
