"""Side-by-side face-part fills of several models, to judge a candidate by eye before its numbers.

    python scripts/compare_part_boxes.py ../shared/data/faces128/val-00000.parquet msl-face runs/msl-face-new \
        --out runs/compare.png

The first --count aligned faces at --resolution (as `evaluate` reads them) get each part of --parts masked by its
evaluation box (`masks.FACE_PARTS`) grown --grow times about its centre, and are completed through the default
inference path (`pipeline.inpaint_arrays`). Each row is one face and part: the real face, then each method's
result, cropped to the hole plus a margin; the grid is enlarged --zoom times and written as a PNG (atomically).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from hf_faceinpaint.cli import USER_ERRORS, error_message
from hf_faceinpaint.evaluation.dataset import load_eval_images
from hf_faceinpaint.io import atomic_path
from hf_faceinpaint.masks import FACE_PARTS
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.pipeline import inpaint_arrays

GAP = 4  # black pixels between rows


def part_window(part: str, side: int, grow: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixels of `part`'s box grown `grow` times about its centre, inside the frame."""
    top, bottom, left, right = FACE_PARTS[part]
    cy, cx = (top + bottom) / 2, (left + right) / 2
    half_h, half_w = (bottom - top) * grow / 2, (right - left) * grow / 2
    edges = (cy - half_h, cy + half_h, cx - half_w, cx + half_w)
    return tuple(round(min(max(edge, 0.0), 1.0) * side) for edge in edges)


def comparison_grid(faces: np.ndarray, results: dict[str, list[list[np.ndarray]]], parts: list[str],
                    grow: float, margin: int) -> np.ndarray:
    """(H, W, 3) uint8 rows of [real face | each method's result] crops, one row per part and face.

    `results[part][m][i]` is method m's (S, S, 3) result on face i with that part masked."""
    side = faces.shape[1]
    rows = []
    for part in parts:
        top, bottom, left, right = part_window(part, side, grow)
        top, left, bottom, right = max(top - margin, 0), max(left - margin, 0), bottom + margin, right + margin
        for i, face in enumerate(faces):
            tiles = [face] + [outs[i] for outs in results[part]]
            rows.append(np.concatenate([tile[top:bottom, left:right] for tile in tiles], axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, GAP), (0, width - row.shape[1]), (0, 0))) for row in rows]
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="aligned faces (folder or Parquet), as for `evaluate --images`")
    parser.add_argument("methods", nargs="+", help="telea, ns, a save_pretrained folder or a Hub repo id")
    parser.add_argument("--out", required=True, help="output .png")
    parser.add_argument("--parts", default="eyes,mouth", help=f"comma-separated, of {', '.join(FACE_PARTS)}")
    parser.add_argument("--count", type=int, default=8, help="faces (default 8)")
    parser.add_argument("--resolution", type=int, default=256, help="side of the faces in pixels (default 256)")
    parser.add_argument("--grow", type=float, default=1.25, help="hole = the evaluation box grown this many times")
    parser.add_argument("--margin", type=int, default=12, help="known pixels shown around the hole (default 12)")
    parser.add_argument("--zoom", type=float, default=1.5, help="enlargement of the written grid (default 1.5)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = [part for part in parts if part not in FACE_PARTS]
    if unknown:
        parser.error(f"unknown --parts {', '.join(unknown)}; choose from {', '.join(FACE_PARTS)}")
    if not str(args.out).lower().endswith(".png"):
        parser.error(f"--out must be a .png file, got {args.out}")
    if args.grow <= 0 or args.zoom <= 0 or args.margin < 0:
        parser.error("need --grow > 0, --zoom > 0 and --margin >= 0")
    try:  # a missing folder, an unreadable image or model: one error line, as the CLI gives it
        faces = load_eval_images(args.images, args.resolution, args.count).pixels  # (N, S, S, 3)
        models = [load_model(name) for name in args.methods]
    except USER_ERRORS as err:
        parser.error(error_message(err))
    results = {}
    for part in parts:
        top, bottom, left, right = part_window(part, args.resolution, args.grow)
        mask = np.zeros((args.resolution, args.resolution), bool)
        mask[top:bottom, left:right] = True
        results[part] = [inpaint_arrays(model, list(faces), [mask] * len(faces)) for model in models]
    grid = comparison_grid(faces, results, parts, args.grow, args.margin)
    size = (round(grid.shape[1] * args.zoom), round(grid.shape[0] * args.zoom))
    with atomic_path(args.out) as tmp:
        Image.fromarray(grid).resize(size, Image.LANCZOS).save(tmp, format="PNG")
    print(f"wrote {args.out}: {len(faces)} faces x {', '.join(parts)}; columns: truth | {' | '.join(args.methods)}")


if __name__ == "__main__":
    main()
