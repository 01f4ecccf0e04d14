"""Training throughput per preset: images/s and peak memory of the trainer's own D + G step (`gan_step`).

    python benchmarks/bench_train.py [--presets msl-tiny-128,msl-256] [--batch-size 8] [--steps 3] [--device cpu|cuda]
        [--mixed-precision no|bf16]

Random images and irregular masks at each preset's resolution; VGG16 with random weights (its cost does not depend
on the weights). The data pipeline is not included. CPU memory is the process's peak resident set (it only grows,
so run one preset per process for exact per-preset figures: each preset is run in a fresh subprocess).
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


def run_one(preset: str, batch: int, steps: int, device: str, mixed_precision: str) -> dict[str, str]:
    from accelerate import Accelerator

    from hf_faceinpaint import MSLInpainter
    from hf_faceinpaint.losses import PerceptualStyleLoss
    from hf_faceinpaint.masks import MaskGenerator
    from hf_faceinpaint.models.vgg import VGG16Features
    from hf_faceinpaint.training.config import TrainConfig
    from hf_faceinpaint.training.trainer import gan_step

    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision)
    generator = MSLInpainter.from_preset(preset)
    resolution = generator.config.resolution
    discriminator = generator.build_discriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    loss = PerceptualStyleLoss(VGG16Features()).to(accelerator.device)
    config = TrainConfig(model=preset, output_dir="unused")
    masks = MaskGenerator("irregular", resolution, seed=0)
    images = torch.rand(batch, 3, resolution, resolution, device=accelerator.device) * 2 - 1
    hole = torch.from_numpy(np.stack([masks(i) for i in range(batch)]))[:, None].float().to(accelerator.device)

    def step() -> None:
        gan_step(accelerator, generator, discriminator, opt_g, opt_d, loss, images, hole, config, 0)
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
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
    return {"preset": preset, "res": f"{resolution}²", "batch": str(batch), "precision": mixed_precision,
            "s/step": f"{seconds:.2f}", "img/s": f"{batch / seconds:.2f}", "peak memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="msl-tiny-128,msl-256")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one preset and print its row as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.batch_size, args.steps, args.device, args.mixed_precision)))
        return
    rows = []
    for preset in args.presets.split(","):
        command = [sys.executable, __file__, "--one", preset, "--batch-size", str(args.batch_size), "--steps",
                   str(args.steps), "--device", args.device, "--mixed-precision", args.mixed_precision]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
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
