"""Named presets, the checkpoints shipped inside the package, and resolution of a `model=` argument."""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from .classic import CLASSIC_METHODS, ClassicInpainter
from .hub import _REPO_ID, CONFIG_NAME
from .msl import MSLConfig, MSLInpainter
from .twostage import TwoStageConfig, TwoStageInpainter

Inpainter = Union[nn.Module, ClassicInpainter]

# Name -> config. Every preset is an architecture only; trained weights are listed in SHIPPED.
PRESETS: dict[str, Any] = {
    # The paper's setting: CelebA-HQ at 256², bottleneck at 32², attention over all 32² locations.
    "msl-256": MSLConfig(resolution=256, widths=(32, 64, 128, 256), convs_per_level=1),
    # Paper Table 2 ablation: the same network without multi-scale semantic learning.
    "msl-256-wo-msl": MSLConfig(
        resolution=256, widths=(32, 64, 128, 256), convs_per_level=1, use_semantic_learning=False
    ),
    # Small enough to train on a CPU and to serve as the demo default: 128², bottleneck at 16².
    "msl-tiny-128": MSLConfig(
        resolution=128, widths=(16, 32, 64, 64), convs_per_level=0, se_reduction=4, discriminator_widths=(32, 64, 128, 128)
    ),
    # The default model's architecture (msl-face v2): a stride-2 stem before the three encoders (levels at 1/2, 1/4
    # and 1/8; attention on the 16² bottleneck), and the gappy-PCA face prior (100 components on a 64² grid) as a
    # second input whose face the decoder corrects. 2.4 GFLOPs at 128², so 256² frames run in about 0.2 s on 2 cores.
    "msl-prior-128": MSLConfig(
        resolution=128, widths=(16, 32, 64), convs_per_level=0, stem_stride=2, prior_components=100,
        discriminator_widths=(32, 64, 128, 128),
    ),
    # Two-stage paper's setting: 256² images, pSp (IR-SE-50) into a 1024² StyleGAN2 config F (18 styles, the paper's
    # count; FFHQ weights such as pSp's stylegan2-ffhq-config-f.pt plug in), attention scores from layers 4-6.
    "twostage-256": TwoStageConfig(),
    # Paper Table 2, variant 1: the texture generator alone, attention scores from layer 6 only.
    "twostage-256-variant1": TwoStageConfig(use_structure_stage=False, attention_layers=(6,)),
    # Paper Table 2, variant 2: both stages, attention scores from layer 6 only.
    "twostage-256-variant2": TwoStageConfig(attention_layers=(6,)),
    # Small enough to train both stages on a CPU: 128², a 128² StyleGAN2 (12 styles) with few channels, a 5-unit
    # IR-SE encoder; attention scores on a 16² map.
    "twostage-tiny-128": TwoStageConfig(
        resolution=128, stylegan_resolution=0, stylegan_style_dim=128, stylegan_n_mlp=4, stylegan_channel_base=2048,
        stylegan_channel_max=128, encoder_widths=(16, 32, 64, 128), encoder_units=(1, 1, 2, 1),
        texture_widths=(16, 32, 64, 64), discriminator_widths=(32, 64, 128, 128),
    ),
}

# Trained checkpoints that ship as package data: name -> folder under hf_faceinpaint/weights/.
SHIPPED: dict[str, str] = {"msl-face": "msl-face"}
DEFAULT_MODEL = "msl-face"

# Model class -> its config dataclass; `load_pretrained` picks the class whose config fields a config.json has.
MODEL_CLASSES: dict[type, type] = {MSLInpainter: MSLConfig, TwoStageInpainter: TwoStageConfig}


def list_presets() -> list[str]:
    """Names of the architecture presets accepted by `from_preset`."""
    return sorted(PRESETS)


def preset_config(name: str) -> Any:
    """A copy of the named preset's config."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available presets: {', '.join(list_presets())}")
    return copy.deepcopy(PRESETS[name])


def from_preset(name: str) -> nn.Module:
    """A freshly initialised (untrained) model of the preset's family, e.g. `TwoStageInpainter` for "twostage-256"."""
    config = preset_config(name)
    cls = next(cls for cls, config_type in MODEL_CLASSES.items() if isinstance(config, config_type))
    return cls(config)


