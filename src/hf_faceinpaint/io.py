"""Files and frames: atomic writes, safe state-dict reading, and the uint8 frame <-> network tensor conversion.

Every file or folder the package writes goes through `atomic_path`: it is written under a temporary name
(`.NAME.tmp-PID-HEX`) beside its destination and renamed into place only when complete, so nothing is ever left
half-written. Weights are read only from safetensors or with `torch.load(weights_only=True)`: never a full unpickle.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

TEMP_MARK = ".tmp-"  # in the name of every temporary file or folder the package writes
STALE_TEMP_S = 3600.0  # a temporary file of ours this old was left by a killed process: removed by the next write


class CheckpointError(RuntimeError):
    """A checkpoint does not match the model it is loaded into, or cannot be read."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it is renamed to `path` (replacing a file or
    folder there), when it fails it is removed. Missing parent folders are created.

    Example:
        with atomic_path(out) as tmp:
            image.save(tmp, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def remove_stale_temps(path: Path) -> None:
    """Remove the temporary siblings of `path` that `atomic_path` made over `STALE_TEMP_S` ago (left by a process
    killed mid-write); another process's write in progress is younger, and other files never match."""
    now = time.time()
    for old in path.parent.glob(f".{glob.escape(path.name)}{TEMP_MARK}*"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if now - old.lstat().st_mtime <= STALE_TEMP_S:
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_safetensors_atomic(state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
                            metadata: dict[str, str] | None = None) -> None:
    """Write tensors (moved to the CPU, made contiguous) as a safetensors file through `atomic_path`."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(tmp), metadata=metadata)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file on the CPU, turning a truncated or corrupt file into a `CheckpointError`."""
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read weights file {path}: {err}") from err


def read_state_dict(path: str | os.PathLike, what: str, must_exist: bool = True) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` file or a torch file read with `weights_only=True` (never a full unpickle).

    Args:
        path: The weights file.
        what: What the file holds, for error messages (e.g. "VGG16 weights").
        must_exist: Check first that the file exists, with its own message.

    Raises:
        CheckpointError: Missing, unreadable, or not a state dict.
    """
    path = Path(path)
    if must_exist and not path.is_file():
        raise CheckpointError(f"{what} file {path} does not exist")
    if path.suffix == ".safetensors":
        state = read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
            raise CheckpointError(f"cannot read {what} file {path}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict but a {type(state).__name__}")
    return state


def frames_to_tensor(frames: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) as network input (B, 3, H, W) in [-1, 1], scaled in at least float32, then cast."""
    work = torch.promote_types(dtype, torch.float32)
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device).permute(0, 3, 1, 2).to(work)
    return (x / 127.5 - 1.0).to(dtype)


def tensor_to_frames(tensor: torch.Tensor) -> np.ndarray:
    """Network images (B, 3, H, W) in [-1, 1], any device and floating dtype, as uint8 frames (B, H, W, 3)
    (clamped, rounded)."""
    x = tensor.detach().to(torch.promote_types(tensor.dtype, torch.float32))
    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
