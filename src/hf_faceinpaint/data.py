"""Face image streams for training and validation.

A dataset spec is one of:
  - a Hub dataset id (streamed with `load_dataset(..., streaming=True)`), e.g. a CelebA-HQ mirror with an `image` column;
  - a Parquet file or glob, e.g. `../shared/data/faces128/train-*.parquet`;
  - a local folder of images (searched recursively);
  - a `.txt` file list of image paths, one per line, relative to the list's folder (or absolute).
Images are decoded here rather than by `datasets`, so a corrupt image is skipped and counted instead of ending the run.
"""

from __future__ import annotations

import glob
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .io import frames_to_tensor

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class DatasetSpecError(ValueError):
    """A dataset spec that names nothing usable."""


def _files_generator(files: list[str]) -> Iterator[dict[str, Any]]:
    for path in files:
        yield {"image": {"bytes": None, "path": path}}


def _from_files(files: list[str]):
    from datasets import IterableDataset

    # A list in gen_kwargs makes every file its own shard, so split_dataset_by_node shards by file.
    return IterableDataset.from_generator(_files_generator, gen_kwargs={"files": files})


def list_image_files(folder: str | os.PathLike) -> list[str]:
    """All image files under `folder`, recursively, sorted."""
    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetSpecError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return files


def open_dataset(spec: str, *, image_column: str = "image", split: str = "train"):
    """Open a dataset spec (see the module docstring) as a streaming `datasets.IterableDataset` whose
    `image_column` holds undecoded images ({"bytes": ..., "path": ...}).

    Args:
        spec: Hub id, Parquet file/glob, image folder or `.txt` file list.
        image_column: Column holding the images (Hub and Parquet datasets).
        split: Split to stream from a Hub dataset.
    """
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    if os.path.isdir(spec):
        return _from_files(list_image_files(spec)), "image"
    if spec.endswith(".txt"):
        if not os.path.isfile(spec):
            raise DatasetSpecError(f"file list {spec} does not exist")
        root = Path(spec).parent
        lines = [line.strip() for line in Path(spec).read_text(encoding="utf-8").splitlines() if line.strip()]
        files = [str(root / line) if not os.path.isabs(line) else line for line in lines]
        missing = [f for f in files if not os.path.isfile(f)]
        if not files or missing:
            raise DatasetSpecError(f"file list {spec}: {len(missing)} of {len(files)} listed images are missing, e.g. {missing[:3]}")
        return _from_files(files), "image"
    if spec.endswith(".parquet") or any(ch in spec for ch in "*?["):
        files = sorted(glob.glob(spec))
        if not files:
            raise DatasetSpecError(f"no Parquet files match {spec}")
        dataset = load_dataset("parquet", data_files=files, split="train", streaming=True)
    elif os.path.exists(spec) or spec.startswith((".", "/", "~")):
        raise DatasetSpecError(f"{spec} is neither an image folder, a Parquet file/glob nor a .txt file list")
    else:
        dataset = load_dataset(spec, split=split, streaming=True)
    columns = list(dataset.features or {})
    if dataset.features is not None and image_column not in dataset.features:
        raise DatasetSpecError(f"dataset {spec} has no column {image_column!r}; its columns are {columns}")
    if dataset.features is not None and isinstance(dataset.features[image_column], ImageFeature):
        dataset = dataset.cast_column(image_column, ImageFeature(decode=False))
    return dataset, image_column


def decode_face(value: Any, resolution: int) -> torch.Tensor:
    """Decode one image (bytes/path dict, PIL image or path), centre-crop it to a square and resize it to
    `resolution`². Returns (3, R, R) float in [-1, 1]. Raises ValueError for anything that is not a readable image."""
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, dict):
            image = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
        else:
            image = Image.open(value)
        image = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, KeyError, TypeError, SyntaxError) as err:
        raise ValueError(f"unreadable image: {err}") from err
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.BICUBIC)
    return frames_to_tensor(np.asarray(image)[None])[0].contiguous()  # (3, R, R)


