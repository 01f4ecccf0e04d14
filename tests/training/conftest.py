"""A tiny on-disk face dataset and random VGG16 weights in torchvision's layout, made fresh for each session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour image (low-frequency noise upsampled), distinct per draw."""
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((size, size), Image.BICUBIC))


@pytest.fixture(scope="session")
def face_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 distinct 32×32 PNG images (the training resolution, so pixels are not resampled); each one's top-left pixel value encodes its index (for sharding checks)."""
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for index in range(24):
        image = smooth_image(rng, 32)
        image[0, 0] = (index, 255 - index, 7)
        Image.fromarray(image).save(folder / f"face_{index:03d}.png")
    return folder


@pytest.fixture(scope="session")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hf_faceinpaint.models.vgg import VGG16Features

    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.safetensors"
    save_file({k: v.contiguous() for k, v in VGG16Features().state_dict().items()}, path)
    return path
