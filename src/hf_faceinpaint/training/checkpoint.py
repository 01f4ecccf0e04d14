"""Resumable checkpoints: Accelerate's `save_state` (models, optimizers, RNG of every process) plus the EMA weights
(safetensors) and the trainer's state (JSON: counters and the run-defining settings), written into a temporary folder
that is renamed into place (`io.atomic_path`), so a checkpoint folder either is complete or does not exist.

A resume is checked before anything is built or restored (`resume_state`): every file of the checkpoint complete,
the same number of processes, and the settings that define the run unchanged unless --allow-changed names them."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME, broadcast_object_list
from safetensors import SafetensorError, safe_open
from torch import nn

from ..io import CheckpointError, atomic_path, read_safetensors, save_safetensors_atomic
from ..hub import load_state_dict_strict
from .config import FIXED_SETTINGS, RUN_SETTINGS, ConfigError, TrainConfig

_STEP_DIR = re.compile(r"^step-(\d+)$")
EMA_FILE = "ema.safetensors"
STATE_FILE = "trainer_state.json"
EARLIER = "resume from an earlier checkpoint (--resume PATH)"  # what to do about a damaged file


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
    owner = atomic_path(final) if accelerator.is_main_process else contextlib.nullcontext()
    with writing(f"checkpoint {final}"), owner as tmp:
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


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn an OSError while writing `what` (a full disk, a quota, a lost mount) into one `CheckpointError`; the
    atomic writes inside have removed their temporary files, and the files already on disk are untouched."""
    try:
        yield
    except OSError as err:
        raise CheckpointError(f"could not write {what}: {err.strerror or err}; nothing of it was kept, and the "
                              "files already there are intact") from err


def resume_state(folder: Path, config: TrainConfig, world: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The trainer state to continue from, checked before anything is built or restored: a readable trainer state,
    every file of the checkpoint complete, `world` processes, and this run's `RUN_SETTINGS` those the checkpoint
    stored, except those --allow-changed names (a changed batch size converts the stream position, new data starts
    at its beginning; `say` tells how). The state returned stores this run's settings.

    Raises:
        CheckpointError: An unreadable or incomplete file, or another number of processes.
        ConfigError: A run-defining setting differs from the checkpoint's, naming each.
    """
    state = read_trainer_state(folder)
    if len(state["positions"]) != world:
        raise CheckpointError(f"checkpoint {folder} was written by {len(state['positions'])} processes, not {world}")
    check_files(folder, world)
    settings = config.run_settings()
    saved = state.pop("settings", None)
    if saved is None:
        say(f"warning: {folder} was written before checkpoints stored their run settings; they are not compared")
    else:
        state["positions"] = _positions(state["positions"], saved, settings, config.changeable(), folder, say)
    return {**state, "settings": settings}


def _positions(positions: list[list[int]], saved: dict[str, Any], settings: dict[str, Any], allowed: list[str],
               folder: Path, say: Callable[[str], None]) -> list[list[int]]:
    """Every process's [epoch, batches done] for this run's settings; refuses changed settings not `allowed`."""
    changed = [name for name in RUN_SETTINGS if saved.get(name) != settings[name]]
    refused = [name for name in changed if name not in allowed]
    if refused:
        differences = "; ".join(f"--{name.replace('_', '-')} {saved.get(name)!r} there, {settings[name]!r} here"
                                for name in refused)
        fixed = [name for name in refused if name in FIXED_SETTINGS]
        advice = ("a checkpoint continues only its own model and stage: start a new run instead" if fixed else
                  f"set them back, or pass --allow-changed {','.join(refused)} to continue with the new values")
        raise ConfigError(f"--resume {folder}: run settings differ from the checkpoint's ({differences}); {advice}")
    if {"dataset", "dataset_split", "image_column"} & set(changed):
        say("--allow-changed: the new training data is streamed from its beginning")
        return [[0, 0] for _ in positions]
    if "batch_size" in changed:  # a position counts batches: the images done, in batches of the new size
        old, new = saved["batch_size"], settings["batch_size"]
        say(f"--allow-changed: batch size {old} -> {new}: the stream position is converted to batches of {new}")
        return [[epoch, done * old // new] for epoch, done in positions]
    return positions


def load_checkpoint(accelerator: Accelerator, folder: Path, ema: nn.Module) -> None:
    """Restore models, optimizers and RNG (Accelerate) and the EMA weights of a checkpoint `resume_state` checked.

    Raises:
        CheckpointError: What is there does not fit the models or optimizers (naming the problem on one line).
    """
    try:
        accelerator.load_state(str(folder))
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError, SafetensorError) as err:
        problem = " ".join(str(err).split())
        raise CheckpointError(f"cannot restore checkpoint {folder} into this run: {problem[:400]}") from err
    load_state_dict_strict(ema, read_safetensors(folder / EMA_FILE), str(folder / EMA_FILE))


def read_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer state of a checkpoint, checked: step, every process's [epoch, batches done], bad images, and the
    run settings (a mapping; absent in checkpoints of earlier versions)."""
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        counters = [state["step"], state["bad_images"], *(n for pair in state["positions"] for n in pair)]
        if not all(type(n) is int and n >= 0 for n in counters) or any(len(p) != 2 for p in state["positions"]):
            raise ValueError("counters must be non-negative integers, positions [epoch, batches] pairs")
        if not isinstance(state.get("settings", {}), dict):
            raise ValueError("settings must be a mapping")
    except (OSError, ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} is not a trainer state this trainer can resume from: {err}") from err
    return state


def check_files(folder: Path, world: int) -> None:
    """Check that the files of a checkpoint are complete, without restoring or unpickling anything: each process's
    RNG state (Accelerate would skip an unreadable one silently, and the run would not continue exactly), the
    optimizers' torch archives and the models' safetensors files (a truncated one fails its size check)."""
    for rank in range(world):
        check_archive(folder / f"{RNG_STATE_NAME}_{rank}.pkl")
    for path in sorted(folder.glob("*.bin")):
        check_archive(path)
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path} is unreadable ({err}); {EARLIER}") from err


def check_archive(path: Path) -> None:
    """Check that a torch.save zip archive is complete (every member's CRC), without unpickling it."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # the first member whose CRC does not match
        damaged = f"damaged member {bad}" if bad else None
    except (OSError, zipfile.BadZipFile) as err:
        damaged = str(err)
    if damaged:
        raise CheckpointError(f"{path} is unreadable ({damaged}); {EARLIER}")


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
