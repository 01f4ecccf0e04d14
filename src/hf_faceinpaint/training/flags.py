"""Command line and config files -> `TrainConfig`: dataclass defaults, then the `--config` files in order, then flags.

As in timm, the config files become the parser's defaults (`parser.set_defaults`), so argparse converts and checks
their values exactly like the flags'. Config files are flat mappings of the flags' names (dashes or underscores).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .config import ConfigError, TrainConfig, leaves


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # `main` prints one `error:` line instead of argparse's usage text
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting (help text from the field metadata), a help section per loss-weight group, and --config."""
    parser = _Parser(description="Train an hf-faceinpaint model (run under `accelerate launch` for several processes).")
    parser.add_argument("--config", action="append", help="YAML or JSON file of settings; repeatable (later files "
                        "win), and flags override them")
    sections = {f.name: parser.add_argument_group(f.default_factory.__doc__) for f in fields(TrainConfig)
                if is_dataclass(f.default_factory)}
    for group, f in leaves():
        flag, section = "--" + f.name.replace("_", "-"), sections.get(group, parser)
        if isinstance(f.default, bool):
            section.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            kind, text = str if f.default is None else type(f.default), f.metadata["help"] + " (default: %(default)s)"
            section.add_argument(flag, type=kind, default=f.default, help=text)
    return parser


def read_config_file(path: str) -> dict[str, Any]:
    """The settings of a .yaml/.yml/.json file, as strings for argparse to convert."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
        data = (yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else json.loads(text)) or {}
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot parse config file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    defaults = {f.name: f.default for _, f in leaves()}
    data = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(defaults))
    if unknown:
        raise ConfigError(f"config file {path} has unknown settings: {', '.join(unknown)}")
    for key, value in data.items():  # what argparse cannot check: true/false only for switches, no lists or nulls
        wrong = isinstance(value, bool) != isinstance(defaults[key], bool) or isinstance(value, (list, dict))
        if wrong or (value is None and defaults[key] is not None):
            raise ConfigError(f"config file {path}: bad value for {key}: {value!r}")
    return {key: value if value is None or isinstance(value, bool) else str(value) for key, value in data.items()}


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """A validated `TrainConfig` from the defaults, the --config files in order, then the flags in `argv`."""
    parser, files = build_parser(), _Parser(add_help=False)
    files.add_argument("--config", action="append", default=[])
    for path in files.parse_known_args(argv)[0].config:
        parser.set_defaults(**read_config_file(path))
    values = vars(parser.parse_args(argv))
    del values["config"]
    groups = {f.name: f.default_factory(**{g.name: values.pop(g.name) for g in fields(f.default_factory)})
              for f in fields(TrainConfig) if is_dataclass(f.default_factory)}
    config = TrainConfig(**values, **groups)
    config.validate()
    return config
