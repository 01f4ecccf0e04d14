"""How a network's arithmetic is chosen: bf16 autocast where the hardware has bf16 units, else float32.

A float32 network runs under bf16 autocast where the hardware runs it natively (`precision="auto"`, see
`bf16_is_fast`): msl-face's 256² forward then takes 148 instead of 245 ms on a 2-core Xeon with AMX, and its fill
moves by 0.0004 on average (images in [-1, 1]). Elsewhere bf16 is emulated, and slower than float32 (a GroupNorm /
SiLU U-Net ran 35 times slower on an AVX2 CPU). Only the network runs under autocast: the face stages' least squares,
correlations and blurs always run in float32 (`pipeline.FaceInpaintPipeline`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

# How a float32 network's arithmetic is chosen: "auto" (bf16 autocast where `bf16_is_fast`), "fp32" or "bf16".
PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds a network up on `device`: a CUDA GPU with bf16 support, or a CPU with bf16 units
    (AMX tiles or AVX512-BF16, where oneDNN runs bf16 convolutions natively)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence looked up with a default
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def emulated_bf16_warning(device: torch.device, option: str, instead: str) -> str | None:
    """The warning for a training run asked (by `option`) for bf16 autocast on a `device` without bf16 units, where
    it is emulated (`bf16_is_fast`); `instead` names the float32 choice. None where bf16 is fast."""
    if bf16_is_fast(device):
        return None
    return (f"warning: {option} on {device}, which has no bf16 units (AMX, AVX512-BF16; see precision.bf16_is_fast): "
            f"autocast is emulated there, and a step can take over 100 times as long as in float32; {instead}")


def check_precision(precision: str) -> None:
    """Raise a ValueError naming `precision` unless it is one of `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")


def uses_bf16(device: torch.device, dtype: torch.dtype, precision: str = "auto") -> bool:
    """Whether a network with `dtype` parameters on `device` runs under bf16 autocast: a float32 network when
    `precision` is "bf16", or "auto" and `bf16_is_fast`."""
    check_precision(precision)
    return dtype == torch.float32 and (precision == "bf16" or precision == "auto" and bf16_is_fast(device))


def network_autocast(param: torch.Tensor, precision: str = "auto") -> AbstractContextManager:
    """The autocast context a network whose parameters look like `param` runs under (`uses_bf16`)."""
    enabled = uses_bf16(param.device, param.dtype, precision)
    return torch.autocast(param.device.type, dtype=torch.bfloat16, enabled=enabled)
