"""Dataset specs (folder, Parquet, file list), decoding, bad images, and per-process sharding of the stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_faceinpaint.data import DatasetSpecError, decode_face, load_fixed_set, open_dataset, train_batches


def write_images(folder: Path, count: int, size: tuple[int, int] = (24, 16)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        array = np.full((size[1], size[0], 3), index * 10, np.uint8)
        path = folder / f"img_{index:02d}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def ids(batch: torch.Tensor) -> list[int]:
    """The index painted into each image (every pixel is index·10)."""
    return [round((img[0, 0, 0].item() + 1) * 127.5 / 10) for img in batch]


def test_decode_centre_crops_and_resizes() -> None:
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255  # the centre square is white, the sides black
    out = decode_face(Image.fromarray(image), 8)
    assert out.shape == (3, 8, 8) and out.min() == pytest.approx(1.0)


def test_decode_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unreadable image"):
        decode_face({"bytes": b"not an image", "path": None}, 8)


def test_folder_txt_and_parquet_specs(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "faces", 5)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p.relative_to(tmp_path)) for p in paths[:3]) + "\n")
    assert len(load_fixed_set(str(tmp_path / "faces"), 10, 8)) == 5
    assert ids(load_fixed_set(str(listing), 10, 8)) == [0, 1, 2]

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"bytes": p.read_bytes(), "path": None} for p in paths]
    pq.write_table(pa.table({"picture": rows, "id": list(range(5))}), tmp_path / "part-0.parquet")
    assert ids(load_fixed_set(str(tmp_path / "part-*.parquet"), 10, 8, image_column="picture")) == [0, 1, 2, 3, 4]
    with pytest.raises(DatasetSpecError, match="has no column 'image'; its columns are"):
        open_dataset(str(tmp_path / "part-0.parquet"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("/nonexistent/dir/", "is neither an image folder"), ("/nonexistent/*.parquet", "no Parquet files match"),
     ("/nonexistent/list.txt", "does not exist")],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(DatasetSpecError, match=message):
        open_dataset(spec)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetSpecError, match="no image files"):
        open_dataset(str(tmp_path))


def test_shards_are_disjoint_and_cover_the_epoch(tmp_path: Path) -> None:
    write_images(tmp_path / "faces", 12)
    dataset, column = open_dataset(str(tmp_path / "faces"))
    seen = []
    for rank in (0, 1):
        stream = train_batches(dataset, column, 8, 2, rank=rank, world_size=2, seed=1, shuffle_buffer=4)
        rank_ids = []
        for epoch, done, images, skipped in stream:
            if epoch > 0:
                break
            rank_ids += ids(images)
        seen.append(rank_ids)
    assert len(seen[0]) == len(seen[1]) == 6
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(12))


def test_epochs_reshuffle_and_resume_skips_exactly(tmp_path: Path) -> None:
    write_images(tmp_path / "faces", 8)
    dataset, column = open_dataset(str(tmp_path / "faces"))
    stream = train_batches(dataset, column, 8, 2, rank=0, world_size=1, seed=5, shuffle_buffer=8)
    batches = [next(stream) for _ in range(8)]  # two epochs of 4 batches
    first, second = sum((ids(b[2]) for b in batches[:4]), []), sum((ids(b[2]) for b in batches[4:]), [])
    assert sorted(first) == sorted(second) == list(range(8)) and first != second
    resumed = train_batches(dataset, column, 8, 2, rank=0, world_size=1, seed=5, shuffle_buffer=8, epoch=1, skip=2)
    assert [ids(next(resumed)[2]) for _ in range(2)] == [ids(b[2]) for b in batches[6:8]]
