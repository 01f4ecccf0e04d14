"""Pretrained StyleGAN2 weights from the two common public formats, without importing or executing their code.

- rosinality `stylegan2-pytorch` `.pt`/`.pth` (e.g. pSp's `stylegan2-ffhq-config-f.pt`): a torch checkpoint with a
  `g_ema` state dict, and `latent_avg` in converted checkpoints. Read with `torch.load(weights_only=True)`; the
  `argparse.Namespace` of training checkpoints (`args`) is the only extra class allowed.
- NVlabs `stylegan2-ada-pytorch` / `stylegan3` `.pkl` (e.g. `ffhq.pkl`): a plain pickle of `{'G', 'D', 'G_ema', ...}`
  whose networks are `torch_utils.persistence` objects, i.e. a call `_reconstruct_persistent_obj(meta)` with
  `meta = {type, version, module_src, class_name, state}`: the module's Python source travels inside the pickle and
  NVlabs' own loader executes it. Here the pickle is read by `RestrictedUnpickler`, which resolves only the globals in
  `_PICKLE_GLOBALS`, turns every persistent object into a `PersistentRecord` (class name and state; the source is
  never executed) and refuses everything else. Tensor storages inside the pickle are themselves torch-serialised
  bytes, read with `torch.load(weights_only=True)`. The `G_ema` record tree is then renamed into this project's
  (rosinality's) keys, as the community converter `export_weights.py` does.
- `.safetensors` written by `save_stylegan2` (this project's layout, with the architecture in its metadata): the
  recommended form to keep after a one-time conversion, since it needs no unpickling at all.

`load_stylegan2(path)` returns the architecture read from the file and a state dict for `StyleGAN2Generator`;
`StyleGAN2Generator(config).load_state_dict(...)` through `load_state_dict_strict` then checks every key.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import os
import pickle
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..layers.stylegan2 import make_kernel
from ..hub import CheckpointError, load_state_dict_strict, read_safetensors, save_safetensors_atomic
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator

_BLUR_TAPS = (1, 3, 3, 1)
_METADATA_KEY = "stylegan2_config"


@dataclass
class PersistentRecord:
    """What an NVlabs `torch_utils.persistence` object unpickles to here: its class name and its `__dict__`.

    Args:
        class_name: The NVlabs class, e.g. "SynthesisLayer".
        state: The object's attributes; for a torch module `_parameters`, `_buffers` and `_modules` among them.
    """

    class_name: str
    state: dict[str, Any]

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The module tree's parameters and buffers under state-dict names ("mapping.fc0.weight", ...)."""
        found = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    found[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentRecord):
                found.update(child.tensors(f"{prefix}{name}."))
        return found

    def child(self, path: str) -> "PersistentRecord":
        """The sub-module at a dotted path, e.g. "synthesis.b4.conv1"."""
        record = self
        for name in path.split("."):
            child = (record.state.get("_modules") or {}).get(name)
            if not isinstance(child, PersistentRecord):
                raise CheckpointError(f"the pickled {self.class_name} has no sub-module {path!r}")
            record = child
        return record


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentRecord:
    """Stand-in for `torch_utils.persistence._reconstruct_persistent_obj`: keeps the state, ignores `module_src`."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("malformed torch_utils.persistence record")
    state = meta.get("state")
    return PersistentRecord(meta["class_name"], dict(state) if isinstance(state, dict) else {})


def _load_storage(data: bytes) -> Any:
    """Stand-in for `torch.storage._load_from_bytes`, which unpickles without restrictions."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_scalar(dtype: np.dtype, data: bytes) -> Any:
    """Stand-in for numpy's scalar reconstructor, for plain numeric dtypes only (e.g. the np.float64 gains)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"only numeric numpy scalars are allowed, got dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype)[0].item()


# Every global an NVlabs network pickle may name, and what it resolves to here. Anything else is refused.
_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access; only its items matter
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # protocol-2 pickles
    ("_codecs", "encode"): lambda text, encoding="latin1": text.encode(encoding),  # protocol-2 bytes
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only the globals of `_PICKLE_GLOBALS` and never runs pickled code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: not one of the classes a StyleGAN2 network pickle holds"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of a StyleGAN2 network pickle")


def read_nvlabs_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read an NVlabs network pickle with `RestrictedUnpickler`; the networks come back as `PersistentRecord`s.

    Raises:
        CheckpointError: The file cannot be read, or it names a global that is not allowed.
    """
    try:
        with open(path, "rb") as handle:
            data = RestrictedUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"cannot read StyleGAN2 pickle {path}: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a dict of networks but a {type(data).__name__}")
    return data


def _attribute(record: PersistentRecord, name: str, source: str) -> Any:
    if name not in record.state:
        raise CheckpointError(f"{source}: the pickled {record.class_name} has no attribute {name!r}")
    return record.state[name]


