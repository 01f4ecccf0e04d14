"""How a network's arithmetic is chosen (`precision.py`): bf16 autocast where the hardware is fast, float32 else."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint import precision as precision_module
from hf_faceinpaint.precision import network_autocast


@pytest.mark.parametrize(("precision", "fast", "expected"),
                         [("auto", True, True), ("auto", False, False), ("bf16", False, True), ("fp32", True, False)])
def test_precision_picks_bf16_autocast_where_the_hardware_is_fast(
        monkeypatch: pytest.MonkeyPatch, precision: str, fast: bool, expected: bool) -> None:
    monkeypatch.setattr(precision_module, "bf16_is_fast", lambda device: fast)
    with network_autocast(torch.zeros(1), precision):
        assert torch.is_autocast_enabled("cpu") == expected
    with network_autocast(torch.zeros(1, dtype=torch.float64), precision):  # only a float32 network is autocast
        assert not torch.is_autocast_enabled("cpu")
