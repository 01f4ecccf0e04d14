"""Parsing a `--device` value into a device this machine really has."""

from __future__ import annotations

import torch


def parse_device(name: str) -> torch.device:
    """A device name ("cpu", "cuda", "cuda:1", "mps") as a `torch.device`, checked against this machine.

    Args:
        name: The device name.

    Raises:
        ValueError: Not a device name, or a device this machine lacks.
    """
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"invalid device {name!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available on this machine")
    return device
