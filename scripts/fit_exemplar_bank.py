"""Cut the exemplar bank (`hf_faceinpaint.face.exemplars`): grey eye-pair windows of training faces.

    python scripts/fit_exemplar_bank.py "../shared/data/faces128/train-*.parquet" runs/exemplars.safetensors \
        [--count 256] [--keep 0.5] [--max-axis 0.8] [--seed 0]

Every readable face is decoded at the bank's side (128²) and its grey window of each part of `WINDOWS` cut.
Only typical, plain windows are kept:
- typical: their normalised correlation with the mean window is in the top --keep share (this drops the oddest
  windows: hair or hands over the eyes, closed or turned eyes, badly aligned crops and some of the glasses);
- plain: their detail on the face's axis, between the eyes, is at most --max-axis of their eyes' detail
  (`axis_share`: 0.73 for the median face of faces128 train; the bridge and rims of glasses, hair or a turned face
  raise it; 0.8 is
  about the 60th percentile of faces128 train). With it, about 6 of the shipped 256 windows show glasses, against
  about 15 without.
Windows with glasses make poor detail for somebody else's face: eq. 6 draws their rims. --count of the kept windows,
drawn at random with --seed, are written as uint8 (their mirror images are used at inference, so a bank of N
windows offers 2N). Add the file to a model with `scripts/export_shipped_model.py msl-face --exemplars FILE`.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from hf_faceinpaint.data import DatasetSpecError, FaceStream, open_dataset
from hf_faceinpaint.io import save_safetensors_atomic
from hf_faceinpaint.face import geometry
from hf_faceinpaint.face.exemplars import BANK_SIDE, CORES, WINDOWS, cut_windows, window_box



def typicality(windows: dict[str, torch.Tensor]) -> torch.Tensor:
    """(M,) the normalised correlation of each face's windows with the mean windows (all parts together)."""
    flat = torch.cat([w.float().flatten(1) for w in windows.values()], dim=1)  # (M, P)
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-6)
    mean = flat.mean(dim=0)
    return flat @ (mean / mean.norm().clamp_min(1e-6))


def detail(windows: torch.Tensor) -> torch.Tensor:
    """(M, 1, h, w) |x − its 3×3 mean|: the detail of grey windows (M, 1, h, w)."""
    x = windows.float()
    return (x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)).abs()


def core_slices(part: str) -> tuple[slice, slice]:
    """The rows and columns of `part`'s core (`CORES`) in its bank windows."""
    top, _, left, _ = window_box(part, BANK_SIDE)
    core_top, core_bottom, core_left, core_right = CORES[part].pixels(BANK_SIDE)
    return slice(core_top - top, core_bottom - top), slice(core_left - left, core_right - left)


def axis_share(windows: torch.Tensor, part: str) -> torch.Tensor:
    """(M,) the mean detail on the face's axis (`geometry.AXIS_BAND`) over the mean detail of the core, in the core's
    rows: 0.73 for the median face of faces128 train, above 1 for most windows with glasses."""
    rows, cols = core_slices(part)
    _, _, left, _ = window_box(part, BANK_SIDE)
    axis = slice(round(geometry.AXIS_BAND[0] * BANK_SIDE) - left, round(geometry.AXIS_BAND[1] * BANK_SIDE) - left)
    edges = detail(windows)[:, 0, rows]  # (M, r, w)
    return edges[:, :, axis].mean(dim=(1, 2)) / edges[:, :, cols].mean(dim=(1, 2)).clamp_min(1e-6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="training faces: Parquet file/glob, image folder, .txt list or Hub id")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--count", type=int, default=256, help="windows per part (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw of faces (default 0)")
    parser.add_argument("--keep", type=float, default=0.5,
                        help="share of the most typical windows drawn from (default 0.5)")
    parser.add_argument("--max-axis", type=float, default=0.8,
                        help="largest detail share on the face's axis, `axis_share` (default 0.8; inf = no limit)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        print("error: the output must be a .safetensors file", file=sys.stderr)
        return 2
    if args.count < 1 or not 0 < args.keep <= 1 or not args.max_axis > 0:
        print(f"error: need --count >= 1, 0 < --keep <= 1 and --max-axis > 0, got {args.count}, {args.keep} and "
              f"{args.max_axis}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        dataset, column = open_dataset(args.dataset)
    except DatasetSpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    faces = torch.stack([((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
                         for image, _ in FaceStream(dataset, column, BANK_SIDE)])  # (M, 3, 128, 128)
    windows = {part: cut_windows(faces, part) for part in WINDOWS}  # (M, 1, h, w) each
    typical = typicality(windows)  # (M,)
    pool = typical.argsort(descending=True)[: round(args.keep * len(faces))]
    plain = torch.stack([axis_share(window, part) for part, window in windows.items()]).amax(dim=0)  # (M,)
    pool = pool[plain[pool] <= args.max_axis]
    if len(pool) < args.count:
        print(f"error: {len(faces)} readable faces, {len(pool)} of them kept (--keep {args.keep}, --max-axis "
              f"{args.max_axis}), cannot give {args.count} windows", file=sys.stderr)
        return 2
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))[: args.count]
    chosen = pool[order].sort().values
    bank = {part: window[chosen].contiguous() for part, window in windows.items()}
    metadata = {"faces": str(len(faces)), "seed": str(args.seed), "keep": str(args.keep),
                "max_axis": str(args.max_axis), "dataset": args.dataset}
    save_safetensors_atomic(bank, args.out, metadata=metadata)
    print(f"{args.count} of {len(faces)} faces ({len(pool)} typical) -> {', '.join(WINDOWS)} windows in "
          f"{args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
