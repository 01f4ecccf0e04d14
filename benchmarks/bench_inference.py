"""Inference cost per preset: parameters, GFLOPs, median ms per image at batch 1 and 8, next to OpenCV Telea and NS.

    python benchmarks/bench_inference.py [--repeats 5] [--device cpu|cuda] [--presets msl-tiny-128,twostage-tiny-128]
        [--photo-sides 256,512,1024]

Images: the CelebA-HQ eval set from ../shared (or $HF_FACEINPAINT_SHARED) when present, else the bundled example.
Masks: NVIDIA irregular test masks (20-30% bucket) when present, else a fixed rectangle. Networks are timed on the
model tensor alone (no pre/post-processing); the OpenCV baselines on uint8 images of the same size. On a CUDA device
the networks are also timed in bf16 and reported as images/s; on a CPU with bf16 units (`precision.bf16_is_fast`:
AMX or AVX512-BF16) also under bf16 autocast at batch 1.

A second table times the whole `inpaint()` call as a user makes it (PIL photo and mask in, PIL image out: crop,
working size, the default pipeline's network, draft and stages, paste-back) on photos of each `--photo-sides`, next to
OpenCV Telea through the same call, and the same for the README demo (the bundled 512² example photo and its mask).
The default model runs as `inpaint()` runs it by default (`precision="auto"`: bf16 autocast on
hardware with bf16 units), and on such hardware once more in fp32. The default model is loaded (and cached) before
timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hf_faceinpaint import ClassicInpainter, inpaint, list_presets
from hf_faceinpaint.images import example_image_path, example_mask_path
from hf_faceinpaint.models.registry import from_preset, preset_config, resolve_model
from hf_faceinpaint.precision import bf16_is_fast, uses_bf16
from hf_faceinpaint.profiling import count_parameters, gflops_per_image

SHARED = Path(os.environ.get("HF_FACEINPAINT_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def load_inputs(resolution: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` RGB images (N, H, W, 3) uint8 and hole masks (N, H, W) bool at `resolution`²."""
    faces = sorted((SHARED / "data" / "celebahq_eval256").glob("*.png"))[:count] or [example_image_path()] * count
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((resolution, resolution), Image.BICUBIC)) for p in faces])
    mask_dir = SHARED / "data" / "masks" / "nvidia_irregular_test"
    if mask_dir.is_dir():
        files = sorted(mask_dir.glob("*.png"))[4000 : 4000 + count]  # indices 4000-5999: the 20-30% bucket
        masks = np.stack([np.asarray(Image.open(p).convert("L").resize((resolution, resolution), Image.NEAREST)) > 127 for p in files])
    else:
        masks = np.zeros((count, resolution, resolution), bool)
        masks[:, resolution // 4 : resolution // 2, resolution // 4 : 3 * resolution // 4] = True
    return images, masks


def median_ms(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_network(name: str, device: torch.device, repeats: int) -> dict[str, str]:
    model = from_preset(name).eval().to(device)
    resolution = model.config.resolution
    images, masks = load_inputs(resolution, 8)
    image = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)  # (8, 3, H, W)
    mask = torch.from_numpy(masks)[:, None].float().to(device)  # (8, 1, H, W)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    row = {"method": name, "res": f"{resolution}²", "params": f"{count_parameters(model) / 1e6:.2f}M"}
    row["GFLOPs"] = f"{gflops_per_image(model, resolution):.1f}"
    with torch.inference_mode():
        for batch in (1, 8):
            ms = median_ms(lambda: model(image[:batch], mask[:batch]), repeats, sync)
            row[f"ms/img b{batch}"] = f"{ms / batch:.1f}"
        if device.type == "cpu" and bf16_is_fast(device):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                row["ms/img b1 bf16"] = f"{median_ms(lambda: model(image[:1], mask[:1]), repeats):.1f}"
        if device.type == "cuda":
            row["img/s fp32 b8"] = f"{8e3 / median_ms(lambda: model(image, mask), repeats, sync):.0f}"
            with torch.autocast("cuda", dtype=torch.bfloat16):
                row["img/s bf16 b8"] = f"{8e3 / median_ms(lambda: model(image, mask), repeats, sync):.0f}"
    return row


def bench_classic(method: str, resolution: int, repeats: int) -> dict[str, str]:
    images, masks = load_inputs(resolution, 8)
    inpainter = ClassicInpainter(method)
    ms = median_ms(lambda: [inpainter(i, m) for i, m in zip(images, masks)], repeats) / 8
    return {"method": f"opencv {method}", "res": f"{resolution}²", "params": "-", "GFLOPs": "-",
            "ms/img b1": f"{ms:.1f}", "ms/img b8": f"{ms:.1f}"}


def bench_inpaint(spec: str | None, side: int | None, repeats: int, precision: str = "auto") -> dict[str, str]:
    """Median ms of one `inpaint()` call on a side² photo (a CelebA-HQ face or the example, upscaled) with a
    20-30 % NVIDIA mask (or a rectangle); side None: the bundled example photo with its own mask (the README demo)."""
    if side is None:
        photo, hole, label = Image.open(example_image_path()), Image.open(example_mask_path()), "demo"
    else:
        images, masks = load_inputs(side, 1)
        photo, hole, label = Image.fromarray(images[0]), Image.fromarray(masks[0]), f"{side}²"
    resolved = resolve_model(spec)
    ms = median_ms(lambda: inpaint(photo, hole, model=resolved.model, precision=precision), repeats)
    arithmetic = "-"
    if not isinstance(resolved.model, ClassicInpainter):
        param = next(resolved.model.parameters())
        own = "fp32" if param.dtype == torch.float32 else str(param.dtype).removeprefix("torch.")
        arithmetic = "bf16 autocast" if uses_bf16(param.device, param.dtype, precision) else own
    return {"method": resolved.name, "photo": label, "arithmetic": arithmetic, "ms per inpaint()": f"{ms:.0f}"}


def print_table(rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(c, "") for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", default=",".join(list_presets()))
    parser.add_argument("--photo-sides", default="256,512,1024", help="photo sides for the inpaint() table")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = [n for n in args.presets.split(",") if n]
    rows = [bench_network(name, device, args.repeats) for name in names]
    resolutions = sorted({preset_config(n).resolution for n in names})
    rows += [bench_classic(method, res, args.repeats) for res in resolutions for method in ("telea", "ns")]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device} (GPU: {gpu}), bf16 units: "
          f"{'yes' if bf16_is_fast(device) else 'no'}")
    print_table(rows)
    print()
    sides = [int(side) for side in args.photo_sides.split(",") if side]
    runs = [(None, "auto"), *([(None, "fp32")] if bf16_is_fast(device) else []), ("telea", "auto")]
    print_table([bench_inpaint(spec, side, args.repeats, precision) for side in [*sides, None]
                 for spec, precision in runs])


if __name__ == "__main__":
    main()
