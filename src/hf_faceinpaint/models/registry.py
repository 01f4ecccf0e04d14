"""Presets and shipped checkpoints, and the one resolution of a model spec (`resolve_model`).

Model files register themselves, timm's direction: a family's module calls `register_preset(name, config)` for its
presets, and subclassing `base.Inpainter` (or `hub.HubModelMixin`: the pipeline) registers the class by name. This
module imports no model module.

A model spec is a loaded model, "telea" / "ns", the name of a shipped checkpoint ("msl-face"), a preset name (an
untrained architecture, only where asked for), a `save_pretrained` folder, or a Hub repo id. `resolve_model` turns
it into the model and says where its weights come from; `load_model` returns just the model. Both keep the last few
loaded checkpoints in a small cache keyed by spec, device and dtype, shared safely between threads. A folder holds
a network (a `train.py` run's `final/`) or a whole face pipeline (`pipeline.FaceInpaintPipeline`: msl-face).
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from .. import legacy
from ..components import CLASS_KEY, COMPONENTS
from ..devices import parse_device
from ..hub import _REPO_ID, CONFIG_NAME, HUB_CLASSES, hub_reachable, read_config
from .classic import CLASSIC_LABELS, CLASSIC_METHODS, ClassicInpainter

Inpainter = Union[nn.Module, ClassicInpainter]
PIPELINE_CLASS = "FaceInpaintPipeline"  # the class of a folder with a face stack (`pipeline.py`)
#: Trained checkpoints that ship as package data: name -> (folder under hf_faceinpaint/weights/, label for people).
SHIPPED: dict[str, tuple[str, str]] = {"msl-face": ("msl-face", "MSL face model")}
DEFAULT_MODEL = "msl-face"
CACHE_SIZE = 3  # loaded checkpoints kept by `load_model`
#: Memory format of the 4-D weights of the models `resolve_model` loads or builds (a model instance passed in is left
#: as it is): channels-last lets oneDNN run the convolutions without reordering each input (msl-face's inpaint() at
#: 512²: 196-201 -> 183-184 ms bf16, 265-266 -> 241-245 ms fp32 on a 2-core Xeon with AMX; no change on an AVX2 EPYC).
#: The output is the same (at most 1 grey level apart in fp32).
INFERENCE_FORMAT = torch.channels_last

PRESETS: dict[str, Any] = {}


def register_preset(name: str, config: Any) -> None:
    """Add a named architecture (a family's config dataclass); called by the family's module at import."""
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is registered twice")
    PRESETS[name] = config


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
    return next(cls for cls in COMPONENTS.values() if type(config) is cls.config_class)(config)


def shipped_checkpoint(name: str) -> Path | None:
    """The package-data folder of a shipped trained checkpoint, or None if it is not in this installation."""
    if name not in SHIPPED:
        return None
    folder = Path(str(resources.files("hf_faceinpaint").joinpath("weights", SHIPPED[name][0])))
    return folder if (folder / "model.safetensors").is_file() else None


def method_label(name: str) -> str:
    """A readable name for a method ("telea" -> "OpenCV Telea (classic baseline)")."""
    if name in CLASSIC_LABELS:
        return CLASSIC_LABELS[name]
    if name in SHIPPED:
        return SHIPPED[name][1]
    return f"checkpoint {name}"


def model_class_for(config: dict[str, Any]) -> type:
    """The class a saved `config.json` names; the pipeline for an old flat MSLConfig with a face stack
    (`legacy.is_legacy_pipeline`: msl-face v2-v12); for folders saved before the name was written (the first shipped
    msl-face), the one network family whose config fields hold all of its keys."""
    if legacy.is_legacy_pipeline(config):
        return HUB_CLASSES[PIPELINE_CLASS]
    if CLASS_KEY in config:
        if config[CLASS_KEY] not in HUB_CLASSES:
            raise ValueError(f"config names the model class {config[CLASS_KEY]!r}, not one of {sorted(HUB_CLASSES)}")
        return HUB_CLASSES[config[CLASS_KEY]]
    fitting = [cls for cls in COMPONENTS.values()
               if cls.__name__ in HUB_CLASSES and set(config) <= {f.name for f in fields(cls.config_class)}]
    if len(fitting) != 1:
        raise ValueError(f"config keys {sorted(config)} match no single model class")
    return fitting[0]


def load_pretrained(path_or_repo: str | os.PathLike, check_size: bool = True) -> nn.Module:
    """Load a directory written by `save_pretrained` (or a Hub repo id) with the class its config.json names.
    `check_size=False` (the package's own shipped checkpoints only) skips the model-size count of the network's
    `checked_config`."""
    name = os.fspath(path_or_repo)
    hub: dict[str, bool] = {}  # the Hub download settings, for a repo id
    if os.path.isdir(name):
        folder: Path | None = Path(name)
    elif not os.path.exists(name) and _REPO_ID.match(name):
        hub = {"local_files_only": not hub_reachable()}  # decided once: offline, the cache alone is asked
        folder = _hub_config_folder(name, **hub)
    else:
        folder = None
    if folder is None or not (folder / CONFIG_NAME).is_file():
        # No config to choose a class by: from_pretrained raises the same clear error for every class
        # (a file instead of a folder, no config.json, not a repo id, offline).
        return HUB_CLASSES[PIPELINE_CLASS].from_pretrained(name, check_size=check_size, **hub)
    return model_class_for(read_config(folder / CONFIG_NAME)).from_pretrained(name, check_size=check_size, **hub)


def _hub_config_folder(repo_id: str, local_files_only: bool) -> Path | None:
    """The local folder holding a Hub repo's config.json (downloaded or cached), or None if it cannot be had."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=CONFIG_NAME, local_files_only=local_files_only)).parent
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, ConnectionError, ValueError):
        return None


@dataclass
class ResolvedModel:
    """A model spec resolved.

    Args:
        name: A short name for tables and logs: "msl-face", "telea", the folder or repo id given.
        source: Where the weights come from, in words.
        untrained: Whether the weights are a random initialisation (a bare preset name).
        model: The loaded `ClassicInpainter` or network (in eval mode).
    """

    name: str
    source: str
    untrained: bool
    model: Inpainter


class _ModelCache:
    """The last `CACHE_SIZE` loaded checkpoints, keyed by (spec, device, dtype); safe between threads."""

    def __init__(self) -> None:
        self._models: OrderedDict[tuple, nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, load) -> nn.Module:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load()  # outside the lock: a slow load or download must not block other requests
        with self._lock:
            model = self._models.setdefault(key, model)
            self._models.move_to_end(key)
            while len(self._models) > CACHE_SIZE:
                self._models.popitem(last=False)
        return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


MODEL_CACHE = _ModelCache()


def resolve_model(
    spec: Inpainter | str | os.PathLike | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    allow_untrained: bool = False,
) -> ResolvedModel:
    """Resolve a model spec (see the module docstring) into the model and where it comes from.

    Args:
        spec: The spec; None means the shipped default model, or OpenCV Telea with a warning when this
            installation has none.
        device: Device to put a neural model on (default: the CPU for loaded checkpoints, as-is for instances).
        dtype: Floating dtype for a neural model (default: keep).
        allow_untrained: Let a bare preset name build an untrained network (for `info` and evaluation tables that
            label it as untrained). An untrained network never stands in for a result otherwise.

    Raises:
        ValueError: A preset name without `allow_untrained`; a device no model runs on or this machine lacks.
        FileNotFoundError, OSError, CheckpointError: A shipped model this installation lacks; a folder or Hub repo
            that holds no readable checkpoint, or cannot be downloaded.
    """
    device = None if device is None else parse_device(device)
    if spec is None:
        if shipped_checkpoint(DEFAULT_MODEL) is None:
            warnings.warn(
                f"no trained default model ({DEFAULT_MODEL}) ships with this installation; using OpenCV Telea instead",
                stacklevel=2,
            )
            return ResolvedModel("telea", "OpenCV classic inpainting, no weights", False, ClassicInpainter("telea"))
        spec = DEFAULT_MODEL
    if isinstance(spec, ClassicInpainter):
        return ResolvedModel(spec.name, "OpenCV classic inpainting, no weights", False, spec)
    if isinstance(spec, nn.Module):
        if device is not None or dtype is not None:
            spec.to(device=device, dtype=dtype)
        return ResolvedModel(type(spec).__name__, "a model instance", False, spec.eval())
    name = os.fspath(spec)
    if name in CLASSIC_METHODS:
        return ResolvedModel(name, "OpenCV classic inpainting, no weights", False, ClassicInpainter(name))
    torch_device = device or torch.device("cpu")
    exists = os.path.exists(name)
    if name in PRESETS and not exists:
        if not allow_untrained:
            raise ValueError(
                f"preset {name!r} is an architecture without trained weights; pass a trained checkpoint "
                f"(a save_pretrained folder or Hub repo id), '{DEFAULT_MODEL}', 'telea' or 'ns'"
            )
        model = inference_layout(from_preset(name).to(device=torch_device, dtype=dtype)).eval()  # never cached
        return ResolvedModel(name, "UNTRAINED preset: randomly initialised weights, not a trained model", True, model)
    if name in SHIPPED and not exists:
        folder = shipped_checkpoint(name)
        if folder is None:
            raise FileNotFoundError(f"the trained checkpoint {name!r} is not part of this installation")
        source, target, trusted = f"shipped checkpoint: {folder}", folder, True
    elif os.path.isdir(name):
        source, target, trusted = f"local directory: {Path(name).resolve()}", Path(name), False
    else:
        source, target, trusted = f"Hugging Face Hub repo: {name}", name, False

    def load() -> nn.Module:  # the package's own weights are not sized first (tests/models/test_shipped.py does)
        model = load_pretrained(target, check_size=not trusted).to(device=torch_device, dtype=dtype)
        return inference_layout(model).eval()

    # a local folder's key includes its weights' modification time, so a rewritten checkpoint is loaded afresh
    weights = Path(target) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns if isinstance(target, Path) and weights.is_file() else None
    key = (os.path.abspath(name) if exists else name, stamp, str(torch_device), dtype)
    return ResolvedModel(name, source, False, MODEL_CACHE.get(key, load))


def inference_layout(model: nn.Module) -> nn.Module:
    """Lay the model's 4-D parameters (convolution weights) out in `INFERENCE_FORMAT`, in place; returns the model.
    (Only 4-D ones: `nn.Module.to(memory_format=...)` also tries 5-D weights, which channels-last cannot hold.)"""
    for param in model.parameters():
        if param.dim() == 4:
            param.data = param.data.contiguous(memory_format=INFERENCE_FORMAT)
    return model


def load_model(
    spec: Inpainter | str | os.PathLike | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    allow_untrained: bool = False,
) -> Inpainter:
    """The model of `resolve_model(spec, ...)` (same arguments)."""
    return resolve_model(spec, device=device, dtype=dtype, allow_untrained=allow_untrained).model
