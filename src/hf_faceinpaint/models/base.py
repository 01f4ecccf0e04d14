"""What every model family shares: `Inpainter`, a declared component (`components.Component`) with the Hub mixin.

A family subclasses it with its config dataclass (`class MSLInpainter(Inpainter, config_class=MSLConfig, tags=[...])`)
and implements `generate`; the base holds the rest:
  - the config: `__init__` takes the dataclass, its dict form (as read from `config.json`) or None (the defaults);
  - `from_preset(name)`, checking that the preset belongs to the family;
  - `from_config`: the checked config and, before anything is built, the model's size (a crafted config must not
    make a server allocate gigabytes);
  - the input checks (shapes; the sizes the family accepts come from `check_size`) and the compositing;
  - `save_pretrained` writing the class name into `config.json` (`"_class_name"`, as diffusers does).
Subclassing registers the family by class name (`components.COMPONENTS`, `hub.HUB_CLASSES`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .. import legacy
from ..components import Component, build_component, checked_config
from .registry import preset_config

# Bounds on what a config.json may ask for, checked before a model is built: the resolution, the parameter count
# and the activation memory of one image's forward pass. The largest preset, twostage-256, has 302M parameters and
# about 3 GiB of activations.
MAX_RESOLUTION = 2048
MAX_PARAMETERS = 1_000_000_000
MAX_ACTIVATION_BYTES = 16 * 2**30


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


class Inpainter(Component):
    """Base of the neural inpainting models: `forward(image, mask)` returns the composited inpainting.

    Args:
        config: The family's config dataclass, its dict form, or None for its defaults.
    """

    config_class: ClassVar[type]

    def __init_subclass__(cls, tags: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(tags=("gan", *tags), **kwargs)

    @classmethod
    def checked_config(cls, values: dict[str, Any], size: bool = True) -> Any:
        """The config dataclass from its `config.json` form (`components.checked_config`; fields of older formats,
        `legacy.network_config`), then the model's size: parameters and activation memory per image are counted on
        PyTorch's meta device (nothing allocated) and refused over `MAX_PARAMETERS` / `MAX_ACTIVATION_BYTES`.
        `size=False` skips the count, for the package's own shipped checkpoints (their size is tested; the count's
        meta-device machinery costs about 80 MiB of memory for the rest of the process).

        Raises:
            TypeError, ValueError: A malformed config, or a model too large to build.
        """
        config = checked_config(cls.config_class, legacy.network_config(values))
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
    def from_config(cls, values: dict[str, Any], check_size: bool = True) -> "Inpainter":
        """A fresh model of this family from its `config.json` form, checked (`checked_config`)."""
        if "_class_name" in values and values["_class_name"] != cls.__name__:
            raise ValueError(f"the config describes a {values['_class_name']}, not a {cls.__name__}")
        return cls(cls.checked_config(values, check_size))

    @staticmethod
    def build(values: dict[str, Any], check_size: bool = True) -> "Inpainter":
        """The network a config names (`"_class_name"`), checked: a pipeline's network."""
        return build_component(values, Inpainter, check_size)

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

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inpaint.

        Args:
            image: (B, 3, H, W) in [-1, 1]; hole pixels are ignored.
            mask: (B, 1, H, W), 1 = hole, 0 = known.

        Returns:
            (B, 3, H, W): the prediction inside the hole, the input outside it.
        """
        return self.composite(image, mask, self.generate(image, mask.to(image.dtype)))

