"""Declared components: an `nn.Module` built from one config dataclass, registered by its class name, and loadable
on its own with `from_pretrained` (the Hub mixin).

A pipeline is written down as the class name and config of each of its parts (`config.json`: `"_class_name"` plus
the dataclass's fields, as diffusers writes them), and rebuilt from that alone: `build_component(values)`. Every
value is checked against its field's type and bounds before anything is built (`checked_config`), so a crafted
config cannot make a server allocate gigabytes or run an unknown class.

Subclassing registers: `class MirrorDetail(Component, config_class=MirrorConfig)`. The model families
(`models.base.Inpainter`) and the face stages (`face/`) are components.
"""

from __future__ import annotations

import json
import math
import types
from dataclasses import asdict, fields
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from torch import nn

from .hub import REPO_URL, HubModelMixin, model_card_template

#: Key of a component's config naming its class (diffusers' convention).
CLASS_KEY = "_class_name"
# Bounds on what a config may ask for: every integer field, tuple length, float and string.
MAX_INT = 1 << 16
MAX_TUPLE = 16
MAX_FLOAT = 1e6
MAX_STRING = 256

COMPONENTS: dict[str, type["Component"]] = {}


class Component(nn.Module, HubModelMixin):
    """Base of the declared components.

    Args:
        config: The class's config dataclass, its dict form (as read from `config.json`), or None for its defaults.
    """

    config_class: ClassVar[type]

    def __init_subclass__(cls, config_class: type | None = None, tags: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(
            library_name="hf-faceinpaint", pipeline_tag="image-to-image", license="apache-2.0", repo_url=REPO_URL,
            tags=["inpainting", "face-inpainting", *tags], model_card_template=model_card_template(), **kwargs,
        )
        if config_class is not None:
            cls.config_class = config_class
            COMPONENTS[cls.__name__] = cls

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = checked_config(self.config_class, config)
        elif not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        """The config as `config.json` holds it: the class name, then every field."""
        return {CLASS_KEY: type(self).__name__, **asdict(self.config)}

    @classmethod
    def from_config(cls, values: dict[str, Any], check_size: bool = True) -> "Component":
        """A fresh component of this class from its `config.json` form, every value checked (`checked_config`)."""
        if CLASS_KEY in values and component_class(values) is not cls:
            raise ValueError(f"the config describes a {values[CLASS_KEY]}, not a {cls.__name__}")
        return cls(checked_config(cls.config_class, values))


def component_class(values: dict[str, Any], kind: type = Component) -> type:
    """The registered subclass of `kind` that a config's `"_class_name"` names.

    Raises:
        TypeError: Not a mapping, no class name, or a class that is not a registered `kind`.
    """
    if not isinstance(values, dict):
        raise TypeError(f"a component config must be a JSON object, not {type(values).__name__}")
    name = values.get(CLASS_KEY)
    cls = COMPONENTS.get(name) if isinstance(name, str) else None
    if cls is None or not issubclass(cls, kind):
        known = sorted(n for n, c in COMPONENTS.items() if issubclass(c, kind))
        raise TypeError(f"{CLASS_KEY} {_shown(name)} is not one of {', '.join(known)}")
    return cls


def build_component(values: dict[str, Any], kind: type = Component, check_size: bool = True) -> Component:
    """The component a config (class name and fields) describes, freshly initialised, every value checked."""
    return component_class(values, kind).from_config(values, check_size)


def checked_config(config_class: type, values: dict[str, Any]) -> Any:
    """The config dataclass from its `config.json` form: the class-name key dropped, unknown keys refused, and
    every value checked against its field's type and bounds before the dataclass is built.

    Raises:
        TypeError: Not a mapping, an unknown field, or a value of the wrong type.
        ValueError: A value out of bounds (or refused by the dataclass's own checks).
    """
    if not isinstance(values, dict):
        raise TypeError(f"a config must be a JSON object, not {type(values).__name__}")
    values = {key: value for key, value in values.items() if key != CLASS_KEY}
    unknown = sorted(set(values) - {f.name for f in fields(config_class)})
    if unknown:
        raise TypeError(f"unknown {config_class.__name__} fields: {', '.join(unknown)}")
    hints = get_type_hints(config_class)
    return config_class(**{name: checked_field(name, value, hints[name]) for name, value in values.items()})


def checked_field(name: str, value: Any, hint: Any) -> Any:
    """`value` as the config field `name` of type `hint` takes it, or TypeError / ValueError naming the field."""
    if get_origin(hint) in (Union, types.UnionType):  # Optional[X], X | None
        if value is None and type(None) in get_args(hint):
            return None
        (hint,) = [arg for arg in get_args(hint) if arg is not type(None)]
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) > MAX_TUPLE:
            raise TypeError(f"{name} must be a list of at most {MAX_TUPLE} numbers, got {_shown(value)}")
        return tuple(checked_field(f"{name}[{i}]", item, get_args(hint)[0]) for i, item in enumerate(value))
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
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise TypeError(f"{name} must be a short string, got {_shown(value)}")
        return value
    raise TypeError(f"{name}: config fields of type {hint} are not supported")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
