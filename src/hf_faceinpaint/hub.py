"""Hugging Face Hub integration shared by the model families: strict safetensors loading, clear offline errors,
atomic weight writes and model cards rendered from the package's template."""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, constants, get_session, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled

from .io import CheckpointError, read_safetensors, read_state_dict, save_safetensors_atomic, write_text_atomic

__all__ = ["CheckpointError", "HubModelMixin", "read_safetensors", "read_state_dict", "save_safetensors_atomic"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
REPO_URL = "https://github.com/hf-faceinpaint/hf-faceinpaint"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Seconds `hub_reachable` waits for the Hub's answer (the Hub client itself retries for about 24 s per file).
HUB_PROBE_TIMEOUT_S = 3.0

T = TypeVar("T", bound="HubModelMixin")


def model_card_template() -> str:
    """The Jinja template every saved model card is rendered from (`model_cards/model_card_template.md`)."""
    return resources.files("hf_faceinpaint").joinpath("model_cards", "model_card_template.md").read_text(encoding="utf-8")


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `model`, raising `CheckpointError` that names every missing, unexpected or
    mis-shaped key. Tensors are cast to each parameter's dtype (float16 checkpoints load into float32 models). A
    submodule with an `upgrade_state_dict(state_dict, prefix)` method first rewrites its keys of an older format."""
    for name, module in model.named_modules():
        upgrade = getattr(module, "upgrade_state_dict", None)
        if upgrade is not None:
            state_dict = upgrade(state_dict, f"{name}." if name else "")
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}"
        for key in set(own) & set(state_dict)
        if own[key].shape != state_dict[key].shape
    )
    if missing or unexpected or mis_shaped:
        lines = [f"checkpoint {source} does not match {type(model).__name__}:"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", mis_shaped)):
            if keys:
                lines.append(f"  {title}: {_shown(keys)}")
        raise CheckpointError("\n".join(lines))
    check_tensor_values(own, state_dict, source)
    model.load_state_dict({key: value.to(own[key].dtype) for key, value in state_dict.items()}, strict=True)


def check_tensor_values(own: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Refuse tensors that would load as garbage: a dtype the model's tensor of that name cannot take (only floating
    point casts to floating point, e.g. float16 checkpoints into float32 models; integer and bool tensors must match
    exactly), or NaN / infinite values in a floating tensor. Raises `CheckpointError` naming the tensors.

    Args:
        own: The model's tensors by name (its state dict); names absent from it are not checked.
        state_dict: The checkpoint's tensors by name.
        source: The checkpoint, for the message.
    """
    shared = sorted(set(own) & set(state_dict))
    wrong_dtype = [f"{key} ({str(state_dict[key].dtype)[6:]}, the model needs {str(own[key].dtype)[6:]})"
                   for key in shared if not _castable(state_dict[key].dtype, own[key].dtype)]
    floating = [key for key in shared if state_dict[key].is_floating_point()]
    non_finite = [f"{key} ({int((~torch.isfinite(state_dict[key])).sum())} of {state_dict[key].numel()} values)"
                  for key in floating if not torch.isfinite(state_dict[key]).all()]
    lines = [f"checkpoint {source} is corrupt:"] if wrong_dtype or non_finite else []
    if wrong_dtype:
        lines.append(f"  tensors of the wrong dtype: {_shown(wrong_dtype)}")
    if non_finite:
        lines.append(f"  tensors with NaN or infinite values: {_shown(non_finite)}")
    if lines:
        raise CheckpointError("\n".join(lines))


def _castable(stored: torch.dtype, needed: torch.dtype) -> bool:
    return stored == needed or (stored.is_floating_point and needed.is_floating_point)


def _shown(items: list[str]) -> str:
    """The first 8 of `items`, comma-separated, with the count when there are more."""
    return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")


def hub_reachable() -> bool:
    """Whether the Hugging Face Hub answers: False at once in offline mode (HF_HUB_OFFLINE=1), else after one request
    of at most `HUB_PROBE_TIMEOUT_S` seconds, without retries (through the Hub client's session: its proxy and
    HF_ENDPOINT apply)."""
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except (httpx2.HTTPError, OSError):  # no name resolution, refused, timed out: any answer at all would do
        return False
    return True


def unreachable_message(name: str) -> str:
    """Why a spec that is no local folder and looks like a Hub repo id could not be loaded while offline."""
    why = "offline mode is set (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else "this machine seems to be offline"
    return (f"no local folder {name!r} exists (in {os.getcwd()}), and as a Hub repo id it cannot be downloaded: the "
            f"Hugging Face Hub could not be reached ({why}) and the repo is not in the local cache. Check the path, or "
            "pass a local directory written by save_pretrained.")


def read_config(path: Path) -> dict[str, Any]:
    """A `config.json` as a dict, or `CheckpointError` (not JSON, nested too deeply to parse, not an object)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not valid JSON: {type(err).__name__}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


#: Every class `from_pretrained` can build, by the name its `config.json` gives (`"_class_name"`).
HUB_CLASSES: dict[str, type] = {}


class HubModelMixin(PyTorchModelHubMixin):
    """`PyTorchModelHubMixin` with strict loading, every config value checked before anything is built, clear errors
    when offline, and an informative model card.

    A subclass is registered in `HUB_CLASSES` by name and provides `config_dict()` (what `config.json` holds),
    `from_config(values, check_size)` (a fresh model from it, checked) and `load_weights(state, source)` (strict).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        HUB_CLASSES[cls.__name__] = cls

    @classmethod
    def from_config(cls: type[T], values: dict[str, Any], check_size: bool = True) -> T:
        raise NotImplementedError

    def load_weights(self, state: dict[str, torch.Tensor], source: str) -> None:
        load_state_dict_strict(self, state, source)

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls: type[T], pretrained_model_name_or_path: str | Path, *, revision: str | None = None,
                        cache_dir: str | Path | None = None, force_download: bool = False, token: str | bool | None = None,
                        local_files_only: bool = False, check_size: bool = True) -> T:
        """Load from a local directory written by `save_pretrained`, or from a Hub repo id (downloaded).

        Every config value is checked and the model's size bounded before it is built (`check_size=False`: the
        package's own shipped checkpoints only); loading is strict: missing, unexpected or mis-shaped keys raise
        `CheckpointError` naming them.
        """
        name = str(pretrained_model_name_or_path)
        download = dict(revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                        local_files_only=local_files_only)
        if os.path.isdir(name):
            if not os.path.isfile(os.path.join(name, CONFIG_NAME)):
                raise CheckpointError(f"{name} has no {CONFIG_NAME}; it was not written by save_pretrained")
            config_file, weights = Path(name) / CONFIG_NAME, Path(name) / WEIGHTS_NAME
        elif os.path.exists(name):
            raise CheckpointError(f"{name} is a file; pass the directory that save_pretrained wrote")
        elif not _REPO_ID.match(name):
            raise FileNotFoundError(f"no model directory at {name!r} (and it is not a Hub repo id like 'org/name')")
        else:
            if not local_files_only and not hub_reachable():  # the cache only: no retries that time out
                download["local_files_only"] = True
            config_file, weights = _download(name, CONFIG_NAME, download), None
        values = read_config(config_file)
        try:  # every config value checked, and the model's size bounded, before anything is built
            model = cls.from_config(values, check_size)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{CONFIG_NAME} of {name!r} is not a valid {cls.__name__} config: {err}") from err
        if weights is None:
            weights = _download(name, WEIGHTS_NAME, download)
        elif not weights.is_file():
            raise CheckpointError(f"{name} has no {WEIGHTS_NAME}")
        model.load_weights(read_safetensors(weights), str(weights))
        return model.eval()

    def save_files(self, save_directory: Path, config: dict[str, Any]) -> None:
        """Write `model.safetensors` and `config.json` (each atomically); what `_save_pretrained` does. The config
        keeps its order (a pipeline's stages run in the order it lists them)."""
        save_safetensors_atomic(self.state_dict(), save_directory / WEIGHTS_NAME, metadata={"config": json.dumps(config)})
        write_text_atomic(save_directory / CONFIG_NAME, json.dumps(config, indent=2))

    def _save_pretrained(self, save_directory: Path) -> None:
        self.save_files(save_directory, self.config_dict())

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> str | None:
        """Write `config.json`, `model.safetensors` (atomically) and a fresh model card `README.md`."""
        Path(save_directory, "README.md").unlink(missing_ok=True)  # the mixin keeps an old card; always re-render
        return super().save_pretrained(save_directory, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        kwargs.setdefault("model_class", type(self).__name__)
        kwargs.setdefault("num_parameters", f"{sum(p.numel() for p in self.parameters()):,}")
        kwargs.setdefault("config_json", json.dumps(self.config_dict(), indent=2))
        kwargs.setdefault("metrics_section", "")
        return super().generate_model_card(*args, **kwargs)


def _download(repo_id: str, filename: str, options: dict[str, Any]) -> Path:
    """A file of a Hub repo (downloaded, or from the cache), with clear errors when it cannot be had."""
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, **options))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError) as err:  # before its base class below
        raise OSError(unreachable_message(repo_id)) from err
    except EntryNotFoundError as err:
        raise CheckpointError(f"Hub repo {repo_id!r} has no {filename}") from err
