"""Pack what a GPU training window needs into one folder that travels with the repository (at most 64 MiB in all).

    python scripts/pack_device_data.py .devicepack [--faces ../shared/data/faces128] [--quality 82] [--limit N]

Writes, through a temporary folder renamed into place:
  - `train-000NN-of-000MM.parquet`: every faces128 training face re-encoded as WebP (`--quality`), in `--shards`
    shards (so DataLoader workers and processes each get whole files), columns `image` {bytes, path}, `source`, `id`;
  - `val-00000.parquet`: the validation faces, the same way;
  - `vgg16-pool3.safetensors`: the first seven convs of the VGG16 stand-in (all that the pool1-pool3 perceptual and
    style losses use), float16.
It prints the count, the size and the PSNR of the re-encoded faces against the originals. The faces stay under
`--max-mib` (48); the trainer reads the Parquet files offline like any other dataset spec.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from hf_faceinpaint.io import atomic_path, read_state_dict, save_safetensors_atomic

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VGG_POOL3_CONVS = 15  # features.0 .. features.14: conv1_1 .. conv3_3


def reencode(rows: list[dict], quality: int) -> tuple[list[dict], list[float]]:
    """The rows with their images as WebP at `quality`, and each image's PSNR against its decoded original."""
    out, psnrs = [], []
    for row in rows:
        original = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
        buffer = io.BytesIO()
        Image.fromarray(original).save(buffer, format="WEBP", quality=quality, method=6)
        packed = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        mse = np.mean((packed.astype(np.float64) - original) ** 2)
        psnrs.append(10 * np.log10(255.0**2 / max(mse, 1e-10)))
        out.append({**row, "image": {"bytes": buffer.getvalue(), "path": None}})
    return out, psnrs


def read_rows(pattern: str, limit: int) -> list[dict]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no Parquet files match {pattern}")
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    return rows[:limit] if limit else rows


def write_shards(rows: list[dict], folder: Path, prefix: str, shards: int) -> None:
    for index, part in enumerate(np.array_split(np.arange(len(rows)), shards)):
        name = f"{prefix}-{index:05d}-of-{shards:05d}.parquet" if shards > 1 else f"{prefix}-00000.parquet"
        pq.write_table(pa.Table.from_pylist([rows[i] for i in part]), folder / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the pack folder to write (e.g. .devicepack, ignored by git)")
    parser.add_argument("--faces", default=str(SHARED / "data" / "faces128"), help="the faces128 folder")
    parser.add_argument("--vgg-weights", default=str(SHARED / "weights" / "vgg16_hed" / "vgg16_features.safetensors"))
    parser.add_argument("--quality", type=int, default=82, help="WebP quality (default 82)")
    parser.add_argument("--shards", type=int, default=16, help="training shards (default 16)")
    parser.add_argument("--max-mib", type=float, default=48.0, help="refuse a pack of faces larger than this")
    parser.add_argument("--limit", type=int, default=0, help="pack only the first N training faces (dry runs)")
    args = parser.parse_args(argv)
    try:
        train = read_rows(os.path.join(args.faces, "train-*.parquet"), args.limit)
        val = read_rows(os.path.join(args.faces, "val-*.parquet"), args.limit)
        vgg = read_state_dict(args.vgg_weights, "VGG16 weights")
    except (FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        with atomic_path(out) as tmp:
            tmp.mkdir()
            train, train_psnr = reencode(train, args.quality)
            val, val_psnr = reencode(val, args.quality)
            write_shards(train, tmp, "train", min(args.shards, len(train)))
            write_shards(val, tmp, "val", 1)
            faces_mib = sum(f.stat().st_size for f in tmp.glob("*.parquet")) / 2**20
            if faces_mib > args.max_mib:
                raise ValueError(f"the faces take {faces_mib:.1f} MiB, over --max-mib {args.max_mib}: lower --quality")
            convs = {k: v.half() for k, v in vgg.items() if k.startswith("features.") and int(k.split(".")[1]) < VGG_POOL3_CONVS}
            save_safetensors_atomic(convs, tmp / "vgg16-pool3.safetensors")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"{len(train)} training + {len(val)} validation faces, WebP q{args.quality}: {faces_mib:.1f} MiB "
          f"(PSNR against the originals: mean {np.mean(train_psnr + val_psnr):.2f} dB, lowest "
          f"{np.min(train_psnr + val_psnr):.2f} dB); with the VGG16 pool3 stack {total:.1f} MiB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