class FaceStream(torch.utils.data.IterableDataset):
    """Decoded faces from a streaming dataset. Each item is `(image, skipped)`: the (3, R, R) image and how many
    unreadable images were skipped just before it, so the trainer can count bad images across DataLoader workers.

    Args:
        dataset: A `datasets.IterableDataset` from `open_dataset` (already shuffled and split by node as needed).
        image_column: Column holding the undecoded images.
        resolution: Output side length.
    """

    def __init__(self, dataset, image_column: str, resolution: int) -> None:
        super().__init__()
        self.dataset, self.image_column, self.resolution = dataset, image_column, resolution

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        skipped = 0
        for row in self.dataset:
            try:
                image = decode_face(row[self.image_column], self.resolution)
            except ValueError:
                skipped += 1
                continue
            yield image, skipped
            skipped = 0


def load_fixed_set(spec: str, count: int, resolution: int, image_column: str = "image", split: str = "train") -> torch.Tensor:
    """The first `count` readable images of a dataset spec, in order (no shuffling): a fixed validation set.
    Returns (N, 3, R, R) in [-1, 1]."""
    dataset, column = open_dataset(spec, image_column=image_column, split=split)
    images = [image for image, _ in _take(FaceStream(dataset, column, resolution), count)]
    if not images:
        raise DatasetSpecError(f"dataset {spec} has no readable images")
    return torch.stack(images)


def _take(iterable, count: int):
    for index, item in enumerate(iterable):
        if index >= count:
            return
        yield item


def ignore_interrupts(*_: object) -> None:
    """In a worker process (DataLoader, mask drawing): ignore Ctrl-C's SIGINT, which reaches every process of the
    terminal; the training process decides when to stop, saves a checkpoint, and ends its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_batches(
    dataset,
    image_column: str,
    resolution: int,
    batch_size: int,
    *,
    rank: int,
    world_size: int,
    seed: int,
    shuffle_buffer: int,
    num_workers: int = 0,
    epoch: int = 0,
    skip: int = 0,
) -> Iterator[tuple[int, int, torch.Tensor, int]]:
    """Endless training batches for one process: `(epoch, batches_done_in_epoch, images, skipped_bad_images)`.

    The stream is sharded with `split_dataset_by_node`, so each process sees a disjoint part, and every pass
    re-shuffles it with `set_epoch(epoch)` (buffer of `shuffle_buffer` rows, same seed on every process). The DataLoader is
    deliberately not passed through `accelerator.prepare`, which would shard a second time. To resume, pass the
    epoch and the number of batches already consumed in it: the pass is replayed and those batches are skipped,
    which reproduces the stream exactly.
    """
    from datasets.distributed import split_dataset_by_node

    while True:
        # Split first, then shuffle: split_dataset_by_node returns a dataset without the shuffling settings, so
        # splitting a shuffled dataset would make set_epoch a no-op and replay the same order every pass.
        # Shuffling uses the same seed on every process, so the shard order agrees and the shards stay disjoint.
        shard = split_dataset_by_node(dataset, rank=rank, world_size=world_size).shuffle(
            seed=seed, buffer_size=shuffle_buffer
        )
        shard.set_epoch(epoch)
        # A private generator: creating the iterator draws a seed from it, not from torch's global RNG, so the
        # training RNG (e.g. WGAN-GP interpolation) does not depend on when the stream starts a pass or resumes.
        loader = torch.utils.data.DataLoader(
            FaceStream(shard, image_column, resolution), batch_size=batch_size, num_workers=num_workers,
            drop_last=True, generator=torch.Generator().manual_seed(seed + epoch), worker_init_fn=ignore_interrupts,
        )
        done = 0
        for images, skipped in loader:
            done += 1
            if done > skip:
                yield epoch, done, images, int(skipped.sum())
        if done == 0:
            raise DatasetSpecError(f"the training stream gives process {rank} fewer than {batch_size} readable images")
        epoch, skip = epoch + 1, 0
