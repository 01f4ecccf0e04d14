"""Model size and cost: parameter counts and FLOPs per image, as the README's preset table reports them."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


# Dense (no sparsity) bf16 tensor-core peak of the GPUs this project is lent, TFLOP/s, by `torch.cuda.get_device_name()`
# (NVIDIA's data sheets: H100 SXM and H200 989.4; H100 PCIe 756.5; A100 312).
BF16_PEAK_TFLOPS: dict[str, float] = {
    "NVIDIA H100 80GB HBM3": 989.4,
    "NVIDIA H200": 989.4,
    "NVIDIA H100 PCIe": 756.5,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
}


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def gflops_per_image(model: nn.Module, resolution: int) -> float:
    """GFLOPs of one inference forward pass at `resolution`², counted by `torch.utils.flop_counter`
    (a multiply-add counts as 2 FLOPs; convolutions and matrix products, which dominate, are counted).
    A centred half-size square hole is used, since contextual attention's cost does not depend on the mask."""
    param = next(model.parameters())
    image = torch.zeros(1, 3, resolution, resolution, device=param.device, dtype=param.dtype)
    mask = torch.zeros(1, 1, resolution, resolution, device=param.device, dtype=param.dtype)
    mask[..., resolution // 4 : 3 * resolution // 4, resolution // 4 : 3 * resolution // 4] = 1
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(image, mask)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9
