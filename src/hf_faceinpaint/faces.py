"""Face framing: find the face a hole lies on, and the square crop that frames it as the training faces are framed.

The models learned faces from faces128 (CelebA-aligned, LFW and CelebA/Helen crops), where the face fills the frame
in one way; the face prior's fit in particular only trusts frames that look like its training faces. A photo
larger than the working frame (a portrait, a CelebA-HQ 1024² face) is therefore not cropped around the hole alone:
the face is detected (OpenCV's frontal-face Haar cascade, on a copy at most `DETECT_SIDE` pixels on its longer side,
its hole first filled by Telea so a painted-over mouth or eye does not hide the face) and the crop is placed so
the detector's box sits where it sits on the training faces.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Where the frontal-face cascade's box lies on a training face, as fractions of the frame side: its centre and its
# width. Medians measured by scripts/measure_face_framing.py: faces128 val (483 of 500 faces found) centre 0.502 /
# 0.570, width 0.617; celebahq_eval256 (54 of 54) 0.500 / 0.549, width 0.629. The values sit between the two.
FACE_CENTRE = (0.50, 0.56)
FACE_WIDTH = 0.62
# Faces are searched on a copy of the photo at most this many pixels on its longer side (the cascade's cost grows
# with the area), and must be at least MIN_FACE_FRACTION of that copy's shorter side.
DETECT_SIDE = 320
MIN_FACE_FRACTION = 0.08
CASCADE = "haarcascade_frontalface_alt2.xml"

_cascade: cv2.CascadeClassifier | None = None


def _detector() -> cv2.CascadeClassifier:
    global _cascade
    if _cascade is None:
        _cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if _cascade.empty():
            raise RuntimeError(f"OpenCV could not load its face cascade {CASCADE}")
    return _cascade


def detect_faces(image: np.ndarray, mask: np.ndarray) -> list[tuple[int, int, int]]:
    """Frontal faces in a photo whose hole is first filled by Telea.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.

    Returns:
        (left, top, side) of each face's square box in the photo's pixels, most confident first.
    """
    height, width = mask.shape
    scale = min(1.0, DETECT_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    hole = cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_AREA) if scale < 1 else mask
    hole = (np.asarray(hole) > 0).astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(small), hole, 3, cv2.INPAINT_TELEA) if hole.any() else small
    gray = cv2.equalizeHist(cv2.cvtColor(filled, cv2.COLOR_RGB2GRAY))
    least = max(24, round(MIN_FACE_FRACTION * min(size)))
    boxes, _, weights = _detector().detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(least, least), outputRejectLevels=True)
    order = np.argsort(-np.asarray(weights).ravel()) if len(boxes) else []
    return [tuple(round(int(v) / scale) for v in boxes[i][[0, 1, 2]]) for i in order]


def face_frame(face: tuple[int, int, int]) -> tuple[int, int, int]:
    """The square crop (left, top, side) that frames a detected face box (left, top, side) as on training faces."""
    left, top, side = face
    frame = max(1, round(side / FACE_WIDTH))
    centre_x, centre_y = left + side / 2, top + side / 2
    return (math.floor(centre_x - FACE_CENTRE[0] * frame + 0.5), math.floor(centre_y - FACE_CENTRE[1] * frame + 0.5),
            frame)


def hole_face_frame(image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int] | None:
    """The training-style frame of the face the hole covers most of, or None when the hole touches no face.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.

    Returns:
        (left, top, side) in the photo's pixels (may stick out of the photo), or None.
    """
    best, best_count = None, 0
    for left, top, side in detect_faces(image, mask):
        count = np.count_nonzero(mask[max(top, 0) : top + side, max(left, 0) : left + side])
        if count > best_count:
            best, best_count = (left, top, side), count
    return None if best is None else face_frame(best)
