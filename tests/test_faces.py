"""Face framing: the cascade finds the bundled portrait's face (also with its mouth painted over), the frame puts the
face where training faces have it, a hole off the face gets no frame, and a face whose eyes or one half the hole
hides is found by completing it (analysis by synthesis), but not made up."""

from __future__ import annotations

import numpy as np
import pytest

from hf_faceinpaint.faces import (
    FACE_CENTRE,
    FACE_WIDTH,
    HIDDEN_EYES_WIDTHS,
    detect_faces,
    face_frame,
    hidden_face_frame,
    hole_face_frame,
    shows_an_eye,
)
from hf_faceinpaint.images import example_image_path, example_mask_path, image_array, load_image, load_mask

# The astronaut's face in the bundled 512² portrait, measured by eye: forehead to chin rows 60-170, cols 175-275.
FACE_ROWS, FACE_COLS = (60, 170), (175, 275)


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, np.ndarray]:
    image = image_array(load_image(example_image_path()))
    return image, load_mask(example_mask_path(), (image.shape[1], image.shape[0]))


def _centre_on_face(box: tuple[int, int, int]) -> bool:
    left, top, side = box
    return FACE_ROWS[0] < top + side / 2 < FACE_ROWS[1] and FACE_COLS[0] < left + side / 2 < FACE_COLS[1]


@pytest.mark.parametrize("painted", [False, True])
def test_the_portraits_face_is_found_with_and_without_its_mouth(portrait, painted: bool) -> None:
    image, mask = portrait
    faces = detect_faces(image, mask if painted else np.zeros_like(mask))
    assert len(faces) >= 1 and _centre_on_face(faces[0])
    assert 70 <= faces[0][2] <= 130  # about the face's width


def test_noise_has_no_face() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    assert detect_faces(noise, np.zeros((400, 600), bool)) == []


def test_a_large_photo_is_searched_at_the_detection_size(portrait) -> None:
    image, mask = portrait
    big = np.repeat(np.repeat(image, 3, axis=0), 3, axis=1)  # 1536², the face three times larger
    (left, top, side), *_ = detect_faces(big, np.repeat(np.repeat(mask, 3, axis=0), 3, axis=1))
    assert _centre_on_face((left // 3, top // 3, side // 3))


def test_face_frame_puts_the_box_where_training_faces_have_it() -> None:
    frame = 300
    side = round(FACE_WIDTH * frame)
    box = (round(40 + FACE_CENTRE[0] * frame - side / 2), round(-10 + FACE_CENTRE[1] * frame - side / 2), side)
    left, top, got = face_frame(box)
    assert got == pytest.approx(frame, abs=1) and left == pytest.approx(40, abs=1) and top == pytest.approx(-10, abs=1)


def test_a_hole_on_the_face_gets_its_frame_and_a_hole_off_it_none(portrait) -> None:
    image, mask = portrait
    left, top, side = hole_face_frame(image, mask)
    assert _centre_on_face((left, top, side)) and 120 <= side <= 210
    assert mask[top : top + side, left : left + side].any()
    off_face = np.zeros_like(mask)
    off_face[420:480, 20:80] = True  # the suit's sleeve
    assert hole_face_frame(image, off_face) is None


def test_a_face_whose_eyes_or_half_the_hole_hides_is_found_by_completing_it(eyes_painted_over) -> None:
    image, mask = eyes_painted_over
    assert detect_faces(image, mask) == [] and hole_face_frame(image, mask) is None
    calls = []

    def the_photo(photo: np.ndarray, hole: np.ndarray, frame: tuple[int, int, int]) -> np.ndarray:
        """A perfect face drawer: the frame's crop of the unpainted photo (edge-padded where it sticks out)."""
        calls.append(frame)
        left, top, side = frame
        padded = np.pad(image, ((side, side), (side, side), (0, 0)), mode="edge")
        return padded[top + side : top + 2 * side, left + side : left + 2 * side]

    found = hole_face_frame(image, mask, the_photo)
    (truth,) = [face_frame(box) for box in detect_faces(image, np.zeros_like(mask))[:1]]
    assert found is not None and _centre_on_face(found)
    assert abs(found[2] - truth[2]) <= 0.1 * truth[2]
    cols = np.flatnonzero(mask.any(axis=0))
    assert calls[0][2] == round((cols[-1] + 1 - cols[0]) / HIDDEN_EYES_WIDTHS[0])  # the first hypothesis's side
    assert len(calls) == 2  # the first hypothesis is confirmed, then the frame the cascade saw
    # a tall hole down the left half of the face (hiding her right eye) is taken for half a face: its inner edge on
    # the face's axis
    half = np.zeros_like(mask)
    half[40:200, 150:225] = True
    found = hidden_face_frame(image, half, the_photo)
    assert found is not None and _centre_on_face(found) and abs(found[2] - truth[2]) <= 0.25 * truth[2]
    assert calls[2] == (225 - 80, 40, 160)  # the first half-face hypothesis: side = the hole's height
    # a hole that is neither a band nor tall (a blob) is taken for neither
    calls.clear()
    blob = np.zeros_like(mask)
    blob[60:160, 170:270] = True
    assert hidden_face_frame(image, blob, the_photo) is None and not calls


def test_an_eye_is_seen_on_the_known_half_of_a_face_only(portrait) -> None:
    image, _ = portrait
    nothing = np.zeros(image.shape[:2], bool)
    assert shows_an_eye(image, nothing, (80, 140, 225, 300))  # her left eye (on the image's right)
    assert not shows_an_eye(image, nothing, (80, 140, 330, 405))  # hair and background beside her face
    painted = nothing.copy()
    painted[80:140, 225:300] = True
    assert not shows_an_eye(image, painted, (80, 140, 225, 300))  # an eye under the hole does not count


def test_no_face_is_made_up_when_the_drawn_face_is_none(eyes_painted_over) -> None:
    image, mask = eyes_painted_over
    white = lambda photo, hole, frame: np.full((frame[2], frame[2], 3), 255, np.uint8)  # noqa: E731 (no eyes)
    assert hidden_face_frame(image, mask, white) is None
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    hole = np.zeros((400, 600), bool)
    hole[150:200, 200:400] = True
    assert hole_face_frame(noise, hole, white) is None
    tall = np.zeros((400, 600), bool)
    tall[50:350, 250:350] = True  # shaped like half a face
    assert hole_face_frame(noise, tall, white) is None
