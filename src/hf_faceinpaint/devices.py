"""Parsing a `--device` value into a device this machine really has."""

from __future__ import annotations

import torch

#: Device types a model can run on here; others (meta, which holds no data; xla, ...) are refused by name.
RUNNABLE = ("cpu", "cuda", "mps")


def parse_device(name: str | torch.device) -> torch.device:
    """A device name ("cpu", "cuda", "cuda:1", "mps") or `torch.device`, checked against this machine.

    Args:
        name: The device.

    Raises:
        ValueError: Not a device name, a device type no model runs on (such as "meta"), or a device this machine
            lacks.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"invalid device {name!r}: {err}") from err
    if device.type not in RUNNABLE:
        raise ValueError(f"device {str(device)!r} cannot run a model; use one of {', '.join(RUNNABLE)} (e.g. cuda:0)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                         "device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} requested but MPS is not available on this machine")
    return device
