"""What `train()` asks of a model family's training task (`Task`), and the setup shared by the tasks that train a
generator against a discriminator (`GANTask`).

A task is built in steps, so that a missing weights file fails before any data is touched: `__init__(config,
accelerator)` loads the losses' networks, `build(architecture)` the model, discriminator and optimizers, and
`prepare()` hands the trained modules to Accelerate (after `train()` has taken the EMA copy). `step` then runs one
micro-step and returns the losses to log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from torch import nn

from ..components import CLASS_KEY
from ..hub import CONFIG_NAME, WEIGHTS_NAME, load_state_dict_strict, read_config, read_safetensors
from ..models.registry import shipped_checkpoint
from .config import TrainConfig


class Task(Protocol):
    """The interface `train()` uses. `discriminator` is None for tasks without one; where present it is saved at the
    end of a run and can be loaded with --init-discriminator before `prepare`."""

    validation_mask_kind: str  # the masks of the fixed validation set: "irregular" or "square"
    discriminator: nn.Module | None

    def resolution(self, architecture: Any) -> int:
        """The side of the training images for this architecture (--resolution, or the architecture's own)."""

    def build(self, architecture: Any) -> nn.Module:
        """The model to train (whole: the EMA and the saved model follow it) from its config dataclass."""

    def init_from(self, model: nn.Module, spec: str) -> None:
        """Load the weights `--init-from` names into the built model, strictly."""

    def prepare(self) -> tuple[nn.Module, ...]:
        """Hand the trained modules and optimizers to Accelerate; returns the modules to accumulate gradients of."""

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One micro-step on real faces (B, 3, R, R) and holes (B, 1, R, R); returns the losses to log by name."""

    def inference_model(self, model: nn.Module) -> nn.Module:
        """What validation and samples inpaint with, given the (EMA) model."""

    def training_section(self, state: dict[str, Any]) -> str:
        """The model card's "Training" paragraph, given the trainer state of the last checkpoint."""


class BaseTask:
    """What the tasks share: their settings and `Accelerator`, the image side, and --init-from.

    Args:
        config: The training settings.
        accelerator: The run's `Accelerator`.
    """

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        self.config, self.accelerator = config, accelerator

    def trained_on(self, state: dict[str, Any]) -> str:
        """The part of a model card's training paragraph every task shares: preset, steps, batch, processes, data."""
        config = self.config
        return (f"from the `{config.model}` preset for {state['step']} steps at batch {config.batch_size} × "
                f"{len(state['positions'])} processes on `{config.dataset}`")

    def resolution(self, architecture: Any) -> int:
        """--resolution, or the architecture's own."""
        return self.config.resolution or architecture.resolution

    component = "network"  # the part of a pipeline's folder that --init-from takes

    def init_from(self, model: nn.Module, spec: str) -> None:
        """Load `--init-from` into `model`, strictly: a `save_pretrained` folder of the same architecture (a run's
        `final/`), or a pipeline's (a shipped name such as msl-face too), whose `component` it takes."""
        load_state_dict_strict(model, self.init_state(model, spec), spec)

    def init_state(self, model: nn.Module, spec: str) -> dict[str, torch.Tensor]:
        """The state dict `--init-from` names, for `model` (see `init_from`)."""
        folder = shipped_checkpoint(spec) or Path(spec)
        state = read_safetensors(folder / WEIGHTS_NAME)
        if read_config(folder / CONFIG_NAME).get(CLASS_KEY, type(model).__name__) != type(model).__name__:
            prefix = f"{self.component}."  # a pipeline
            state = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
        return state


class GANTask(BaseTask):
    """The setup of a task that trains (part of) a model against a discriminator: both with Adam (both papers), and
    handed to Accelerate as generator, discriminator, their optimizers: the order of the checkpoints."""

    discriminator: nn.Module

    def setup(self, model: nn.Module, trained: nn.Module, discriminator: nn.Module | None = None) -> nn.Module:
        """Take `model` whose part `trained` is trained against `discriminator` (default: the model's own,
        `build_discriminator()`); returns `model`."""
        self.model, self.trained = model, trained
        self.discriminator = discriminator if discriminator is not None else model.build_discriminator()
        betas = (self.config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(trained.parameters(), lr=self.config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr_d, betas=betas)
        return model

    def prepare(self) -> tuple[nn.Module, ...]:
        """Hand the trained part, D and both optimizers to Accelerate; returns the prepared generator and D."""
        self.generator, self.discriminator, self.opt_g, self.opt_d = self.accelerator.prepare(
            self.trained, self.discriminator, self.opt_g, self.opt_d
        )
        return self.generator, self.discriminator
