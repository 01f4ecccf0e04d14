"""Fit the gappy-PCA face prior (`hf_faceinpaint.face.prior`) on aligned training faces.

    python scripts/fit_face_prior.py "../shared/data/faces128/train-*.parquet" runs/face-prior.safetensors \
        [--size 64] [--components 300]

Every readable face is resized to size² (bicubic), mirrored too, and the leading principal components are found by
randomised SVD (about 50 s for the 18,251 faces128 training faces at 64² on 2 CPU cores). Train the draft's refiner
on it with `train.py --model pca-refiner-128 --prior-weights FILE`; the draft then carries the PCA in its weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from hf_faceinpaint.data import DatasetSpecError, FaceStream, open_dataset
from hf_faceinpaint.face.prior import fit_pca, save_fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="training faces: Parquet file/glob, image folder, .txt list or Hub id")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--size", type=int, default=64, help="side of the PCA grid (default 64)")
    parser.add_argument("--components", type=int, default=300, help="components to keep (default 300)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N faces (0 = all)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        print("error: the output must be a .safetensors file", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        dataset, column = open_dataset(args.dataset)
    except DatasetSpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    faces = []
    for image, _ in FaceStream(dataset, column, args.size):
        faces.append(image)
        if args.limit and len(faces) >= args.limit:
            break
    if len(faces) <= args.components:
        print(f"error: {len(faces)} faces cannot give {args.components} components", file=sys.stderr)
        return 2
    mean, basis, variance = fit_pca(torch.stack(faces), args.components)
    save_fit(args.out, mean, basis, variance, faces=str(len(faces)), size=str(args.size), dataset=args.dataset)
    explained = variance.sum() / (torch.stack(faces).flatten(1).var(dim=0).sum())
    print(f"{len(faces)} faces (+ mirrored) at {args.size}², {args.components} components "
          f"({explained:.1%} of the variance) -> {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
