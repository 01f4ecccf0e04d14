"""Hole-ratio histogram and speed of the free-form mask generator, with and without bucket targeting.

    python benchmarks/mask_histogram.py [--count 6000] [--size 256] [--seed 0] [--plot out.png]

Generates `count` masks cycling through the six NVIDIA buckets (0-10% ... 50-60%, so 1000 per bucket by default)
and `count` untargeted ones, through `MaskGenerator` exactly as training uses it, on one CPU core (the process is
pinned to a single core where the OS allows it). Prints markdown tables: the hole-ratio histogram in 10% bins
(lo, hi], per-bucket statistics of the targeted masks, and masks/s. `--plot` also writes a PNG when matplotlib is
installed.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from hf_faceinpaint.masks import BUCKETS, MaskGenerator, hole_ratio

EDGES = np.round(np.arange(0.1, 1.01, 0.1), 10)  # upper bin edges; bin k holds ratios in (k/10, (k+1)/10]


def generate(generator: MaskGenerator, count: int) -> tuple[np.ndarray, float]:
    """Hole ratios of masks 0..count-1 and the generation rate in masks/s (ratio measurement not timed)."""
    ratios = np.empty(count)
    elapsed = 0.0
    for index in range(count):
        start = time.perf_counter()
        mask = generator(index)
        elapsed += time.perf_counter() - start
        ratios[index] = hole_ratio(mask)
    return ratios, count / elapsed


def histogram(ratios: np.ndarray) -> np.ndarray:
    """Counts per 10% bin (lo, hi]; a ratio of exactly 0 counts in the first bin."""
    return np.bincount(np.searchsorted(EDGES, ratios, side="left"), minlength=len(EDGES))


def plot(path: str, targeted: np.ndarray, untargeted: np.ndarray) -> None:
    """Overlayed hole-ratio histograms as a PNG, or a notice when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nmatplotlib is not installed; {path} not written")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 0.7, 71)
    ax.hist(targeted, bins=bins, alpha=0.6, label="bucket-targeted")
    ax.hist(untargeted, bins=bins, alpha=0.6, label="untargeted")
    ax.set_xlabel("hole ratio")
    ax.set_ylabel("masks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="masks per mode (default 6000, 1000 per bucket)")
    parser.add_argument("--size", type=int, default=256, help="mask side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PNG", help="also write a histogram plot (needs matplotlib)")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)

    targeted_gen = MaskGenerator("irregular", size=args.size, buckets=BUCKETS, seed=args.seed)
    targeted, targeted_rate = generate(targeted_gen, args.count)
    untargeted, untargeted_rate = generate(MaskGenerator("irregular", size=args.size, seed=args.seed), args.count)

    print(f"{args.count} + {args.count} irregular masks, {args.size}x{args.size}, seed {args.seed}, one CPU core\n")
    print("| hole ratio | bucket-targeted | % | untargeted | % |")
    print("|---|---:|---:|---:|---:|")
    for k, (t, u) in enumerate(zip(histogram(targeted), histogram(untargeted))):
        label = f"({k * 10}%, {k * 10 + 10}%]" if k else "[0%, 10%]"
        print(f"| {label} | {t} | {100 * t / args.count:.1f} | {u} | {100 * u / args.count:.1f} |")

    print("\n| target bucket | masks | in bucket | min | mean | max |")
    print("|---|---:|---:|---:|---:|---:|")
    slots = np.arange(args.count) % len(BUCKETS)
    for k, (lo, hi) in enumerate(BUCKETS):
        ratios = targeted[slots == k]
        hits = np.count_nonzero((ratios > lo) & (ratios <= hi))
        print(
            f"| ({lo:.0%}, {hi:.0%}] | {ratios.size} | {hits} | {ratios.min():.4f} | {ratios.mean():.4f} "
            f"| {ratios.max():.4f} |"
        )
    print(f"\nuntargeted: mean {untargeted.mean():.4f}, min {untargeted.min():.4f}, max {untargeted.max():.4f}")

    print("\n| mode | masks/s (one core) |")
    print("|---|---:|")
    print(f"| bucket-targeted (all six buckets) | {targeted_rate:.0f} |")
    print(f"| untargeted | {untargeted_rate:.0f} |")

    if args.plot:
        plot(args.plot, targeted, untargeted)


if __name__ == "__main__":
    main()
