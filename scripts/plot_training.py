"""Plot a training run's loss and validation curves from its metrics.jsonl.

    python scripts/plot_training.py RUN_DIR [--out RUN_DIR/curves.png] [--mark STEP ...]

Top row: the discriminator and generator losses and the generator's loss terms (log scale, smoothed).
Bottom row: validation PSNR, SSIM and L1 of the EMA generator, with OpenCV Telea on the same pairs as a dashed line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from hf_faceinpaint.io import atomic_path  # noqa: E402


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (window clipped at the start)."""
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (cumsum[1:] - cumsum[starts]) / (np.arange(1, len(values) + 1) - starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--window", type=int, default=20, help="moving-average window over logged points")
    parser.add_argument("--mark", type=int, action="append", default=[], help="step to mark with a vertical line, "
                        "e.g. where a run resumed with other settings (repeatable)")
    args = parser.parse_args()
    records = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # One record per step, the last one written (runs from before `truncate_metrics` repeat steps after a resume).
    losses = sorted({r["step"]: r for r in records if "loss/g" in r}.values(), key=lambda r: r["step"])
    vals = sorted({r["step"]: r for r in records if "val/psnr" in r}.values(), key=lambda r: r["step"])
    telea = next((r for r in records if "val/telea_psnr" in r), None)

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    steps = np.array([r["step"] for r in losses])
    for ax, keys in zip(axes[0], (("loss/d", "loss/g"), ("loss/rec", "loss/adv"), ("loss/perc", "loss/style"))):
        for key in keys:
            ax.plot(steps, smooth(np.array([r[key] for r in losses]), args.window), label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend()
    val_steps = [r["step"] for r in vals]
    for ax, metric in zip(axes[1], ("psnr", "ssim", "l1")):
        ax.plot(val_steps, [r[f"val/{metric}"] for r in vals], marker="o", label="MSL (EMA)")
        if telea:
            ax.axhline(telea[f"val/telea_{metric}"], color="gray", linestyle="--", label="OpenCV Telea")
        ax.set_title(f"validation {metric.upper()}" + (" (lower is better)" if metric == "l1" else ""))
        ax.set_xlabel("step")
        ax.legend()
    for ax in axes.flat:
        for step in args.mark:
            ax.axvline(step, color="black", linestyle=":", linewidth=1)
    fig.suptitle(f"{args.run_dir.name}: {steps.max() if len(steps) else 0} steps")
    fig.tight_layout()
    out = args.out or args.run_dir / "curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
