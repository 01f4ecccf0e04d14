"""The aligned face frame: where a face's parts lie on a training-style crop. The one home of every face position.

All positions are fractions of the frame's side, (top, bottom, left, right) for boxes and (x, y) for points, measured
on the faces the models learned from (faces128: CelebA-aligned, LFW, CelebA/Helen crops) and on celebahq_eval256,
which place the eyes at 36-56 % of the height and the mouth at 64-84 %. "Left" is the image's left (the person's
right). The frame is mirror-symmetric about its vertical centre line, `AXIS`.

Readers: `masks` (training and evaluation part boxes, which `evaluate --mask-mode parts` draws), `face.framing` (the
detector's box, the eyes' row and band, the eye pair), `face.symmetry` (the face region) and `face.exemplars` (the eye
window and core). Provenance of each value: docs/face-pipeline.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of the frame, as fractions of its side."""

    top: float
    bottom: float
    left: float
    right: float

    def pixels(self, side: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) in pixels of a frame of `side` pixels (rounded)."""
        return tuple(round(edge * side) for edge in (self.top, self.bottom, self.left, self.right))

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


#: The face's axis: the frame's centre column; and the columns about it between the eyes (the nose bridge: plain skin
#: on a bare face; the bridge and rims of glasses, hair or a hand on others).
AXIS = 0.5
AXIS_BAND = (0.45, 0.55)

#: What a user paints over: the evaluation's part boxes (`evaluate --mask-mode parts`) and the training masks' parts.
PARTS: dict[str, Box] = {
    "eyes": Box(0.36, 0.56, 0.20, 0.80),
    "nose": Box(0.45, 0.68, 0.38, 0.62),
    "mouth": Box(0.64, 0.84, 0.30, 0.70),
    "half-face": Box(0.0, 1.0, 0.0, 0.5),
    "left-eye": Box(0.34, 0.56, 0.16, 0.52),  # with a margin for the brow's end and the eye's corner
    "right-eye": Box(0.34, 0.56, 0.48, 0.84),
}
#: Training masks draw these too (jittered): the lower face and the other half.
TRAINING_PARTS: dict[str, Box] = {
    **PARTS,
    "lower-face": Box(0.58, 1.0, 0.12, 0.88),
    "right-half-face": Box(0.0, 1.0, 0.5, 1.0),
}

#: The row of the eyes' centres (the centre of the eyes' box).
EYES_ROW = (PARTS["eyes"].top + PARTS["eyes"].bottom) / 2
#: The band of rows that holds the eyes and brows, searched for an eye on a half face's known side.
EYE_BAND = (0.25, 0.65)

#: OpenCV's frontal-face cascade box on a training frame: its centre (x, y) and width. Medians measured by
#: scripts/measure_face_framing.py: faces128 val (483 of 500 faces found) centre 0.502 / 0.570, width 0.617;
#: celebahq_eval256 (54 of 54) 0.500 / 0.549, width 0.629. The values sit between the two.
DETECTOR_CENTRE = (0.50, 0.56)
DETECTOR_WIDTH = 0.62
#: The face region: the detector's box (where the mirror is matched and its detail taken).
FACE = Box(DETECTOR_CENTRE[1] - DETECTOR_WIDTH / 2, DETECTOR_CENTRE[1] + DETECTOR_WIDTH / 2,
           DETECTOR_CENTRE[0] - DETECTOR_WIDTH / 2, DETECTOR_CENTRE[0] + DETECTOR_WIDTH / 2)

#: OpenCV's eye cascade on training frames (both eyes found): the midpoint (x, y) of the two eyes' boxes and their
#: distance. Medians: celebahq_eval256 (45 of 54 faces) (0.494, 0.475), 0.248; faces128 val (146 of 200)
#: (0.492, 0.504), 0.243.
EYE_PAIR_MID = (0.49, 0.49)
EYE_PAIR_DISTANCE = 0.245

#: The exemplar bank's eye-pair window (eyes and brows), and its core where the exemplar's detail is taken (the eyes
#: without the brows: the fill's brows are firm already, and an exemplar's brow off the fill's own leaves a halo).
EYE_WINDOW = Box(0.28, 0.60, 0.16, 0.84)
EYE_CORE = Box(0.43, 0.55, 0.18, 0.82)
