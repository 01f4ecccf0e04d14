"""Collect a device training run's results into the folder that comes back from the GPU machine (`$OUT`).

    python scripts/device_report.py RUN OUT [--processes N]

Writes `final/` (the trained EMA component, a network or a face draft, as a float16 save_pretrained folder),
`discriminator.safetensors`, `metrics.jsonl`, `samples.png` (the last sample grid) and `gpu.json`: the GPU, preset,
batch, processes, steps, images seen, minutes, median img/s and step time after the first log record, peak memory,
and for a network the training FLOPs per image counted by `benchmarks/bench_train.py` (whole D + G step, VGG16
included) and the achieved TFLOP/s with its share of the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from hf_faceinpaint.models.registry import load_pretrained
from hf_faceinpaint.profiling import BF16_PEAK_TFLOPS


BATCH_CHOICE = ("256 per GPU at 128²: the highest img/s of benchmarks/bench_train.py --device cuda --mixed-precision "
                "bf16 --batch-size 64,128,256 on an H200 (1059, 1430 and 1599 img/s, 2026-11-27)")


def counted_flops(preset: str, resolution: int) -> float:
    """Training FLOPs per image of one step, counted on the CPU by the project's benchmark (batch 2)."""
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"),
               "--presets", preset, "--batch-size", "2", "--steps", "1", "--device", "cpu",
               "--resolution", str(resolution), "--json"]
    row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    return float(row["GFLOP/img (train)"]) * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training run's --output-dir")
    parser.add_argument("out", type=Path, help="the folder that comes back ($OUT)")
    parser.add_argument("--preset", required=True, help="the trained preset (train.py --model)")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = load_pretrained(args.run / "final")
    model.half().save_pretrained(args.out / "final")
    shutil.copy(args.run / "discriminator.safetensors", args.out / "discriminator.safetensors")
    shutil.copy(args.run / "metrics.jsonl", args.out / "metrics.jsonl")
    samples = sorted((args.run / "samples").glob("step-*.png"))
    if samples:
        shutil.copy(samples[-1], args.out / "samples.png")

    records = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    perf = [r for r in records if "perf/img_s" in r]
    steady = perf[1:] or perf  # the first record includes start-up and warm-up
    state = json.loads(sorted((args.run / "checkpoints").glob("step-*/trainer_state.json"))[-1].read_text())
    img_s = statistics.median(r["perf/img_s"] for r in steady)
    resolution = getattr(model.config, "resolution", None)  # a network's; a draft's faces are its grid's twice
    flops = counted_flops(args.preset, resolution) if resolution else None
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU dry run)"
    peak = BF16_PEAK_TFLOPS.get(gpu)
    achieved = img_s * flops / 1e12 if flops else None
    batch = round(steady[-1]["perf/img_s"] * steady[-1]["perf/step_s"] / args.processes)
    report = {
        "gpu": gpu,
        "processes": args.processes,
        "preset": args.preset,
        "batch_per_process": batch,
        "batch_choice": BATCH_CHOICE if batch == 256 else "set with BATCH",
        "steps": state["step"],
        "images_seen": state["step"] * batch * args.processes,
        "minutes": round(perf[-1]["perf/minutes"], 2),
        "img_per_s": round(img_s, 1),
        "step_s": round(statistics.median(r["perf/step_s"] for r in steady), 4),
        "peak_memory_gib": round(max(r["perf/peak_mem_gib"] for r in perf), 2),
        "train_gflop_per_image": round(flops / 1e9, 2) if flops else None,
        "achieved_tflops": round(achieved, 2) if achieved else None,
        "bf16_peak_tflops": peak,
        "fraction_of_bf16_peak": round(achieved / peak, 4) if peak and achieved else None,
    }
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