def shipped_checkpoint(name: str) -> Path | None:
    """The package-data folder of a shipped trained checkpoint, or None if it is not in this installation."""
    if name not in SHIPPED:
        return None
    folder = Path(str(resources.files("hf_faceinpaint").joinpath("weights", SHIPPED[name])))
    return folder if (folder / "model.safetensors").is_file() else None


def model_class_for(config: dict[str, Any]) -> type:
    """The model class whose config dataclass has exactly the keys of a saved `config.json`."""
    # a config written before newer optional fields existed lacks them (their defaults keep its behaviour)
    fitting = [cls for cls, config_type in MODEL_CLASSES.items() if set(config) <= {f.name for f in fields(config_type)}]
    if len(fitting) == 1:
        return fitting[0]
    raise ValueError(f"config keys {sorted(config)} match no known model class")


def load_pretrained(path_or_repo: str | os.PathLike) -> nn.Module:
    """Load a directory written by `save_pretrained` (or a Hub repo id) with the class its config.json names."""
    name = os.fspath(path_or_repo)
    if os.path.isdir(name):
        folder: Path | None = Path(name)
    else:
        folder = _hub_config_folder(name) if not os.path.exists(name) and _REPO_ID.match(name) else None
    if folder is None or not (folder / CONFIG_NAME).is_file():
        # No config to choose a class by: from_pretrained raises the same clear error for every class
        # (a file instead of a folder, no config.json, not a repo id, offline).
        return MSLInpainter.from_pretrained(name)
    cls = model_class_for(json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")))
    return cls.from_pretrained(name)


def _hub_config_folder(repo_id: str) -> Path | None:
    """The local folder holding a Hub repo's config.json (downloaded or cached), or None if it cannot be had."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=CONFIG_NAME)).parent
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, ConnectionError, ValueError):
        return None


def load_model(
    spec: Inpainter | str | os.PathLike | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    allow_untrained: bool = False,
) -> Inpainter:
    """Resolve a `model=` argument to something that inpaints.

    Args:
        spec: A model instance; "telea" / "ns"; the name of a shipped checkpoint ("msl-face"); a preset name (only
            with `allow_untrained`); a local directory written by `save_pretrained`; or a Hub repo id. None means
            the shipped default model, or OpenCV Telea with a warning when this installation has none.
        device: Device to move a neural model to (default: leave it where it is; CPU for loaded models).
        dtype: Floating dtype for a neural model (default: keep).
        allow_untrained: Let a bare preset name build an untrained network (for tests and evaluation tables that
            label it as untrained). An untrained network never stands in for a result otherwise.
    """
    if spec is None:
        if shipped_checkpoint(DEFAULT_MODEL) is None:
            warnings.warn(
                f"no trained default model ({DEFAULT_MODEL}) ships with this installation; using OpenCV Telea instead",
                stacklevel=2,
            )
            return ClassicInpainter("telea")
        spec = DEFAULT_MODEL
    if isinstance(spec, ClassicInpainter):
        return spec
    if isinstance(spec, nn.Module):
        model = spec
    else:
        name = os.fspath(spec)
        if name in CLASSIC_METHODS:
            return ClassicInpainter(name)
        if name in SHIPPED and not os.path.exists(name):
            folder = shipped_checkpoint(name)
            if folder is None:
                raise FileNotFoundError(f"the trained checkpoint {name!r} is not part of this installation")
            model = load_pretrained(folder)
        elif name in PRESETS and not os.path.exists(name):
            if not allow_untrained:
                raise ValueError(
                    f"preset {name!r} is an architecture without trained weights; pass a trained checkpoint "
                    f"(a save_pretrained folder or Hub repo id), '{DEFAULT_MODEL}', 'telea' or 'ns'"
                )
            model = from_preset(name)
        else:
            model = load_pretrained(name)
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model
