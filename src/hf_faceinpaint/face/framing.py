"""Face framing: find the face a hole lies on, and the square crop that frames it as the training faces are framed.

The models learned faces from faces128 (CelebA-aligned, LFW and CelebA/Helen crops), where the face fills the frame
in one way (`geometry`); the face draft in particular only trusts frames that look like its training faces. A photo
larger than the working frame is therefore not cropped around the hole alone: the face is detected (OpenCV's
frontal-face Haar cascade, on a copy at most `detect_side` pixels on its longer side, its hole first filled by Telea
so a painted-over mouth or eye does not hide the face) and the crop is placed so the detector's box sits where it
sits on the training faces (`geometry.DETECTOR_CENTRE`, `DETECTOR_WIDTH`).

The cascade keys on the eyes: a hole that hides both of them, or one side of the face, hides the face from it,
Telea's fill or not; so does, often, one over the mouth or the lower face. Such a face is found by analysis by
synthesis, which the pipeline runs with its draft (`pipeline.FaceInpaintPipeline.face_frame`): frames are
hypothesised from the hole (`hypotheses`: a hole over both eyes spans about their width; one over half a face about
the face's height, its inner edge on the face's axis) or from the two eyes it leaves (`eye_pair_frames`), each is
completed with a drawn face, and a frame counts once the cascade sees a face in the completed photo whose own frame
agrees with the hypothesis (`confirm`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from . import geometry
from .base import FaceFramer

CASCADE = "haarcascade_frontalface_alt2.xml"
# Hypotheses for a face whose eyes the hole hides: the hole's width as a share of the frame's side, tried in this
# order (a stroke or box over both eyes spans about the eyes' box, 0.6 of it), with the hole's centre on the eyes'
# row. Only a hole at least HIDDEN_EYES_ASPECT times as wide as it is tall is taken for one over both eyes (the
# eyes' box: 3; one eye's: 1.6; half a face: 0.5; the portraits' half-face boxes lost 0.5 dB to frames hypothesised
# from them).
HIDDEN_EYES_WIDTHS = (geometry.PARTS["eyes"].width, 0.8, 0.45)
HIDDEN_EYES_ASPECT = 2.2
# Hypotheses for a face whose one half the hole hides (it hides one eye, and the cascade misses the face): the hole's
# height as a share of the frame's side (the half-face box spans the frame's height; a half face painted from brow
# to chin, about 0.8 of it, is confirmed from the same guess: AGREE_SIDE), with the hole's inner edge on the face's
# axis and its centre on the frame's centre row; the face on the hole's right, then on its left. Only a hole at
# least HALF_FACE_ASPECT times as tall as it is wide is taken for one over half a face (the half-face box: 2).
HALF_FACE_HEIGHTS = (1.0,)
HALF_FACE_ASPECT = 1.5
# A half-face hypothesis is tried only where the frame's known half shows an eye (`shows_an_eye`, OpenCV's eye
# cascade) in the band of rows `geometry.EYE_BAND`: the draft draws a face into any frame and the face cascade may
# then see it, beside a half face as well as on it. The band's half is searched at most EYE_SEARCH_WIDTH pixels wide,
# for eyes at least MIN_EYE_FRACTION of that width.
EYE_CASCADE = "haarcascade_eye.xml"
EYE_SEARCH_WIDTH = 96
MIN_EYE_FRACTION = 0.2
# Hypotheses from the two eyes a hole leaves (`eye_pair_frames`: a hole over the nose, the mouth or the lower face, on
# a face the cascade misses): the eye cascade is run above and beside the hole (its bounding box grown up, left and
# right by EYE_PAIR_REACH times its shorter side), resized so that eyes of EYE_PAIR_MIN_SHARE of that side are
# EYE_PAIR_MIN_EYE pixels wide (the smallest the cascade sees), and at most EYE_PAIR_SEARCH_SIDE pixels on its longer
# side. Two eyes wholly on known pixels pair up when their widths are within EYE_PAIR_SIZE of each other, they lie at
# most EYE_PAIR_TILT of their distance apart vertically, and their distance is EYE_PAIR_SPACING eye widths; the
# frame then has their midpoint at `geometry.EYE_PAIR_MID` and their distance is `geometry.EYE_PAIR_DISTANCE` of its
# side. At most EYE_PAIR_GUESSES pairs, those nearest the hole first, are tried.
EYE_PAIR_REACH = 1.5
EYE_PAIR_MIN_SHARE = 0.25
EYE_PAIR_MIN_EYE = 20
EYE_PAIR_SEARCH_SIDE = 512
EYE_PAIR_SIZE = 1.5
EYE_PAIR_TILT = 0.3
EYE_PAIR_SPACING = (1.2, 2.4)
EYE_PAIR_GUESSES = 3
# A frame the cascade sees in a completed photo confirms a hypothesis whose centre lies within this share of the
# hypothesis's side of its own, and whose side is within this factor of it.
AGREE_CENTRE = 0.15
AGREE_SIDE = 1.3

Frame = tuple[int, int, int]  # (left, top, side) of a square crop in a photo's pixels; it may stick out of the photo

_cascades: dict[str, cv2.CascadeClassifier] = {}


@dataclass
class CascadeFramerConfig:
    """Settings of `CascadeFramer`.

    Args:
        detect_side: Faces are searched on a copy of the photo at most this many pixels on its longer side (the
            cascade's cost grows with the area) ...
        min_face_fraction: ... and must be at least this share of that copy's shorter side.
    """

    detect_side: int = 320
    min_face_fraction: float = 0.08

    def __post_init__(self) -> None:
        if self.detect_side < 32 or not 0 < self.min_face_fraction < 1:
            raise ValueError(f"need detect_side >= 32 and min_face_fraction in (0, 1), got {self.detect_side}, "
                             f"{self.min_face_fraction}")


class CascadeFramer(FaceFramer, config_class=CascadeFramerConfig):
    """OpenCV's Haar cascades, and the hypotheses of the analysis-by-synthesis search."""

    def detect(self, image: np.ndarray, mask: np.ndarray) -> Frame | None:
        """The training-style frame of the face the hole covers most of, among those the cascade sees, or None.

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) bool, True = hole.
        """
        best, best_count = None, 0
        for left, top, side in detect_faces(image, mask, self.config.detect_side, self.config.min_face_fraction):
            count = np.count_nonzero(mask[max(top, 0) : top + side, max(left, 0) : left + side])
            if count > best_count:
                best, best_count = (left, top, side), count
        return None if best is None else face_frame(best)

    def hypotheses(self, image: np.ndarray, mask: np.ndarray) -> Iterator[Frame]:
        """Frames of a face the hole hides from the cascade: from the hole's shape, then (searched only when asked
        for) from the eye pairs it leaves.

        A band-shaped hole (at least `HIDDEN_EYES_ASPECT` times as wide as tall) is taken for one over both eyes and
        gets the hypotheses of `HIDDEN_EYES_WIDTHS`; a tall one (at least `HALF_FACE_ASPECT` times as tall as wide)
        for one over half a face, with those of `HALF_FACE_HEIGHTS` whose known half shows an eye (`shows_an_eye`).
        """
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        width, height = cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]
        centre_x, centre_y = (cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2
        if width >= HIDDEN_EYES_ASPECT * height:  # over both eyes
            for share in HIDDEN_EYES_WIDTHS:
                side = max(1, round(width / share))
                yield round(centre_x - side / 2), round(centre_y - geometry.EYES_ROW * side), side
        elif height >= HALF_FACE_ASPECT * width:  # over half a face: the face's axis at its left or right edge
            for share in HALF_FACE_HEIGHTS:
                side = max(1, round(height / share))
                top = round(centre_y - side / 2)
                band = (top + round(geometry.EYE_BAND[0] * side), top + round(geometry.EYE_BAND[1] * side))
                right, left = int(cols[-1]) + 1, int(cols[0])  # the hole's edges: the face's axis at one of them
                for axis, known in ((right, (right, right + side // 2)), (left, (left - side // 2, left))):
                    if shows_an_eye(image, mask, (*band, *known)):
                        yield axis - side // 2, top, side
        yield from eye_pair_frames(image, mask)

    def confirm(self, image: np.ndarray, mask: np.ndarray, frame: Frame, face: np.ndarray) -> Frame | None:
        """The frame of the most confident face the cascade sees once `frame`'s hole is filled with `face` (the rest
        of the hole by Telea), if it agrees with `frame` (`AGREE_CENTRE`, `AGREE_SIDE`); else None.

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) bool, True = hole.
            frame: (left, top, side) of the hypothesis.
            face: (side, side, 3) uint8, the frame's crop with a face drawn into its hole.
        """
        height, width = mask.shape
        left, top, side = frame
        rows, cols = slice(max(top, 0), min(top + side, height)), slice(max(left, 0), min(left + side, width))
        drawn, rest = image.copy(), mask.copy()
        inside = mask[rows, cols]
        drawn[rows, cols][inside] = face[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left][inside]
        rest[rows, cols] = False
        for box in detect_faces(drawn, rest, self.config.detect_side, self.config.min_face_fraction):
            seen = face_frame(box)
            offset = max(abs(seen[0] + seen[2] / 2 - left - side / 2), abs(seen[1] + seen[2] / 2 - top - side / 2))
            if offset < AGREE_CENTRE * side and 1 / AGREE_SIDE < seen[2] / side < AGREE_SIDE:
                return seen
        return None


def _detector(name: str = CASCADE) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades, loaded once."""
    if name not in _cascades:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load its cascade {name}")
        _cascades[name] = cascade
    return _cascades[name]


def _searchable(image: np.ndarray, mask: np.ndarray, scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """What the cascades search: the photo resized by `scale` (area), its hole filled by Telea, in equalised grey.

    Returns:
        ((h, w) uint8, (w, h)).
    """
    height, width = mask.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = np.ascontiguousarray(image)  # a crop of a photo is a view
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    hole = cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_AREA) if scale < 1 else mask
    hole = (np.asarray(hole) > 0).astype(np.uint8)
    filled = cv2.inpaint(small, hole, 3, cv2.INPAINT_TELEA) if hole.any() else small
    return cv2.equalizeHist(cv2.cvtColor(filled, cv2.COLOR_RGB2GRAY)), size


def detect_faces(image: np.ndarray, mask: np.ndarray, detect_side: int = CascadeFramerConfig.detect_side,
                 min_face_fraction: float = CascadeFramerConfig.min_face_fraction) -> list[Frame]:
    """Frontal faces in a photo whose hole is first filled by Telea.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.
        detect_side: The photo is searched resized to at most this many pixels on its longer side.
        min_face_fraction: Smallest face, as a share of the searched copy's shorter side.

    Returns:
        (left, top, side) of each face's square box in the photo's pixels, most confident first.
    """
    scale = min(1.0, detect_side / max(mask.shape))
    gray, size = _searchable(image, mask, scale)
    least = max(24, round(min_face_fraction * min(size)))
    boxes, _, weights = _detector().detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(least, least), outputRejectLevels=True)
    order = np.argsort(-np.asarray(weights).ravel()) if len(boxes) else []
    return [tuple(round(int(v) / scale) for v in boxes[i][[0, 1, 2]]) for i in order]


def face_frame(face: Frame) -> Frame:
    """The square crop (left, top, side) that frames a detected face box (left, top, side) as on training faces."""
    left, top, side = face
    frame = max(1, round(side / geometry.DETECTOR_WIDTH))
    centre_x, centre_y = left + side / 2, top + side / 2
    return (math.floor(centre_x - geometry.DETECTOR_CENTRE[0] * frame + 0.5),
            math.floor(centre_y - geometry.DETECTOR_CENTRE[1] * frame + 0.5), frame)


def shows_an_eye(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether OpenCV's eye cascade finds an eye wholly on known pixels in `box` (top, bottom, left, right) of the
    photo: the known half of a half face shows one, the hair or background beside it mostly not."""
    top, bottom, left, right = max(box[0], 0), min(box[1], mask.shape[0]), max(box[2], 0), min(box[3], mask.shape[1])
    if bottom - top < 8 or right - left < 8:
        return False
    scale = min(1.0, EYE_SEARCH_WIDTH / (right - left))  # the cascade's cost grows with the area
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    crop = cv2.resize(np.ascontiguousarray(image[top:bottom, left:right]), size, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    least = max(8, round(MIN_EYE_FRACTION * size[0]))
    hole = mask[top:bottom, left:right]
    for x, y, w, h in _detector(EYE_CASCADE).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3,
                                                              minSize=(least, least)):
        rows = slice(int(y / scale), int((y + h) / scale) + 1)
        cols = slice(int(x / scale), int((x + w) / scale) + 1)
        if not hole[rows, cols].any():
            return True
    return False


def eye_pair_frames(image: np.ndarray, mask: np.ndarray) -> list[Frame]:
    """Frames hypothesised from the pairs of eyes a hole leaves (`geometry.EYE_PAIR_MID`, `EYE_PAIR_DISTANCE`).

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole; must contain a hole pixel.

    Returns:
        (left, top, side) in the photo's pixels, each holding part of the hole: at most `EYE_PAIR_GUESSES`, the
        frame whose centre lies nearest the hole's first.
    """
    width = mask.shape[1]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    centre_y, centre_x = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    shorter = min(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    reach = round(EYE_PAIR_REACH * shorter)
    top, bottom = max(int(rows[0]) - reach, 0), int(rows[-1]) + 1  # the eyes lie above the hole or beside it
    left, right = max(int(cols[0]) - reach, 0), min(int(cols[-1]) + 1 + reach, width)
    scale = min(1.0, EYE_PAIR_MIN_EYE / (EYE_PAIR_MIN_SHARE * shorter),
                EYE_PAIR_SEARCH_SIDE / max(bottom - top, right - left))
    gray, _ = _searchable(image[top:bottom, left:right], mask[top:bottom, left:right], scale)
    hole = mask[top:bottom, left:right]
    eyes = []  # (x, y, width) of each eye wholly on known pixels, in the photo's pixels
    for x, y, w, h in _detector(EYE_CASCADE).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3,
                                                              minSize=(EYE_PAIR_MIN_EYE, EYE_PAIR_MIN_EYE)):
        if not hole[int(y / scale) : int((y + h) / scale) + 1, int(x / scale) : int((x + w) / scale) + 1].any():
            eyes.append((left + (x + w / 2) / scale, top + (y + h / 2) / scale, w / scale))
    guesses = []
    mid_x, mid_y = geometry.EYE_PAIR_MID
    for i, first in enumerate(eyes):
        for second in eyes[i + 1 :]:
            (xa, ya, wa), (xb, yb, wb) = first, second
            distance = math.hypot(xb - xa, yb - ya)
            if (max(wa, wb) > EYE_PAIR_SIZE * min(wa, wb) or abs(yb - ya) > EYE_PAIR_TILT * distance
                    or not EYE_PAIR_SPACING[0] <= 2 * distance / (wa + wb) <= EYE_PAIR_SPACING[1]):
                continue
            side = max(1, round(distance / geometry.EYE_PAIR_DISTANCE))
            frame = (round((xa + xb) / 2 - mid_x * side), round((ya + yb) / 2 - mid_y * side), side)
            if mask[max(frame[1], 0) : frame[1] + side, max(frame[0], 0) : frame[0] + side].any():
                offset = math.hypot(frame[0] + side / 2 - centre_x, frame[1] + side / 2 - centre_y) / side
                guesses.append((offset, frame))
    return [frame for _, frame in sorted(guesses)[:EYE_PAIR_GUESSES]]
