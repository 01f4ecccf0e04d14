"""Contextual attention (spatial semantic learning, MSL paper section 2.1.2 "第二步", eqs. 4-6) against a naive reference.

    S_ij  = < f_i/||f_i||, f_j/||f_j|| >          (4)  cosine of 3×3 patch i (query) and known patch j (key)
    S'_ij = softmax_j(lambda · S_ij)              (5)  the paper prints no lambda (= 1); the code uses DeepFill's lambda
    f'_i  = sum_j S'_ij f_j                       (6)  (printed as "(4)" with f_i, a typo for f_j)

`_naive_contextual_attention` is written with explicit Python loops (no unfold / fold / bmm): zero-padded patches,
"known" keys = windows with no hole pixel inside the image (padding counts as known), cosine with both patches
normalised (norm clamped at 1e-4), softmax over the known keys, rebuilt patch = weighted sum of value patches, every
pixel = mean of the rebuilt patches covering it (one patch per score-map location, footprints clipped to the image,
which is what the code's `fold` of ones counts), output = hole·rebuilt + (1-hole)·input, unchanged when an image has
no known key. With rate r the scores use r×r average-pooled features and an r×r max-pooled hole mask, and the value
patches are (3r)×(3r), stride r, padding r.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.layers import ContextualAttention, attention_scores, transfer


# --------------------------------------------------------------------------------------------------------------------
# naive reference
# --------------------------------------------------------------------------------------------------------------------
def _naive_one(f: np.ndarray, hole: np.ndarray, rate: int, k: int, scale: float) -> np.ndarray:
    """One image. f: (C, H, W); hole: (H, W) binary at full resolution. Returns (C, H, W)."""
    C, H, W = f.shape
    h, w = H // rate, W // rate
    pad = k // 2

    # matching map: rate×rate average pooling of the features, max pooling of the hole
    small = np.zeros((C, h, w))
    hole_small = np.zeros((h, w))
    for a in range(h):
        for b in range(w):
            block = f[:, a * rate : (a + 1) * rate, b * rate : (b + 1) * rate]
            small[:, a, b] = block.reshape(C, -1).mean(axis=1)
            hole_small[a, b] = hole[a * rate : (a + 1) * rate, b * rate : (b + 1) * rate].max()

    locations = [(a, b) for a in range(h) for b in range(w)]

    def score_patch(a: int, b: int) -> np.ndarray:
        patch = np.zeros((C, k, k))
        for dy in range(k):
            for dx in range(k):
                y, x = a + dy - pad, b + dx - pad
                if 0 <= y < h and 0 <= x < w:
                    patch[:, dy, dx] = small[:, y, x]
        return patch.ravel()

    def is_known(a: int, b: int) -> bool:
        for dy in range(-pad, pad + 1):
            for dx in range(-pad, pad + 1):
                y, x = a + dy, b + dx
                if 0 <= y < h and 0 <= x < w and hole_small[y, x] >= 0.5:
                    return False
        return True

    known = [j for j, (a, b) in enumerate(locations) if is_known(a, b)]
    if not known:
        return f.copy()

    unit = []
    for a, b in locations:
        p = score_patch(a, b)
        unit.append(p / max(math.sqrt(float(np.dot(p, p))), 1e-4))

    kernel, vpad = k * rate, rate * pad

    def value_patch(a: int, b: int) -> np.ndarray:
        patch = np.zeros((C, kernel, kernel))
        for dy in range(kernel):
            for dx in range(kernel):
                y, x = a * rate - vpad + dy, b * rate - vpad + dx
                if 0 <= y < H and 0 <= x < W:
                    patch[:, dy, dx] = f[:, y, x]
        return patch

    values = [value_patch(a, b) for a, b in locations]
    acc = np.zeros((C, H, W))
    count = np.zeros((H, W))
    for i, (a, b) in enumerate(locations):
        logits = [scale * float(np.dot(unit[i], unit[j])) for j in known]  # eq. 4 (× lambda)
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        rebuilt = np.zeros((C, kernel, kernel))
        for e, j in zip(exps, known):
            rebuilt += (e / total) * values[j]  # eqs. 5-6
        for dy in range(kernel):
            for dx in range(kernel):
                y, x = a * rate - vpad + dy, b * rate - vpad + dx
                if 0 <= y < H and 0 <= x < W:
                    acc[:, y, x] += rebuilt[:, dy, dx]
                    count[y, x] += 1
    assert (count > 0).all()
    rebuilt_map = acc / count[None]
    return hole[None] * rebuilt_map + (1.0 - hole[None]) * f


def _naive_contextual_attention(
    features: torch.Tensor, mask: torch.Tensor, rate: int = 1, patch_size: int = 3, scale: float = 10.0
) -> torch.Tensor:
    f = features.detach().double().numpy()
    m = mask.detach().double().numpy()
    out = np.stack([_naive_one(f[b], m[b, 0], rate, patch_size, scale) for b in range(f.shape[0])])
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------------------------------
def _mask(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """(1, 1, H, W) float64 mask with 1 in each box (y0, y1, x0, x1), end exclusive."""
    m = torch.zeros(1, 1, *shape, dtype=torch.float64)
    for y0, y1, x0, x1 in boxes:
        m[..., y0:y1, x0:x1] = 1.0
    return m


def _masks_7x9() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    free_form = (torch.rand(1, 1, 7, 9, generator=g, dtype=torch.float64) < 0.08).double()
    free_form[..., 3, 4] = 1.0
    return {
        "centre_box": torch.cat([_mask((7, 9), (2, 5, 3, 6)), _mask((7, 9), (1, 3, 1, 4))]),
        "border_box": torch.cat([_mask((7, 9), (0, 3, 6, 9)), _mask((7, 9), (4, 7, 0, 2))]),
        "single_pixel": torch.cat([_mask((7, 9), (3, 4, 4, 5)), _mask((7, 9), (0, 1, 0, 1))]),
        "free_form": torch.cat([free_form, free_form.flip(-1)]),
        # second image has no known 3×3 window at all -> must come back unchanged
        "one_image_without_known": torch.cat([_mask((7, 9), (2, 4, 2, 5)), _mask((7, 9), (0, 7, 1, 8))]),
    }


_MASKS_7x9 = _masks_7x9()


def _masks_8x10() -> dict[str, torch.Tensor]:
    return {
        "aligned_box": torch.cat([_mask((8, 10), (2, 6, 4, 8)), _mask((8, 10), (0, 2, 0, 4))]),
        "unaligned_box": torch.cat([_mask((8, 10), (3, 6, 3, 6)), _mask((8, 10), (5, 8, 7, 10))]),
        "single_pixel": torch.cat([_mask((8, 10), (3, 4, 5, 6)), _mask((8, 10), (7, 8, 9, 10))]),
    }


_MASKS_8x10 = _masks_8x10()


# --------------------------------------------------------------------------------------------------------------------
# equality with the naive reference
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_name", sorted(_MASKS_7x9))
@pytest.mark.parametrize("scale", [10.0, 3.0])
def test_rate1_equals_naive_reference(mask_name: str, scale: float) -> None:
    features = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    mask = _MASKS_7x9[mask_name]
    out = ContextualAttention(patch_size=3, softmax_scale=scale, rate=1)(features, mask)
    expected = _naive_contextual_attention(features, mask, rate=1, scale=scale)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mask_name", sorted(_MASKS_8x10))
def test_rate2_equals_naive_reference(mask_name: str) -> None:
    """Reduced-resolution matching: scores on 2×2 average-pooled features / max-pooled hole, 6×6 value patches."""
    features = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    mask = _MASKS_8x10[mask_name]
    out = ContextualAttention(patch_size=3, softmax_scale=10.0, rate=2)(features, mask)
    expected = _naive_contextual_attention(features, mask, rate=2, scale=10.0)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_rate1_patch_size_5_equals_naive_reference() -> None:
    features = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    mask = _mask((9, 9), (3, 6, 4, 7))
    out = ContextualAttention(patch_size=5, softmax_scale=10.0)(features, mask)
    torch.testing.assert_close(out, _naive_contextual_attention(features, mask, patch_size=5), atol=1e-5, rtol=0)


def test_naive_reference_is_not_trivially_the_input() -> None:
    """Guard: on these inputs the hole really is rewritten (so the equality tests above test something)."""
    features = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    mask = _MASKS_7x9["centre_box"]
    out = _naive_contextual_attention(features, mask)
    assert (out - features).abs()[mask.expand_as(features) > 0].min() > 0


def test_mask_at_higher_resolution_is_max_pooled() -> None:
    features = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    fine = (torch.rand(2, 1, 12, 16, dtype=torch.float64) < 0.05).double()
    coarse = torch.nn.functional.max_pool2d(fine, 2)
    module = ContextualAttention(rate=1)
    torch.testing.assert_close(module(features, fine), module(features, coarse), atol=0, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1, 2])
def test_only_hole_locations_change(rate: int) -> None:
    features = torch.randn(2, 4, 12, 10)
    mask = (torch.rand(2, 1, 12, 10) < 0.15).float()
    mask[:, :, 4:8, 2:6] = 1.0
    out = ContextualAttention(rate=rate)(features, mask)
    assert out.shape == features.shape and torch.isfinite(out).all()
    keep = (mask < 0.5).expand_as(features)
    assert torch.equal(out[keep], features[keep])  # bit-identical
    assert not torch.equal(out[~keep], features[~keep])


def _duplicated_block_features(size: int, channels: int, shift: int, lo: int, hi: int) -> torch.Tensor:
    """Random features with rows/cols [lo+shift, hi+shift) an exact copy of the known block [lo, hi)."""
    g = torch.Generator().manual_seed(7)
    f = torch.randn(1, channels, size, size, generator=g, dtype=torch.float64)
    f[..., lo + shift : hi + shift, lo + shift : hi + shift] = f[..., lo:hi, lo:hi]
    return f


def test_retrieval_copies_duplicated_known_block_into_hole() -> None:
    """A hole block that duplicates a known block is rebuilt from it (cosine 1 wins under a large lambda)."""
    shift = 7
    features = _duplicated_block_features(16, 8, shift, 1, 8)  # known source rows/cols 1..7, copy 8..14
    mask = _mask((16, 16), (8, 15, 8, 15))
    out = ContextualAttention(softmax_scale=1e3)(features, mask)
    # interior pixels: every 3×3 patch covering them lies inside the copied block
    interior = out[..., 10:13, 10:13]
    torch.testing.assert_close(interior, features[..., 10 - shift : 13 - shift, 10 - shift : 13 - shift], atol=1e-4, rtol=0)
    torch.testing.assert_close(interior, features[..., 10:13, 10:13], atol=1e-4, rtol=0)


def test_transfer_with_other_values_retrieves_values_at_matching_known_positions() -> None:
    """Two-stage use: scores from one map fill another map; the hole gets the *values* at the matched positions."""
    shift = 7
    features = _duplicated_block_features(16, 8, shift, 1, 8)
    hole = _mask((16, 16), (8, 15, 8, 15))
    values = torch.randn(1, 5, 16, 16, dtype=torch.float64)
    attn, has_known = attention_scores(features, hole, patch_size=3, softmax_scale=1e3)
    assert has_known.tolist() == [True]
    assert attn.shape == (1, 256, 256)
    rebuilt = transfer(attn, values, (16, 16), rate=1, patch_size=3)
    assert rebuilt.shape == values.shape
    torch.testing.assert_close(
        rebuilt[..., 10:13, 10:13], values[..., 10 - shift : 13 - shift, 10 - shift : 13 - shift], atol=1e-4, rtol=0
    )


def test_transfer_rate2_retrieves_values_at_twice_the_matching_offset() -> None:
    """Scores on an h×w map fill a 2h×2w map: a match offset s on the score map moves 2s full-resolution pixels."""
    shift = 7
    features = _duplicated_block_features(16, 8, shift, 1, 8)  # score map 16×16
    hole = _mask((16, 16), (8, 15, 8, 15))
    values = torch.randn(1, 4, 32, 32, dtype=torch.float64)
    attn, _ = attention_scores(features, hole, softmax_scale=1e3)
    rebuilt = transfer(attn, values, (16, 16), rate=2, patch_size=3)
    assert rebuilt.shape == (1, 4, 32, 32)
    # full-res rows 20..25 are covered only by patches of score locations 9..13 (exact matches)
    s = 2 * shift
    torch.testing.assert_close(rebuilt[..., 20:26, 20:26], values[..., 20 - s : 26 - s, 20 - s : 26 - s], atol=1e-4, rtol=0)


def test_module_rate2_retrieves_duplicated_block() -> None:
    shift = 14  # even, so the 2×2 pooled copy equals the pooled source exactly
    g = torch.Generator().manual_seed(3)
    features = torch.randn(1, 6, 32, 32, generator=g, dtype=torch.float64)
    features[..., 16:30, 16:30] = features[..., 16 - shift : 30 - shift, 16 - shift : 30 - shift]
    mask = _mask((32, 32), (16, 30, 16, 30))
    out = ContextualAttention(softmax_scale=1e3, rate=2)(features, mask)
    torch.testing.assert_close(out[..., 20:26, 20:26], features[..., 20 - shift : 26 - shift, 20 - shift : 26 - shift], atol=1e-4, rtol=0)


@pytest.mark.parametrize("rate", [1, 2])
def test_no_hole_returns_input(rate: int) -> None:
    features = torch.randn(2, 3, 8, 6)
    out = ContextualAttention(rate=rate)(features, torch.zeros(2, 1, 8, 6))
    assert torch.equal(out, features)


@pytest.mark.parametrize("rate", [1, 2])
def test_all_hole_returns_input_and_is_finite(rate: int) -> None:
    features = torch.randn(2, 3, 8, 6)
    out = ContextualAttention(rate=rate)(features, torch.ones(2, 1, 8, 6))
    assert torch.isfinite(out).all()
    assert torch.equal(out, features)


@pytest.mark.parametrize("rate", [1, 2])
@pytest.mark.parametrize("strip", [1, 2, 3, 4])
def test_hole_everywhere_but_a_thin_strip_is_finite(rate: int, strip: int) -> None:
    features = torch.randn(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    mask[0, :, :, :strip] = 0.0  # known strip on the left border
    mask[1, :, 3 : 3 + strip, :] = 0.0  # known strip across the middle
    out = ContextualAttention(rate=rate)(features, mask)
    assert torch.isfinite(out).all()
    keep = (mask < 0.5).expand_as(features)
    assert torch.equal(out[keep], features[keep])
    if rate == 1:
        expected = _naive_contextual_attention(features.double(), mask.double(), rate=1)
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rate", [1, 2])
def test_gradients_flow_and_are_finite(rate: int) -> None:
    features = torch.randn(3, 4, 8, 8, requires_grad=True)
    mask = torch.zeros(3, 1, 8, 8)
    mask[0, :, 2:6, 2:6] = 1.0
    mask[1, :, 0:4, 4:8] = 1.0
    mask[2] = 1.0  # no known patch: the passthrough branch
    out = ContextualAttention(rate=rate)(features, mask)
    (out * torch.randn_like(out)).sum().backward()
    grad = features.grad
    assert grad is not None and torch.isfinite(grad).all()
    # gradient reaches the known pixels the hole copied from, beyond their own passthrough path
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0


def test_rate2_shapes_hole_only_and_finite() -> None:
    features = torch.randn(2, 5, 16, 12)
    mask = torch.zeros(2, 1, 16, 12)
    mask[0, :, 5:11, 3:9] = 1.0
    mask[1, :, 0:7, 0:5] = 1.0
    out = ContextualAttention(rate=2)(features, mask)
    assert out.shape == features.shape and torch.isfinite(out).all()
    keep = (mask < 0.5).expand_as(features)
    assert torch.equal(out[keep], features[keep])


def test_rate_must_divide_feature_size() -> None:
    with pytest.raises(ValueError, match="divisible"):
        ContextualAttention(rate=2)(torch.randn(1, 2, 7, 8), torch.zeros(1, 1, 7, 8))


def test_invalid_constructor_arguments() -> None:
    with pytest.raises(ValueError):
        ContextualAttention(patch_size=4)
    with pytest.raises(ValueError):
        ContextualAttention(rate=0)
    with pytest.raises(ValueError):
        attention_scores(torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), patch_size=2)


# --------------------------------------------------------------------------------------------------------------------
# transfer() sizes
# --------------------------------------------------------------------------------------------------------------------
def test_transfer_rate2_fills_double_size_map() -> None:
    features = torch.randn(2, 3, 4, 5)
    hole = torch.zeros(2, 1, 4, 5)
    hole[:, :, 1:3, 1:3] = 1.0
    attn, _ = attention_scores(features, hole)
    assert attn.shape == (2, 20, 20)
    rows = attn.sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))  # softmax rows sum to 1 over the known keys
    out = transfer(attn, torch.randn(2, 7, 8, 10), (4, 5), rate=2)
    assert out.shape == (2, 7, 8, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("values_size", [(4, 5), (6, 10), (8, 12), (16, 20)])
def test_transfer_rate2_size_mismatch_raises(values_size: tuple[int, int]) -> None:
    attn, _ = attention_scores(torch.randn(1, 3, 4, 5), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="do not fit scores"):
        transfer(attn, torch.randn(1, 3, *values_size), (4, 5), rate=2)


@pytest.mark.parametrize("values_size", [(9, 10), (10, 8)])
def test_transfer_rejects_values_not_rate_times_score_size(values_size: tuple[int, int]) -> None:
    """9×10 has as many stride-2 patches as 8×10, and 10×8 is the transposed map: both must be refused."""
    attn, _ = attention_scores(torch.randn(1, 3, 4, 5), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="expected 8x10"):
        transfer(attn, torch.randn(1, 3, *values_size), (4, 5), rate=2)


def test_huge_softmax_scale_keeps_rows_normalised() -> None:
    """With λ·cos far below -1e4 a finite mask fill would win the softmax; rows must still sum to 1."""
    features = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    hole = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    hole[..., 2:4, 2:4] = 1
    attn, _ = attention_scores(features, hole, softmax_scale=1e6)
    rows = attn.sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))


@pytest.mark.parametrize("rate", [1, 2])
def test_module_equals_full_scores_and_transfer_with_different_holes_per_image(rate: int) -> None:
    """The module scores only the rows and columns that matter (queries touching the hole, known keys) over the
    batch's union; per image it must equal the full (L × L) `attention_scores` + `transfer`, at the hole."""
    torch.manual_seed(0)
    features = torch.randn(3, 4, 16, 20, dtype=torch.float64)
    mask = torch.zeros(3, 1, 16, 20, dtype=torch.float64)
    mask[0, :, 2:6, 3:9] = 1
    mask[1, :, 8:15, 10:19] = 1
    mask[2, :, :, :] = (torch.rand(16, 20) < 0.2).double()
    out = ContextualAttention(patch_size=3, softmax_scale=10.0, rate=rate)(features, mask)
    small = F.avg_pool2d(features, rate) if rate > 1 else features
    hole_small = F.adaptive_max_pool2d(mask, small.shape[-2:])
    attn, _ = attention_scores(small, hole_small)
    expected = mask * transfer(attn, features, tuple(small.shape[-2:]), rate) + (1 - mask) * features
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
