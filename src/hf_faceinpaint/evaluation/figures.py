"""PNG figures of an evaluation: one line plot per metric over the buckets, and a grid of example outputs.

Drawn with matplotlib's object API and the Agg canvas (no pyplot, no global backend change).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .report import point
from .runner import ExampleRow

_CELL_INCHES = 2.0
_DPI = 128  # 256 px per grid cell


def _save(figure: Figure, path: str | os.PathLike) -> None:
    """Render a figure to a PNG file."""
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=_DPI)


def metric_plot(report: dict[str, Any], key: str, path: str | os.PathLike) -> None:
    """Plot one metric against the buckets, one line per method, with 95% confidence intervals as error bars.

    Args:
        report: The results.json dict.
        key: Metric key ("psnr", "ssim", "l1", "lpips", "fid").
        path: PNG file to write.
    """
    info = next(info for info in report["metrics"] if info["key"] == key)
    buckets = report["buckets"]
    x = np.arange(len(buckets))
    figure = Figure(figsize=(max(5.0, 1.4 * len(buckets) + 2.5), 4.0), layout="constrained")
    axes = figure.add_subplot()
    dodge = 0.04 * (np.arange(len(report["methods"])) - (len(report["methods"]) - 1) / 2)  # keep error bars apart
    for shift, method in zip(dodge, report["methods"]):
        entries = [report["results"][method["name"]][b["key"]][key] for b in buckets]
        y = np.array([point(e) for e in entries])  # (buckets,)
        yerr = None
        if info["per_image"] and all(e["ci95"] for e in entries):
            yerr = np.array([[mean - e["ci95"][0], e["ci95"][1] - mean] for mean, e in zip(y, entries)]).T  # (2, buckets)
        axes.errorbar(
            x + shift, y, yerr=yerr, marker="o", capsize=3, label=method["label"], linestyle="--" if method["untrained"] else "-"
        )
    axes.set_xticks(x, [b["title"] for b in buckets])
    axes.set_xlabel("mask" if report["settings"]["mask_mode"] in ("square", "parts") else "hole ratio")
    axes.set_ylabel(f"{info['label']} {'↑' if info['higher_is_better'] else '↓'}")
    title = f"{info['label']} per bucket ({report['sample_sizes']['images']} images, mean ± 95% CI)"
    if key == "fid":
        sizes = next(iter(report["fid"]["sample_sizes"].values()))
        meaning = "" if report["fid"]["meaningful"] else ": NOT meaningful at this size"
        title = f"FID per bucket (n = {sizes['n_fake']} vs {sizes['n_real']}{meaning})"
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def example_grid(rows: Sequence[ExampleRow], path: str | os.PathLike) -> None:
    """A grid: per row one pair, columns masked input (hole white), the mask, each method's output, ground truth.

    Args:
        rows: The example rows (all with the same methods).
        path: PNG file to write.

    Raises:
        ValueError: No rows.
    """
    if not rows:
        raise ValueError("no example rows to draw")
    columns = ["masked input", "mask", *rows[0].outputs, "ground truth"]
    figure = Figure(figsize=(_CELL_INCHES * len(columns), (_CELL_INCHES + 0.3) * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        pictures = [row.masked, row.mask, *row.outputs.values(), row.ground_truth]
        for c, picture in enumerate(pictures):
            axes = grid[r, c]
            axes.imshow(picture, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(columns[c], fontsize=9)
        grid[r, 0].set_ylabel(f"{row.image}\n{row.bucket}", fontsize=7)
    _save(figure, path)
