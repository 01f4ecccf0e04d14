"""Hole masks: generators, buckets, the seeded training generator and mask folders."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hf_faceinpaint import masks as masks_module
from hf_faceinpaint.masks import (
    BUCKETS,
    MaskFolder,
    MaskGenerator,
    hole_ratio,
    irregular_mask,
    mask_to_tensor,
    parse_buckets,
    random_rectangle_mask,
    square_mask,
)

SHARED = Path(os.environ.get("HF_FACEINPAINT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
NVIDIA = SHARED / "data" / "masks" / "nvidia_irregular_test"


def in_range(ratio: float, bucket: tuple[float, float]) -> bool:
    return bucket[0] < ratio <= bucket[1]


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


# --- ratios, tensors, bucket strings ---------------------------------------------------------------------------


def test_hole_ratio_and_tensor() -> None:
    mask = np.zeros((4, 5), bool)
    mask[0, :2] = True
    assert hole_ratio(mask) == 0.1
    tensor = mask_to_tensor(mask)
    assert tensor.shape == (1, 4, 5) and tensor.dtype == torch.float32
    assert tensor.sum().item() == 2 and tensor[0, 0, 0].item() == 1.0 and tensor[0, 1, 0].item() == 0.0
    with pytest.raises(ValueError, match="empty"):
        hole_ratio(np.zeros((0, 3), bool))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        mask_to_tensor(np.zeros((1, 4, 4), bool))


def test_parse_buckets() -> None:
    assert parse_buckets("10-20,20-30") == [(0.1, 0.2), (0.2, 0.3)]
    assert parse_buckets(" 0-10 , 50%-60% ") == [(0.0, 0.1), (0.5, 0.6)]
    assert parse_buckets("0-10,10-20,20-30,30-40,40-50,50-60") == BUCKETS
    for bad, message in [
        ("", "empty"),
        ("10", "bad bucket '10'"),
        ("10-20,", "bad bucket ''"),
        ("a-b", "bad bucket 'a-b'"),
        ("-5-10", "bad bucket"),
        ("20-10", "lo < hi"),
        ("10-10", "lo < hi"),
        ("50-120", "hi <= 100"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_buckets(bad)


# --- irregular masks -------------------------------------------------------------------------------------------


def test_irregular_mask_untargeted() -> None:
    mask = irregular_mask((96, 128), np.random.default_rng(3))
    assert mask.dtype == bool and mask.shape == (96, 128)
    assert 0 < hole_ratio(mask) < 1
    assert np.array_equal(mask, irregular_mask((96, 128), np.random.default_rng(3)))
    assert not np.array_equal(mask, irregular_mask((96, 128), np.random.default_rng(4)))


@pytest.mark.parametrize("bucket", BUCKETS)
def test_irregular_mask_hits_every_bucket(bucket: tuple[float, float]) -> None:
    rng = np.random.default_rng(0)
    ratios = [hole_ratio(irregular_mask(128, rng, bucket)) for _ in range(30)]
    assert all(in_range(r, bucket) for r in ratios), ratios
    assert max(ratios) - min(ratios) > 0.02  # spread over the bucket, not piled up on one value


def test_irregular_mask_bucket_non_square_and_small() -> None:
    rng = np.random.default_rng(1)
    for size in [(64, 160), 16]:
        for bucket in [(0.0, 0.1), (0.5, 0.6)]:
            mask = irregular_mask(size, rng, bucket)
            assert in_range(hole_ratio(mask), bucket)


def _components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8))[0] - 1  # minus the background label


def test_speck_clusters_add_small_isolated_holes_within_the_bucket() -> None:
    plain = [irregular_mask(128, np.random.default_rng(i), (0.1, 0.2)) for i in range(20)]
    specked = [irregular_mask(128, np.random.default_rng(i), (0.1, 0.2), speck_share=0.5) for i in range(20)]
    assert all(in_range(hole_ratio(m), (0.1, 0.2)) for m in specked)
    assert np.mean([_components(m) for m in specked]) > 3 * np.mean([_components(m) for m in plain])
    # speck_share = 0 leaves the masks of the same seed exactly as before; a share of 1 draws only speck clusters
    for i, mask in enumerate(plain):
        assert np.array_equal(mask, irregular_mask(128, np.random.default_rng(i), (0.1, 0.2), speck_share=0.0))
    only_specks = irregular_mask(128, np.random.default_rng(0), (0.0, 0.1), speck_share=1.0)
    sizes = cv2.connectedComponentsWithStats(only_specks.astype(np.uint8))[2][1:, cv2.CC_STAT_AREA]
    assert sizes.min() <= 16 and np.median(sizes) < 64  # 2-6 px squares and dots, some merged
    untargeted = irregular_mask(128, np.random.default_rng(0), speck_share=1.0)
    assert _components(untargeted) > _components(irregular_mask(128, np.random.default_rng(0)))


def test_irregular_mask_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="0 <= lo < hi <= 1"):
        irregular_mask(64, rng, (0.5, 0.2))
    with pytest.raises(ValueError, match=r"no 2x2 mask has a hole ratio in \(0.3, 0.4\]"):
        irregular_mask(2, rng, (0.3, 0.4))
    with pytest.raises(ValueError, match="size must be"):
        irregular_mask((0, 64), rng)
    monkeypatch.setattr(masks_module, "_MAX_SHAPES", 1)
    with pytest.raises(RuntimeError, match=r"hole ratio in \(0.5, 0.6\] in 1 shapes"):
        irregular_mask(64, rng, (0.5, 0.6))


# --- squares and rectangles ------------------------------------------------------------------------------------


def test_square_mask_centred_exact() -> None:
    mask = square_mask(256, 128)
    assert mask.dtype == bool and mask.sum() == 128 * 128
    assert bounding_box(mask) == (64, 192, 64, 192)
    assert np.array_equal(square_mask(256, 0.5), mask)  # fraction of the side
    assert bounding_box(square_mask((100, 200), 50)) == (25, 75, 75, 125)
    assert bounding_box(square_mask((100, 200), 0.3)) == (35, 65, 85, 115)  # 0.3 of the shorter side
    assert square_mask(64, 64.0).all()


def test_square_mask_random_position() -> None:
    boxes = set()
    for seed in range(20):
        mask = square_mask((64, 80), 20, center=False, rng=np.random.default_rng(seed))
        top, bottom, left, right = bounding_box(mask)
        assert mask.sum() == 400 and bottom - top == 20 and right - left == 20
        boxes.add((top, left))
    assert len(boxes) > 10
    with pytest.raises(ValueError, match="needs an rng"):
        square_mask(64, 20, center=False)


@pytest.mark.parametrize("side", [0, 65, 1.5, -0.5, True, "32"])
def test_square_mask_bad_side(side: object) -> None:
    with pytest.raises(ValueError, match="side"):
        square_mask(64, side)


def test_random_rectangle_mask() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = random_rectangle_mask((100, 200), rng, 0.2, 0.4)
        top, bottom, left, right = bounding_box(mask)
        assert mask[top:bottom, left:right].all() and mask.sum() == (bottom - top) * (right - left)
        assert 20 <= bottom - top <= 40 and 40 <= right - left <= 80
    with pytest.raises(ValueError, match="min_frac"):
        random_rectangle_mask(64, rng, 0.5, 0.2)


# --- the seeded generator --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["irregular", "square", "mixed"])
def test_generator_reproducible(kind: str) -> None:
    first = MaskGenerator(kind, size=64, buckets=BUCKETS, seed=7)
    second = MaskGenerator(kind, size=64, buckets=BUCKETS, seed=7)
    forward = [first(i) for i in range(12)]
    backward = [second(i) for i in reversed(range(12))][::-1]  # call order must not matter
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert np.array_equal(pickle.loads(pickle.dumps(first))(5), forward[5])  # as in a data-loader worker
    assert not np.array_equal(forward[0], forward[6])  # same bucket, different index
    assert not np.array_equal(MaskGenerator(kind, size=64, buckets=BUCKETS, seed=8)(0), forward[0])


@pytest.mark.parametrize("kind", ["irregular", "square", "mixed"])
def test_generator_cycles_buckets(kind: str) -> None:
    generator = MaskGenerator(kind, size=96, buckets="10-20,40-50,50-60", seed=0)
    for index in range(30):
        mask = generator(index)
        assert mask.shape == (96, 96) and mask.dtype == bool
        assert in_range(hole_ratio(mask), generator.buckets[index % 3])


def test_generator_kinds() -> None:
    def is_square(mask: np.ndarray) -> bool:
        top, bottom, left, right = bounding_box(mask)
        return bottom - top == right - left and mask.sum() == (bottom - top) ** 2

    mixed = [is_square(MaskGenerator("mixed", size=64)(i)) for i in range(40)]
    assert 5 < sum(mixed) < 35
    squares = [MaskGenerator("square", size=64)(i) for i in range(10)]
    assert all(is_square(m) and 16 <= np.sqrt(m.sum()) <= 32 for m in squares)


def test_generator_errors() -> None:
    with pytest.raises(ValueError, match="unknown mask kind 'blob'"):
        MaskGenerator("blob")
    with pytest.raises(ValueError, match="non-empty"):
        MaskGenerator(buckets=[])
    with pytest.raises(ValueError, match="0 <= lo < hi <= 1"):
        MaskGenerator(buckets=[(0.2, 0.1)])
    with pytest.raises(ValueError, match="no square"):
        MaskGenerator("square", size=(64, 128), buckets=[(0.5, 0.6)])  # the largest square covers 50%
    with pytest.raises(ValueError, match="seed"):
        MaskGenerator(seed=-1)
    with pytest.raises(ValueError, match="index"):
        MaskGenerator()(-1)
    with pytest.raises(ValueError, match=r"speck_share must lie in \[0, 1\], got 1.5"):
        MaskGenerator(speck_share=1.5)
    with pytest.raises(ValueError, match="speck_share"):
        irregular_mask(64, np.random.default_rng(0), speck_share=-0.1)


# --- mask folders ----------------------------------------------------------------------------------------------


def write_masks(folder: Path) -> list[np.ndarray]:
    """Three white-hole masks (PNG, BMP, JPG) plus a non-image file; returns the hole maps in file-name order."""
    folder.mkdir(parents=True, exist_ok=True)
    holes = []
    for name, (top, left, side) in [("a.png", (0, 0, 8)), ("b.bmp", (8, 8, 16)), ("c.jpg", (4, 12, 16))]:
        hole = np.zeros((32, 32), bool)
        hole[top : top + side, left : left + side] = True
        Image.fromarray(hole.astype(np.uint8) * 255).save(folder / name, quality=95)
        holes.append(hole)
    (folder / "notes.txt").write_text("not a mask")
    return holes


def test_folder_reads_masks(tmp_path: Path) -> None:
    holes = write_masks(tmp_path)
    folder = MaskFolder(tmp_path)
    assert len(folder) == 3 and [p.name for p in folder.files] == ["a.png", "b.bmp", "c.jpg"]
    for i, hole in enumerate(holes):
        assert folder[i].dtype == bool and np.array_equal(folder[i], hole)  # JPEG noise is thresholded away
    assert np.array_equal(folder[-1], holes[-1])
    with pytest.raises(IndexError):
        folder[3]
    assert np.allclose(folder.ratios(), [64 / 1024, 256 / 1024, 256 / 1024])
    assert folder.in_bucket(0.0, 0.1) == [0] and folder.in_bucket(0.2, 0.3) == [1, 2]
    assert folder.in_bucket(0.25, 0.3) == [] and folder.in_bucket(0.2, 0.25) == [1, 2]  # (lo, hi]


def test_folder_polarity(tmp_path: Path) -> None:
    holes = write_masks(tmp_path)
    folder = MaskFolder(tmp_path, polarity="black-hole")
    assert np.array_equal(folder[1], ~holes[1])
    assert np.allclose(folder.ratios()[0], 1 - 64 / 1024)
    with pytest.raises(ValueError, match="unknown polarity 'white'"):
        MaskFolder(tmp_path, polarity="white")


def test_folder_resize_stays_binary(tmp_path: Path) -> None:
    write_masks(tmp_path)
    soft = (np.arange(40 * 40).reshape(40, 40) % 256).astype(np.uint8)  # greys everywhere
    Image.fromarray(soft).save(tmp_path / "d.png")
    for size, shape in [(16, (16, 16)), ((20, 48), (20, 48))]:
        folder = MaskFolder(tmp_path, size=size)
        for i in range(len(folder)):
            assert folder[i].shape == shape and folder[i].dtype == bool
    small = MaskFolder(tmp_path, size=16)
    assert small[1].sum() == 64 and bounding_box(small[1]) == (4, 12, 4, 12)  # the 16-px square at (8, 8), halved
    assert np.allclose(small.ratios()[:3], MaskFolder(tmp_path).ratios()[:3])  # native-resolution ratios


def test_folder_uses_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_masks(tmp_path)
    (tmp_path / "masks.csv").write_text("file,hole_ratio\na.png,0.5\nc.jpg,0.05\nother.png,0.9\n")
    folder = MaskFolder(tmp_path)
    assert np.allclose(folder.ratios(), [0.5, 0.25, 0.05])  # b.bmp is not listed: measured
    monkeypatch.setattr(MaskFolder, "_load", lambda *args: pytest.fail("ratios must be cached"))
    assert folder.in_bucket(0.4, 0.5) == [0] and folder.in_bucket(0.0, 0.1) == [2]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mask folder not found"):
        MaskFolder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("no masks here")
    with pytest.raises(FileNotFoundError, match="no mask files"):
        MaskFolder(tmp_path)
    write_masks(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    folder = MaskFolder(tmp_path)
    with pytest.raises(ValueError, match=r"broken\.png is not a readable image"):
        folder[folder.files.index(tmp_path / "broken.png")]
    with pytest.raises(ValueError, match=r"broken\.png"):
        folder.ratios()
    (tmp_path / "masks.csv").write_text("name,ratio\na.png,0.1\n")
    with pytest.raises(ValueError, match="columns 'file' and 'hole_ratio'"):
        MaskFolder(tmp_path).ratios()
    (tmp_path / "masks.csv").write_text("file,hole_ratio\na.png,lots\n")
    with pytest.raises(ValueError, match="line 2: bad hole_ratio"):
        MaskFolder(tmp_path).ratios()


@pytest.mark.shared
@pytest.mark.skipif(not NVIDIA.is_dir(), reason="NVIDIA irregular test masks (../shared) not present")
def test_nvidia_masks() -> None:
    folder = MaskFolder(NVIDIA, polarity="white-hole")
    assert len(folder) == 12000
    ratios = folder.ratios()
    for i in range(0, 12000, 487):  # a sample across all buckets: the csv agrees with the pixels
        mask = folder[i]
        assert mask.shape == (512, 512)
        assert abs(hole_ratio(mask) - ratios[i]) <= 5e-7
    for k, (lo, hi) in enumerate(BUCKETS):
        assert folder.in_bucket(lo, hi) == list(range(2000 * k, 2000 * (k + 1)))
    small = MaskFolder(NVIDIA, size=256)
    assert small[4321].shape == (256, 256) and small[4321].dtype == bool
