"""What every model family shares: `Inpainter`, an `nn.Module` with the Hub mixin.

A family subclasses it with its config dataclass (`class MSLInpainter(Inpainter, config_class=MSLConfig, tags=[...])`)
and implements `generate`; the base holds the rest:
  - the config: `__init__` takes the dataclass, its dict form (as read from `config.json`) or None (the defaults);
  - `from_preset(name)`, checking that the preset belongs to the family;
  - the input checks (shapes; the sizes the family accepts come from `check_size`) and the compositing;
  - `save_pretrained` writing the class name into `config.json` (`"_class_name"`, as diffusers does), which
    `registry.load_pretrained` reads to choose the class.
Subclassing registers the family in the registry by class name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..io import save_safetensors_atomic, write_text_atomic
from .hub import CONFIG_NAME, REPO_URL, WEIGHTS_NAME, HubModelMixin, model_card_template
from .registry import CLASS_KEY, preset_config, register_model_class


class Inpainter(nn.Module, HubModelMixin):
    """Base of the neural inpainting models: `forward(image, mask)` returns the composited inpainting.

    Args:
        config: The family's config dataclass, its dict form, or None for its defaults.
    """

    config_class: ClassVar[type]

    def __init_subclass__(cls, config_class: type | None = None, tags: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(
            library_name="hf-faceinpaint", pipeline_tag="image-to-image", license="apache-2.0", repo_url=REPO_URL,
            tags=["inpainting", "face-inpainting", "gan", *tags], model_card_template=model_card_template(), **kwargs,
        )
        if config_class is not None:
            cls.config_class = config_class
            register_model_class(cls, config_class)

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = self.config_from_dict(config)
        elif not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def config_from_dict(cls, values: dict[str, Any]) -> Any:
        """The config dataclass from its `config.json` form (the class-name key dropped; unknown keys refused)."""
        values = {key: value for key, value in values.items() if key != CLASS_KEY}
        unknown = sorted(set(values) - {f.name for f in fields(cls.config_class)})
        if unknown:
            raise TypeError(f"unknown {cls.config_class.__name__} fields: {', '.join(unknown)}")
        return cls.config_class(**values)

    @classmethod
    def from_preset(cls, name: str) -> "Inpainter":
        """A freshly initialised (untrained) model built from a named preset; see `hf_faceinpaint.list_presets()`."""
        config = preset_config(name)
        if not isinstance(config, cls.config_class):
            raise ValueError(f"preset {name!r} is not a {cls.__name__} preset")
        return cls(config)

    def generate(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The raw prediction over the whole frame, before compositing: (B, 3, H, W)."""
        raise NotImplementedError

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError for frame sizes this family cannot run at."""

    def check_inputs(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        """Raise ValueError unless image is (B, 3, H, W) and mask (B, 1, H, W) at a size the family accepts."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
            raise ValueError(f"mask must be (B, 1, H, W) matching image {tuple(image.shape)}, got {tuple(mask.shape)}")
        self.check_size(image.shape[2], image.shape[3])

    @staticmethod
    def composite(image: torch.Tensor, mask: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """The prediction inside the hole, the input outside it: out = m · pred + (1 − m) · x."""
        mask = mask.to(image.dtype)
        return mask * prediction + (1.0 - mask) * image

    def forward(self, image: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Inpaint.

        Args:
            image: (B, 3, H, W) in [-1, 1]; hole pixels are ignored.
            mask: (B, 1, H, W), 1 = hole, 0 = known.
            kwargs: Family-specific inputs of `generate` (e.g. MSL's `guide`).

        Returns:
            (B, 3, H, W): the prediction inside the hole, the input outside it.
        """
        return self.composite(image, mask, self.generate(image, mask.to(image.dtype), **kwargs))

    def _save_pretrained(self, save_directory: Path) -> None:
        config = {CLASS_KEY: type(self).__name__, **asdict(self.config)}
        save_safetensors_atomic(self.state_dict(), save_directory / WEIGHTS_NAME, metadata={"config": json.dumps(config)})
        write_text_atomic(save_directory / CONFIG_NAME, json.dumps(config, sort_keys=True, indent=2))
