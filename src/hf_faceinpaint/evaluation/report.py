"""Markdown reports rendered from results.json: the MSL paper's Table 1 layout, results.md and the model card section.

The table has one row per (metric, method), grouped by metric (the metric named on its first row, with ↑ / ↓), and
one column per bucket; the best value of each metric in each bucket is bold. Every function here reads only the
results.json dict, so the Markdown can be re-rendered from a saved results.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CARD_START = "<!-- evaluation:start -->"
CARD_END = "<!-- evaluation:end -->"


def point(entry: dict[str, Any]) -> float:
    """The number a table cell or plot shows for one result entry.

    Args:
        entry: `results[method][bucket][metric]` of results.json: a per-image metric's {"mean", ...} or FID's
            {"value", ...}.
    """
    return entry["mean"] if "mean" in entry else entry["value"]


def _cell(entry: dict[str, Any], decimals: int, best: bool) -> str:
    """"**mean** ± half-width" (bold when best); FID without an interval."""
    text = f"{point(entry):.{decimals}f}"
    if best:
        text = f"**{text}**"
    if entry.get("ci95"):
        low, high = entry["ci95"]
        text += f" ± {(high - low) / 2:.{decimals}f}"
    return text


def _row_label(info: dict[str, Any], report: dict[str, Any]) -> str:
    """"PSNR ↑", "LPIPS (stand-in backbone) ↓", "FID ↓ (n = 54 vs 54, not meaningful)"."""
    label = f"{info['label']} {'↑' if info['higher_is_better'] else '↓'}"
    if info["key"] == "fid":
        sizes = report["fid"]["sample_sizes"].values()
        n_fake = sorted({s["n_fake"] for s in sizes})
        n_real = sorted({s["n_real"] for s in sizes})
        counts = f"n = {'/'.join(map(str, n_fake))} vs {'/'.join(map(str, n_real))}"
        label += f" ({counts}, {'see note' if report['fid']['meaningful'] else 'not meaningful'})"
    return label


def results_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table in the MSL paper's Table 1 layout.

    Args:
        report: The results.json dict.

    Returns:
        The table, one line per row, ending with a newline.
    """
    buckets = report["buckets"]
    lines = [
        "| Metric | Method | " + " | ".join(bucket["title"] for bucket in buckets) + " |",
        "|---|---|" + "---:|" * len(buckets),
    ]
    for info in report["metrics"]:
        points = {
            m["name"]: [point(report["results"][m["name"]][b["key"]][info["key"]]) for b in buckets]
            for m in report["methods"]
        }
        pick = max if info["higher_is_better"] else min
        best = [pick(column) for column in zip(*points.values())]
        for row, method in enumerate(report["methods"]):
            cells = [
                _cell(report["results"][method["name"]][b["key"]][info["key"]], info["decimals"], points[method["name"]][j] == best[j])
                for j, b in enumerate(buckets)
            ]
            metric = _row_label(info, report) if row == 0 else ""
            lines.append(f"| {metric} | {method['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_notes(report: dict[str, Any]) -> str:
    """The notes printed under the table: directions, intervals, sample sizes, untrained methods, LPIPS, FID.

    Args:
        report: The results.json dict.
    """
    sizes = report["sample_sizes"]
    settings = report["settings"]
    per_bucket = sorted({size["pairs"] for size in sizes["per_bucket"].values()})
    notes = [
        "↑ higher is better, ↓ lower is better; the best value per metric and bucket is in **bold**.",
        f"Cells: mean ± half-width of the 95% confidence interval (Student's t) over n = "
        f"{'/'.join(map(str, per_bucket))} (image, mask) pairs per bucket ({sizes['images']} images at "
        f"{settings['resolution']}×{settings['resolution']}, seed {settings['seed']}); metrics on the whole frame.",
        _mask_note(report),
    ]
    untrained = [m["label"] for m in report["methods"] if m["untrained"]]
    if untrained:
        notes.append(f"{', '.join(untrained)}: randomly initialised weights, NOT a trained model; a floor, not a result.")
    if report["lpips"]["computed"] and report["lpips"].get("note"):
        notes.append(report["lpips"]["note"])
    if report["fid"]["computed"]:
        notes.append(report["fid"]["note"])
    notes += report["notices"]
    return "\n".join(f"- {note}" for note in notes) + "\n"


def _mask_note(report: dict[str, Any]) -> str:
    """One sentence on the mask protocol."""
    mode = report["settings"]["mask_mode"]
    if mode == "nvidia":
        return (
            "Masks: files from the mask folder (NVIDIA irregular masks: the MSL paper's protocol), resized with nearest "
            "neighbour; a bucket (lo, hi] holds the masks whose hole ratio, measured after resizing, lies in it. Each "
            "image gets one mask per bucket by a seeded draw (recorded in results.json `pairs`)."
        )
    if mode == "square":
        return "Masks: one centred square hole for every image (the two-stage paper's protocol)."
    if mode == "parts":
        return ("Masks: face-part boxes on the aligned frame (masks.FACE_PARTS: both eyes, nose, mouth, half face, each "
                "eye alone), every image with every part: what a user paints over.")
    return "Masks: the project's MaskGenerator (free-form strokes and blobs, targeted at each bucket), seeded per pair."


def results_markdown(report: dict[str, Any]) -> str:
    """The whole results.md: title, settings, table and notes.

    Args:
        report: The results.json dict.
    """
    settings = report["settings"]
    methods = "\n".join(f"- `{m['name']}`: {m['source']}" for m in report["methods"])
    return (
        "# Inpainting evaluation\n\n"
        f"Images: `{settings['images']}`; mask protocol: `{settings['mask_mode']}`; resolution "
        f"{settings['resolution']}×{settings['resolution']}; seed {settings['seed']}; device {settings['device']}.\n\n"
        f"Methods:\n\n{methods}\n\n"
        f"{results_table(report)}\n{table_notes(report)}\n"
        "Every (image, mask, bucket) pair and each method's per-image metrics are in `results.json` (`pairs`).\n"
    )


def model_card_section(report: dict[str, Any]) -> str:
    """The evaluation section of a model card: the table and its notes between the evaluation markers.

    Pass it as `metrics_section` to `save_pretrained(..., model_card_kwargs=...)` (the template puts it under
    "## Evaluation"), or let `update_model_card` put it into an existing card.

    Args:
        report: The results.json dict.
    """
    return f"{CARD_START}\n{results_table(report)}\n{table_notes(report)}{CARD_END}"


def updated_card_text(card: str | None, section: str) -> str:
    """A model card's text with `section` in place.

    Between existing markers the old section is replaced; a card without markers gets a new "## Evaluation" section
    appended; no card (None) becomes just that section.

    Args:
        card: The card's current text, or None when there is none yet.
        section: The output of `model_card_section` (markers included).

    Raises:
        ValueError: The card has only one of the two markers, or them in the wrong order.
    """
    if card is None:
        return f"## Evaluation\n\n{section}\n"
    start, end = card.find(CARD_START), card.find(CARD_END)
    if start == -1 and end == -1:
        return f"{card.rstrip()}\n\n## Evaluation\n\n{section}\n"
    if start == -1 or end == -1 or end < start or card.count(CARD_START) > 1 or card.count(CARD_END) > 1:
        raise ValueError(f"the model card's evaluation markers are broken: expect one {CARD_START} before one {CARD_END}")
    return card[:start] + section + card[end + len(CARD_END) :]


def read_card(path: str | os.PathLike) -> str | None:
    """A model card's text, or None when the file does not exist yet.

    Args:
        path: The card (e.g. a save_pretrained folder's README.md).

    Raises:
        ValueError: The path is a folder, or its parent folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--write-model-card takes a file (e.g. {path / 'README.md'}), not a folder: {path}")
    if not path.parent.is_dir():
        raise ValueError(f"folder of --write-model-card does not exist: {path.parent}")
    return path.read_text(encoding="utf-8") if path.exists() else None



def check_model_card(path: str | os.PathLike) -> None:
    """Fail early, before an evaluation runs, when this model card could not be updated.

    Args:
        path: The card to be written by --write-model-card.

    Raises:
        ValueError: The path is a folder, its folder does not exist, or its evaluation markers are broken.
    """
    updated_card_text(read_card(path), "")
