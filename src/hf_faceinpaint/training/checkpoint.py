"""Resumable checkpoints: Accelerate's `save_state` (models, optimizers, RNG of every process) plus the EMA weights
(safetensors) and the trainer's counters (JSON), written into a temporary folder that is renamed into place
(`io.atomic_path`), so a checkpoint folder either is complete or does not exist."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME, broadcast_object_list
from torch import nn

from ..io import CheckpointError, atomic_path, read_safetensors, save_safetensors_atomic
from ..hub import load_state_dict_strict

_STEP_DIR = re.compile(r"^step-(\d+)$")
EMA_FILE = "ema.safetensors"
STATE_FILE = "trainer_state.json"


def checkpoint_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [path for _, path in sorted(found)]


def resolve_resume(resume: str, output_dir: str | os.PathLike) -> Path:
    """The folder named by `--resume latest|PATH`, with a clear error when there is none."""
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume latest: no checkpoint under {checkpoint_root(output_dir)}")
        return found[-1]
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a checkpoint folder (no {STATE_FILE})")
    return path


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | os.PathLike, step: int, ema: nn.Module, state: dict[str, Any], keep: int
) -> Path:
    """Save everything needed to resume at `step`; all processes must call this. Returns the folder."""
    final = checkpoint_root(output_dir) / f"step-{step:08d}"
    # The main process owns the temporary folder (renamed into place when its block ends); every process writes its
    # part of `save_state` into it, so all of them are told its name.
    with atomic_path(final) if accelerator.is_main_process else contextlib.nullcontext() as tmp:
        (tmp,) = broadcast_object_list([tmp])
        if accelerator.is_main_process:
            tmp.mkdir()
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_safetensors_atomic(ema.state_dict(), tmp / EMA_FILE)
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    if accelerator.is_main_process:
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, folder: Path, ema: nn.Module) -> dict[str, Any]:
    """Restore models, optimizers and RNG (Accelerate) and the EMA weights; returns the trainer state.

    Raises:
        CheckpointError: The trainer state or a process's RNG state is unreadable (checked before anything is
            restored: Accelerate would skip an unreadable RNG state silently, and the run would not continue exactly).
    """
    state = read_trainer_state(folder)
    for rank in range(accelerator.num_processes):
        check_rng_file(folder / f"{RNG_STATE_NAME}_{rank}.pkl")
    accelerator.load_state(str(folder))
    load_state_dict_strict(ema, read_safetensors(folder / EMA_FILE), str(folder / EMA_FILE))
    return state


def read_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer's counters of a checkpoint, checked: step, every process's [epoch, batches done], bad images."""
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        counters = [state["step"], state["bad_images"], *(n for pair in state["positions"] for n in pair)]
        if not all(type(n) is int and n >= 0 for n in counters) or any(len(p) != 2 for p in state["positions"]):
            raise ValueError("counters must be non-negative integers, positions [epoch, batches] pairs")
    except (OSError, ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} is not a trainer state this trainer can resume from: {err}") from err
    return state


def check_rng_file(path: Path) -> None:
    """Check that a process's saved RNG state (a torch.save zip archive) is complete, without unpickling it."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # the first member whose CRC does not match
        damaged = f"damaged member {bad}" if bad else None
    except (OSError, zipfile.BadZipFile) as err:
        damaged = str(err)
    if damaged:
        raise CheckpointError(
            f"{path} is unreadable ({damaged}), so its random state cannot be restored and the run would not continue "
            "exactly; resume from an earlier checkpoint (--resume PATH)"
        )


def ema_model(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of a model's parameters and buffers (BN statistics included).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's ExponentialMovingAverage
    with num_updates): a fixed 0.999 would leave the average at 0.999^500 ≈ 61 % initial weights after 500 steps.
    n is the AveragedModel's `n_averaged` buffer, saved and restored with the checkpoint.
    """

    def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        rate = min(decay, (1.0 + float(count)) / (10.0 + float(count)))
        # rate·averaged + (1 − rate)·current, written so that it is exact where the two are equal (frozen weights).
        return averaged + (1.0 - rate) * (current - averaged)

    return torch.optim.swa_utils.AveragedModel(model, avg_fn=average, use_buffers=True)
