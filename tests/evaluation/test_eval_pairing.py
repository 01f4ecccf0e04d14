"""The seeded (image, mask) assignment and the three mask protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_faceinpaint.evaluation.pairing import (
    EvalBucket,
    assign_masks,
    folder_plan,
    generated_plan,
    ratio_buckets,
    square_plan,
)
from hf_faceinpaint.masks import hole_ratio

RESOLUTION = 32
BUCKET = EvalBucket("10-20", "(10%, 20%]", 0.1, 0.2)
CANDIDATES = [f"{i:05d}.png" for i in range(100)]


def test_same_seed_same_pairs_and_different_seed_different_pairs() -> None:
    first = assign_masks(20, CANDIDATES, seed=3, bucket=BUCKET)
    assert first == assign_masks(20, CANDIDATES, seed=3, bucket=BUCKET)
    assert first != assign_masks(20, CANDIDATES, seed=4, bucket=BUCKET)
    other_bucket = EvalBucket("20-30", "(20%, 30%]", 0.2, 0.3)
    assert first != assign_masks(20, CANDIDATES, seed=3, bucket=other_bucket)


def test_assignment_draws_without_replacement_and_keeps_prefixes() -> None:
    masks = assign_masks(30, CANDIDATES, seed=0, bucket=BUCKET)
    assert len(set(masks)) == 30 and set(masks) <= set(CANDIDATES)
    assert assign_masks(10, CANDIDATES, seed=0, bucket=BUCKET) == masks[:10]  # --limit keeps the first images' pairs


def test_more_images_than_masks_reuse_each_mask_evenly() -> None:
    masks = assign_masks(7, ["a", "b", "c"], seed=0, bucket=BUCKET)
    assert sorted(masks.count(name) for name in "abc") == [2, 2, 3]
    with pytest.raises(ValueError, match="no masks"):
        assign_masks(3, [], seed=0, bucket=BUCKET)


def test_ratio_buckets_names_and_duplicates() -> None:
    buckets = ratio_buckets([(0.1, 0.2), (0.125, 0.5)])
    assert [(b.key, b.title) for b in buckets] == [("10-20", "(10%, 20%]"), ("12.5-50", "(12.5%, 50%]")]
    with pytest.raises(ValueError, match="twice"):
        ratio_buckets([(0.1, 0.2), (0.1, 0.2)])


def test_folder_plan_buckets_by_the_ratio_after_resizing(mask_folder: Path) -> None:
    # Odd rows of the top-left quarter: 12.5% at 64×64 (and in masks.csv), 25% once nearest-resized to 32×32.
    stripes = np.zeros((64, 64), np.uint8)
    stripes[1:32:2, :32] = 255
    Image.fromarray(stripes).save(mask_folder / "stripes.png")
    plan = folder_plan(mask_folder, RESOLUTION, [(0.1, 0.2), (0.2, 0.3)], n_images=8, seed=0, progress=False)
    by_bucket = {b.key: {p.mask for p in plan.pairs if p.bucket == b.key} for b in plan.buckets}
    assert "stripes.png" in by_bucket["20-30"] and "stripes.png" not in by_bucket["10-20"]
    assert plan.available == {"10-20": 4, "20-30": 5}
    assert [p.image for p in plan.pairs] == list(range(8)) * 2  # bucket-major, images in order
    for pair in plan.pairs:
        bucket = next(b for b in plan.buckets if b.key == pair.bucket)
        assert bucket.lo < hole_ratio(plan.load(pair.mask)) <= bucket.hi
    again = folder_plan(mask_folder, RESOLUTION, [(0.1, 0.2), (0.2, 0.3)], n_images=8, seed=0, progress=False)
    assert again.pairs == plan.pairs


def test_generated_and_square_plans() -> None:
    plan = generated_plan(RESOLUTION, [(0.1, 0.2), (0.3, 0.4)], n_images=3, seed=5)
    for pair in plan.pairs:
        bucket = next(b for b in plan.buckets if b.key == pair.bucket)
        assert bucket.lo < hole_ratio(plan.load(pair.mask)) <= bucket.hi
    np.testing.assert_array_equal(plan.load("generated #4"), generated_plan(RESOLUTION, [(0.1, 0.2), (0.3, 0.4)], 3, 5).load("generated #4"))
    square = square_plan(RESOLUTION, 0.5, n_images=3)
    assert [b.key for b in square.buckets] == ["square-16px"] and len(square.pairs) == 3
    hole = square.load("square-16px")
    assert hole[8:24, 8:24].all() and hole.sum() == 256
