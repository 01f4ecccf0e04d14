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
import math
import types
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

import torch
from torch import nn

from ..io import save_safetensors_atomic, write_text_atomic
from .hub import CONFIG_NAME, REPO_URL, WEIGHTS_NAME, HubModelMixin, model_card_template
from .registry import CLASS_KEY, preset_config, register_model_class


# Bounds on what a config.json may ask for, checked before a model is built (a crafted config must not make a
# server allocate gigabytes): every integer field, tuple length and float, the resolution, the parameter count and
# the activation memory of one image's forward pass. The largest preset, twostage-256, has 302M parameters and
# about 3 GiB of activations.
MAX_INT = 1 << 16
MAX_TUPLE = 16
MAX_FLOAT = 1e6
MAX_RESOLUTION = 2048
MAX_PARAMETERS = 1_000_000_000
MAX_ACTIVATION_BYTES = 16 * 2**30


def _checked_field(name: str, value: Any, hint: Any) -> Any:
    """`value` as the config field `name` of type `hint` takes it, or TypeError / ValueError naming the field."""
    if get_origin(hint) in (Union, types.UnionType):  # Optional[X], X | None
        if value is None and type(None) in get_args(hint):
            return None
        (hint,) = [arg for arg in get_args(hint) if arg is not type(None)]
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) > MAX_TUPLE:
            raise TypeError(f"{name} must be a list of at most {MAX_TUPLE} numbers, got {_shown(value)}")
        return tuple(_checked_field(f"{name}[{i}]", item, get_args(hint)[0]) for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if type(value) is not int:
            raise TypeError(f"{name} must be an integer, got {_shown(value)}")
        if not 0 <= value <= MAX_INT:
            raise ValueError(f"{name} = {value} is outside 0..{MAX_INT}")
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise TypeError(f"{name} must be a number, got {_shown(value)}")
        if not math.isfinite(value) or abs(value) > MAX_FLOAT:
            raise ValueError(f"{name} = {value} is not a finite number within ±{MAX_FLOAT:g}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or len(value) > 256:
            raise TypeError(f"{name} must be a short string, got {_shown(value)}")
        return value
    raise TypeError(f"{name}: config fields of type {hint} are not supported")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _activation_bytes(probe: nn.Module, resolution: int) -> int | None:
    """Bytes of every module output of one (1, 3, R, R) float32 forward pass of a meta-device model (an upper
    bound of inference memory), or None when an operation has no meta implementation (then only the parameter
    bound applies)."""
    total = 0

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * 4

    hooks = [module.register_forward_hook(count) for module in probe.modules() if module is not probe]
    try:
        with torch.no_grad():
            probe(torch.zeros(1, 3, resolution, resolution, device="meta"),
                  torch.zeros(1, 1, resolution, resolution, device="meta"))
    except (NotImplementedError, RuntimeError):
        return None
    finally:
        for hook in hooks:
            hook.remove()
    return total


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
        """The config dataclass from its `config.json` form: the class-name key dropped, unknown keys refused, and
        every value checked against its field's type and bounds (`_checked_field`) before anything is built.

        Raises:
            TypeError: Not a mapping, an unknown field, or a value of the wrong type.
            ValueError: A value out of bounds.
        """
        if not isinstance(values, dict):
            raise TypeError(f"a config must be a JSON object, not {type(values).__name__}")
        values = {key: value for key, value in values.items() if key != CLASS_KEY}
        unknown = sorted(set(values) - {f.name for f in fields(cls.config_class)})
        if unknown:
            raise TypeError(f"unknown {cls.config_class.__name__} fields: {', '.join(unknown)}")
        hints = get_type_hints(cls.config_class)
        return cls.config_class(**{name: _checked_field(name, value, hints[name]) for name, value in values.items()})

    @classmethod
    def checked_config(cls, values: dict[str, Any], size: bool = True) -> Any:
        """`config_from_dict`, then the model's size: parameters and activation memory per image are counted on
        PyTorch's meta device (nothing allocated) and refused over `MAX_PARAMETERS` / `MAX_ACTIVATION_BYTES`. What
        `from_pretrained` runs on a `config.json` before it builds the model. `size=False` skips the count, for the
        package's own shipped checkpoints (their size is tested; the count's meta-device machinery costs about
        80 MiB of memory for the rest of the process).

        Raises:
            TypeError, ValueError: As `config_from_dict`, or a model too large to build.
        """
        config = cls.config_from_dict(values)
        if not 16 <= config.resolution <= MAX_RESOLUTION:
            raise ValueError(f"resolution {config.resolution} is outside 16..{MAX_RESOLUTION}")
        if not size:
            return config
        with torch.device("meta"):
            probe = cls(config)
        parameters = sum(p.numel() for p in probe.parameters())
        if parameters > MAX_PARAMETERS:
            raise ValueError(f"the model would have {parameters:,} parameters; at most {MAX_PARAMETERS:,} are loaded")
        activations = _activation_bytes(probe, config.resolution)
        if activations is not None and activations > MAX_ACTIVATION_BYTES:
            raise ValueError(
                f"the model would need about {activations / 2**30:.1f} GiB of activations per image; "
                f"at most {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB are allowed"
            )
        return config

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
