"""Cut the exemplar bank (`hf_faceinpaint.models.exemplars`): grey eye-pair windows of training faces.

    python scripts/fit_exemplar_bank.py "../shared/data/faces128/train-*.parquet" runs/exemplars.safetensors \
        [--count 256] [--keep 0.5] [--seed 0]

Every readable face is decoded at the bank's side (128²) and its grey window of each part of `PART_WINDOWS` cut.
Only typical windows are kept: those whose normalised correlation with the mean window is in the top --keep share
(this drops the oddest windows: hair or hands over the eyes, closed or turned eyes, badly aligned crops and some of
the glasses, which make poor detail for somebody else's face; of the shipped 256, about 15 still show glasses). --count of those, drawn at random with --seed, are written as uint8 (their mirror
images are used at inference, so a bank of N windows offers 2N). Add the file to a model with
`scripts/export_shipped_model.py CHECKPOINT --exemplars FILE`.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from hf_faceinpaint.data import DatasetSpecError, FaceStream, open_dataset
from hf_faceinpaint.io import save_safetensors_atomic
from hf_faceinpaint.models.exemplars import BANK_SIDE, PART_WINDOWS, cut_windows


def typicality(windows: dict[str, torch.Tensor]) -> torch.Tensor:
    """(M,) the normalised correlation of each face's windows with the mean windows (all parts together)."""
    flat = torch.cat([w.float().flatten(1) for w in windows.values()], dim=1)  # (M, P)
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-6)
    mean = flat.mean(dim=0)
    return flat @ (mean / mean.norm().clamp_min(1e-6))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="training faces: Parquet file/glob, image folder, .txt list or Hub id")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--count", type=int, default=256, help="windows per part (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw of faces (default 0)")
    parser.add_argument("--keep", type=float, default=0.5,
                        help="share of the most typical windows drawn from (default 0.5)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        print("error: the output must be a .safetensors file", file=sys.stderr)
        return 2
    if args.count < 1 or not 0 < args.keep <= 1:
        print(f"error: need --count >= 1 and 0 < --keep <= 1, got {args.count} and {args.keep}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        dataset, column = open_dataset(args.dataset)
    except DatasetSpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    faces = torch.stack([((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
                         for image, _ in FaceStream(dataset, column, BANK_SIDE)])  # (M, 3, 128, 128)
    windows = {part: cut_windows(faces, part) for part in PART_WINDOWS}  # (M, 1, h, w) each
    typical = typicality(windows)  # (M,)
    pool = typical.argsort(descending=True)[: round(args.keep * len(faces))]
    if len(pool) < args.count:
        print(f"error: {len(faces)} readable faces, {len(pool)} of them kept (--keep {args.keep}), cannot give "
              f"{args.count} windows", file=sys.stderr)
        return 2
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))[: args.count]
    chosen = pool[order].sort().values
    bank = {part: window[chosen].contiguous() for part, window in windows.items()}
    metadata = {"faces": str(len(faces)), "seed": str(args.seed), "keep": str(args.keep), "dataset": args.dataset}
    save_safetensors_atomic(bank, args.out, metadata=metadata)
    print(f"{args.count} of {len(faces)} faces ({len(pool)} typical) -> {', '.join(PART_WINDOWS)} windows in "
          f"{args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
