"""Training throughput per preset: images/s and peak memory of the trainer's own D + G step (`gan_step`).

    python benchmarks/bench_train.py [--presets msl-tiny-128,msl-256] [--batch-size 8,64] [--steps 3]
        [--device cpu|cuda] [--mixed-precision no|bf16] [--resolution R] [--json]

Random images and irregular masks at each preset's resolution (or --resolution); VGG16 and the face prior with random
weights (their cost does not depend on the weights). The data pipeline is not included. CPU memory is the process's
peak resident set (it only grows, so run one preset per process for exact per-preset figures: each preset and batch
size runs in a fresh subprocess). FLOPs per image are counted by `torch.utils.flop_counter` over one whole step (D and
G updates, forward and backward, VGG16 included); TFLOP/s = FLOPs per image × images/s, and on a GPU its share of
the card's dense bf16 peak (`hf_faceinpaint.profiling.BF16_PEAK_TFLOPS`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def run_one(preset: str, batch: int, steps: int, device: str, mixed_precision: str, resolution: int) -> dict[str, str]:
    from accelerate import Accelerator

    from hf_faceinpaint import MSLInpainter
    from hf_faceinpaint.losses import PerceptualStyleLoss
    from hf_faceinpaint.masks import MaskGenerator
    from hf_faceinpaint.models.vgg import VGG16Features
    from hf_faceinpaint.training.config import MSLWeights, TrainConfig
    from hf_faceinpaint.profiling import BF16_PEAK_TFLOPS
    from hf_faceinpaint.training.msl import gan_step
    from torch.utils.flop_counter import FlopCounterMode

    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision)
    generator = MSLInpainter.from_preset(preset)
    resolution = resolution or generator.config.resolution
    discriminator = generator.build_discriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    loss = PerceptualStyleLoss(VGG16Features()).to(accelerator.device)
    config = TrainConfig(model=preset, output_dir="unused", msl=MSLWeights(w_adv=0.01))
    masks = MaskGenerator("irregular", resolution, seed=0)
    images = torch.rand(batch, 3, resolution, resolution, device=accelerator.device) * 2 - 1
    hole = torch.from_numpy(np.stack([masks(i) for i in range(batch)]))[:, None].float().to(accelerator.device)

    def step() -> None:
        gan_step(accelerator, generator, discriminator, opt_g, opt_d, loss, images, hole, config, 0)
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        step()  # warm-up, counted
    flops = counter.get_total_flops() / batch
    if accelerator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    if accelerator.device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (GPU)"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (RSS)"
    tflops = flops * batch / seconds / 1e12
    peak = BF16_PEAK_TFLOPS.get(torch.cuda.get_device_name()) if accelerator.device.type == "cuda" else None
    return {"preset": preset, "res": f"{resolution}²", "batch": str(batch), "precision": mixed_precision,
            "s/step": f"{seconds:.3f}", "img/s": f"{batch / seconds:.1f}", "GFLOP/img (train)": f"{flops / 1e9:.1f}",
            "TFLOP/s": f"{tflops:.2f}", "of bf16 peak": f"{tflops / peak:.1%}" if peak else "-", "peak memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="msl-tiny-128")
    parser.add_argument("--batch-size", default="8", help="one or more, comma-separated")
    parser.add_argument("--resolution", type=int, default=0, help="image side (default: each preset's own)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one preset and print its row as JSON
    args = parser.parse_args()
    if args.one:
        row = run_one(args.one, int(args.batch_size), args.steps, args.device, args.mixed_precision, args.resolution)
        print(json.dumps(row))
        return
    rows = []
    for preset in args.presets.split(","):
        for batch in args.batch_size.split(","):
            command = [sys.executable, __file__, "--one", preset, "--batch-size", batch, "--steps", str(args.steps),
                       "--device", args.device, "--mixed-precision", args.mixed_precision,
                       "--resolution", str(args.resolution)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "none"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device} (GPU: {gpu})")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