def _channel_settings(channels: dict[int, int], source: str) -> tuple[int, int]:
    """(channel_base, channel_max) that reproduce channels[r] = min(base // r, max) for every resolution r."""
    cap = max(channels.values())
    # Each uncapped count c at side r needs r·c <= base < r·(c + 1); the largest lower bound is the candidate.
    below = [res * count for res, count in channels.items() if count < cap]
    base = max(below) if below else cap * max(channels)
    if any(min(base // res, cap) != count for res, count in channels.items()):
        raise CheckpointError(f"{source}: channel counts {channels} do not follow min(base // r, max)")
    return base, cap


def _convert_nvlabs(g_ema: PersistentRecord, source: str) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    """Rename an NVlabs `Generator` record's tensors into `StyleGAN2Generator` keys (export_weights.py's mapping)."""
    if g_ema.class_name != "Generator":
        raise CheckpointError(f"{source}: G_ema is a {g_ema.class_name}, not a StyleGAN2 Generator")
    if _attribute(g_ema, "c_dim", source):
        raise CheckpointError(f"{source}: conditional generators (c_dim > 0) are not supported")
    if _attribute(g_ema, "img_channels", source) != 3:
        raise CheckpointError(f"{source}: only RGB generators are supported")
    resolution = int(_attribute(g_ema, "img_resolution", source))
    nv = g_ema.tensors()
    mapping = g_ema.child("mapping")
    n_mlp = int(_attribute(mapping, "num_layers", source))
    lr_mlp = float(_attribute(g_ema.child("mapping.fc0"), "bias_gain", source))
    log_size = int(math.log2(resolution))
    blocks = [2**level for level in range(2, log_size + 1)]
    names = {res: ("conv0", "conv1") if res > 4 else ("conv1",) for res in blocks}
    layers = [g_ema.child(f"synthesis.b{res}.{name}") for res in blocks for name in names[res]]
    clamps = {_attribute(layer, "conv_clamp", source) for layer in layers}
    if len(clamps) != 1:
        raise CheckpointError(f"{source}: layers use different conv_clamp values {sorted(map(str, clamps))}")
    for res in blocks:
        if _attribute(g_ema.child(f"synthesis.b{res}"), "architecture", source) != "skip":
            raise CheckpointError(f"{source}: only the 'skip' synthesis architecture (StyleGAN2 config F) is supported")
    if not all(_attribute(layer, "use_noise", source) for layer in layers):
        raise CheckpointError(f"{source}: generators without noise inputs are not supported")
    base, cap = _channel_settings({res: nv[f"synthesis.b{res}.conv1.weight"].shape[0] for res in blocks}, source)
    config = StyleGAN2Config(
        resolution=resolution, style_dim=int(_attribute(g_ema, "w_dim", source)), n_mlp=n_mlp, channel_base=base,
        channel_max=cap, lr_mlp=lr_mlp, conv_clamp=clamps.pop(),
    )
    taps = make_kernel(_BLUR_TAPS)
    consumed: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in nv:
            raise CheckpointError(f"{source}: G_ema has no tensor {key}")
        consumed.add(key)
        return nv[key]

    state: dict[str, torch.Tensor] = {}

    def conv(ours: str, theirs: str, noise_index: int) -> None:
        state[f"{ours}.conv.weight"] = take(f"{theirs}.weight")[None]
        state[f"{ours}.conv.modulation.weight"] = take(f"{theirs}.affine.weight")
        state[f"{ours}.conv.modulation.bias"] = take(f"{theirs}.affine.bias")
        state[f"{ours}.noise.weight"] = take(f"{theirs}.noise_strength").reshape(1)
        state[f"{ours}.activate.bias"] = take(f"{theirs}.bias")
        state[f"noises.noise_{noise_index}"] = take(f"{theirs}.noise_const")[None, None]

    def to_rgb(ours: str, theirs: str) -> None:
        state[f"{ours}.conv.weight"] = take(f"{theirs}.weight")[None]
        state[f"{ours}.conv.modulation.weight"] = take(f"{theirs}.affine.weight")
        state[f"{ours}.conv.modulation.bias"] = take(f"{theirs}.affine.bias")
        state[f"{ours}.bias"] = take(f"{theirs}.bias").view(1, -1, 1, 1)

    for index in range(n_mlp):
        state[f"style.{index + 1}.weight"] = take(f"mapping.fc{index}.weight")
        state[f"style.{index + 1}.bias"] = take(f"mapping.fc{index}.bias")
    state["latent_avg"] = take("mapping.w_avg")
    state["input.input"] = take("synthesis.b4.const")[None]
    conv("conv1", "synthesis.b4.conv1", 0)
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    for block, res in enumerate(blocks[1:]):
        conv(f"convs.{2 * block}", f"synthesis.b{res}.conv0", 2 * block + 1)
        conv(f"convs.{2 * block + 1}", f"synthesis.b{res}.conv1", 2 * block + 2)
        to_rgb(f"to_rgbs.{block}", f"synthesis.b{res}.torgb")
        # The FIR kernels are fixed buffers; rosinality stores them pre-multiplied by the upsampling gain 2² = 4.
        state[f"convs.{2 * block}.conv.blur.kernel"] = 4 * taps
        state[f"to_rgbs.{block}.upsample.kernel"] = 4 * taps
    filters = {key for key in nv if key.endswith("resample_filter")}
    for key in filters:
        if nv[key].shape != taps.shape or not torch.allclose(nv[key].float(), taps):
            raise CheckpointError(f"{source}: {key} is not the [1, 3, 3, 1] filter this implementation uses")
    unexpected = sorted(set(nv) - consumed - filters)
    if unexpected:
        raise CheckpointError(f"{source}: G_ema has tensors this StyleGAN2 does not use: {', '.join(unexpected[:8])}")
    return config, state


def _config_from_rosinality(state: dict[str, torch.Tensor], source: str) -> StyleGAN2Config:
    """The architecture of a rosinality `g_ema` state dict, read from its key names and shapes."""
    try:
        style_dim = state["style.1.weight"].shape[1]
        n_mlp = len([key for key in state if re.fullmatch(r"style\.\d+\.weight", key)])
        log_size = len([key for key in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", key)]) + 2
        channels = {4: state["conv1.conv.weight"].shape[1]}
        channels.update({2 ** (block + 3): state[f"to_rgbs.{block}.conv.weight"].shape[2] for block in range(log_size - 2)})
    except KeyError as err:
        raise CheckpointError(f"{source}: g_ema is not a rosinality StyleGAN2 generator (no {err.args[0]})") from err
    base, cap = _channel_settings(channels, source)
    # rosinality does not store lr_mlp; 0.01 is its default and that of every public checkpoint.
    return StyleGAN2Config(resolution=2**log_size, style_dim=style_dim, n_mlp=n_mlp, channel_base=base, channel_max=cap)


def _read_rosinality(path: Path) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    source = str(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # the `args` of rosinality training checkpoints
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read StyleGAN2 checkpoint {path} (expected a rosinality .pt): {err}") from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("g_ema"), dict):
        kind = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a rosinality StyleGAN2 checkpoint: no 'g_ema' state dict (found {kind})")
    state = dict(checkpoint["g_ema"])
    config = _config_from_rosinality(state, source)
    latent_avg = checkpoint.get("latent_avg")
    if latent_avg is None:
        # Training checkpoints carry no mean w: estimate it as pSp does, from the mapping network.
        generator = StyleGAN2Generator(config)
        load_state_dict_strict(generator, {**state, "latent_avg": generator.latent_avg}, source)
        latent_avg = generator.mean_latent()
    state["latent_avg"] = latent_avg.reshape(-1)
    return config, state


def load_stylegan2(path: str | os.PathLike) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    """Read pretrained StyleGAN2 weights: rosinality `.pt`/`.pth`, NVlabs `.pkl`, or this project's `.safetensors`.

    Args:
        path: The weights file; the format is chosen by its suffix.

    Returns:
        The generator's architecture as stored in the file and a state dict for `StyleGAN2Generator` (not yet
        checked against it; `load_state_dict_strict` does that).

    Raises:
        CheckpointError: Unknown suffix, unreadable file, a refused pickle global, or an unsupported architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"StyleGAN2 weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        return _read_rosinality(path)
    if suffix == ".pkl":
        networks = read_nvlabs_pickle(path)
        if not isinstance(networks.get("G_ema"), PersistentRecord):
            raise CheckpointError(f"{path} has no NVlabs 'G_ema' network (keys: {sorted(map(str, networks))})")
        return _convert_nvlabs(networks["G_ema"], str(path))
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        if _METADATA_KEY not in metadata:
            raise CheckpointError(f"{path} was not written by save_stylegan2 (no {_METADATA_KEY} metadata)")
        return StyleGAN2Config(**json.loads(metadata[_METADATA_KEY])), read_safetensors(path)
    raise CheckpointError(
        f"unknown StyleGAN2 weights format {path.name}: expected .pt/.pth (rosinality), .pkl (NVlabs) or .safetensors"
    )


def load_stylegan2_generator(path: str | os.PathLike) -> StyleGAN2Generator:
    """A `StyleGAN2Generator` with the architecture and weights of a file (see `load_stylegan2`), loaded strictly."""
    config, state = load_stylegan2(path)
    generator = StyleGAN2Generator(config)
    load_state_dict_strict(generator, state, str(path))
    return generator.eval()


def save_stylegan2(generator: StyleGAN2Generator, path: str | os.PathLike) -> None:
    """Write a generator as `.safetensors` with its architecture in the metadata: the one-time conversion of a
    `.pkl` or `.pt` into a file that later loads without unpickling anything."""
    metadata = {_METADATA_KEY: json.dumps(asdict(generator.config))}
    save_safetensors_atomic(generator.state_dict(), Path(path), metadata=metadata)
