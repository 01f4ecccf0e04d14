"""What face framing buys on portraits: face-part holes on faces that fill only part of a larger photo.

    python scripts/eval_portraits.py ../shared/data/celebahq_eval256 --methods msl-face,telea

Each aligned face (resized to --face px) is placed at a random position in a --canvas px square photo whose
background is a heavily blurred mirror image of the face (colours of a portrait's surroundings, no second face).
The face-part boxes of `evaluate --mask-mode parts` (`masks.FACE_PARTS`) are drawn on the face, every face with every
part; the photo goes through the default inference path (`pipeline.inpaint_arrays`), and PSNR / SSIM are measured on
the face's square, as `evaluate` measures them on the aligned frame. A neural method is run twice: with face
framing (the default) and without (`face_framing=False`: a crop around the hole). Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from hf_faceinpaint.evaluation.dataset import load_eval_images
from hf_faceinpaint.masks import FACE_PARTS, part_mask
from hf_faceinpaint.metrics import psnr, ssim
from hf_faceinpaint.models.classic import ClassicInpainter
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.pipeline import inpaint_arrays

BLUR_SIGMA = 24.0  # of the background, in pixels


def portrait(face: np.ndarray, canvas: int, top: int, left: int) -> np.ndarray:
    """(canvas, canvas, 3) uint8: `face` at (top, left) on a blurred mirror image of itself."""
    side = face.shape[0]
    pad = ((top, canvas - side - top), (left, canvas - side - left), (0, 0))
    photo = cv2.GaussianBlur(np.pad(face, pad, mode="symmetric"), (0, 0), BLUR_SIGMA)
    photo[top : top + side, left : left + side] = face
    return photo


def scores(out: np.ndarray, face: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of a (S, S, 3) uint8 result against the real face."""
    pred, target = (torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255 for a in (out, face))
    return float(psnr(pred, target)), float(ssim(pred, target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="aligned faces (folder or Parquet), as for `evaluate --images`")
    parser.add_argument("--methods", default="msl-face,telea", help="comma-separated, as for `evaluate`")
    parser.add_argument("--face", type=int, default=288, help="side of the face in the photo, pixels")
    parser.add_argument("--canvas", type=int, default=768, help="side of the photo, pixels")
    parser.add_argument("--limit", type=int, help="only the first N faces")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.face <= args.canvas:
        parser.error("need 0 < --face <= --canvas")
    faces = load_eval_images(args.images, args.face, args.limit).pixels  # (N, F, F, 3)
    rng = np.random.default_rng(args.seed)
    places = rng.integers(0, args.canvas - args.face + 1, (len(faces), 2))
    runs = []
    for name in args.methods.split(","):
        model = load_model(name)
        runs += [(name, model, True)] + ([] if isinstance(model, ClassicInpainter) else [(name, model, False)])
    print(f"{len(faces)} faces of {args.face} px in {args.canvas}² photos; PSNR / SSIM on the face's square\n")
    print("| method | framing | " + " | ".join(FACE_PARTS) + " |")
    print("|---|---|" + "---|" * len(FACE_PARTS))
    for name, model, framing in runs:
        cells = []
        for part in FACE_PARTS:
            results = []
            for face, (top, left) in zip(faces, places):
                photo = portrait(face, args.canvas, top, left)
                mask = np.zeros(photo.shape[:2], bool)
                mask[top : top + args.face, left : left + args.face] = part_mask(args.face, part)
                out = inpaint_arrays(model, [photo], [mask], face_framing=framing)[0]
                results.append(scores(out[top : top + args.face, left : left + args.face], face))
            mean = np.mean(results, axis=0)
            cells.append(f"{mean[0]:.2f} / {mean[1]:.3f}")
        label = "yes" if framing and not isinstance(model, ClassicInpainter) else "no"
        print(f"| {name} | {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
