"""Measure where the face detector's box lies on training-style faces: the numbers behind `face.geometry.DETECTOR_CENTRE`
and `DETECTOR_WIDTH`.

    python scripts/measure_face_framing.py ../shared/data/faces128/val-00000.parquet ../shared/data/celebahq_eval256

Each set's faces are upsampled to 256² (the cascade needs faces of a few dozen pixels), searched with
`face.framing.detect_faces` (no hole), and the most confident box is kept. Prints, per set, how many faces were found and
the 10th / 50th / 90th percentiles of the box's centre (x, y) and width as fractions of the frame side.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from hf_faceinpaint.data import load_fixed_set
from hf_faceinpaint.face.framing import detect_faces

SIDE = 256


def measure(faces: torch.Tensor) -> np.ndarray:
    """(N, 3, R, R) faces in [-1, 1] → (found, 3): box centre x, centre y and width as fractions of the side."""
    faces = F.interpolate(faces, size=SIDE, mode="bicubic", align_corners=False).clamp(-1, 1)
    frames = ((faces + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, S, S, 3)
    boxes = []
    for frame in frames:
        found = detect_faces(frame, np.zeros(frame.shape[:2], bool))
        if found:
            left, top, side = found[0]
            boxes.append(((left + side / 2) / SIDE, (top + side / 2) / SIDE, side / SIDE))
    return np.array(boxes).reshape(-1, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="face sets (Parquet file/glob, image folder, ...)")
    parser.add_argument("--count", type=int, default=500, help="faces per set (the first N)")
    args = parser.parse_args()
    print("| set | faces | found | centre x (p10 / p50 / p90) | centre y | width |")
    print("|---|---|---|---|---|---|")
    for spec in args.datasets:
        faces = load_fixed_set(spec, args.count, SIDE)
        boxes = measure(faces)
        cells = [" / ".join(f"{v:.3f}" for v in np.percentile(boxes[:, k], [10, 50, 90])) for k in range(3)]
        print(f"| {spec} | {len(faces)} | {len(boxes)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
