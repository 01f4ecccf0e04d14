"""Face framing (`face/framing.py`, and the search `pipeline.FaceInpaintPipeline.face_frame` runs with it): the cascade
finds the bundled portrait's face (also with its mouth painted over), the frame puts the face where training faces
have it, a hole off the face gets no frame, and a face whose eyes or one half the hole hides, or whose face the
cascade misses with both eyes left, is found by completing it (analysis by synthesis), but not made up."""

from __future__ import annotations

import numpy as np
import pytest

from hf_faceinpaint.face import geometry
from hf_faceinpaint.face.framing import (
    AGREE_CENTRE,
    AGREE_SIDE,
    HIDDEN_EYES_WIDTHS,
    CascadeFramer,
    detect_faces,
    eye_pair_frames,
    face_frame,
    shows_an_eye,
)
from hf_faceinpaint.images import example_image_path, example_mask_path, image_array, load_image, load_mask
from hf_faceinpaint.models import MSLConfig, MSLInpainter
from hf_faceinpaint.pipeline import FaceInpaintPipeline

# The astronaut's face in the bundled 512² portrait, measured by eye: forehead to chin rows 60-170, cols 175-275.
FACE_ROWS, FACE_COLS = (60, 170), (175, 275)


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, np.ndarray]:
    image = image_array(load_image(example_image_path()))
    return image, load_mask(example_mask_path(), (image.shape[1], image.shape[0]))


def _centre_on_face(box: tuple[int, int, int]) -> bool:
    left, top, side = box
    return FACE_ROWS[0] < top + side / 2 < FACE_ROWS[1] and FACE_COLS[0] < left + side / 2 < FACE_COLS[1]


def _perfect_drawer(image: np.ndarray, calls: list):
    """A face drawer that draws the real face: the frame's crop of the unpainted `image` (edge-padded where it
    sticks out), noting each frame it is asked for in `calls`."""

    def the_photo(photo: np.ndarray, hole: np.ndarray, frame: tuple[int, int, int], keep=None) -> np.ndarray:
        calls.append(frame)
        left, top, side = frame
        padded = np.pad(image, ((side, side), (side, side), (0, 0)), mode="edge")
        return padded[top + side : top + 2 * side, left + side : left + 2 * side]

    return the_photo


def _searcher(drawer) -> FaceInpaintPipeline:
    """A pipeline whose search draws faces with `drawer` instead of a draft (the search alone is under test)."""
    pipeline = FaceInpaintPipeline(MSLInpainter(MSLConfig(resolution=32, widths=(8, 16))), CascadeFramer())
    pipeline.draft = object()  # a draft is there: the search runs
    pipeline.drawn = drawer
    return pipeline


def hole_face_frame(image: np.ndarray, mask: np.ndarray, drawer=None):
    """The frame the pipeline finds: the cascade's, else (with `drawer`) the search's."""
    return CascadeFramer().detect(image, mask) if drawer is None else _searcher(drawer).face_frame(image, mask)


def hidden_face_frame(image: np.ndarray, mask: np.ndarray, drawer):
    """The search's frame alone (the cascade's detection skipped)."""
    pipeline = _searcher(drawer)
    pipeline.framer.detect = lambda image, mask: None
    return pipeline.face_frame(image, mask)


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
    side = round(geometry.DETECTOR_WIDTH * frame)
    box = (round(40 + geometry.DETECTOR_CENTRE[0] * frame - side / 2),
           round(-10 + geometry.DETECTOR_CENTRE[1] * frame - side / 2), side)
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
    the_photo = _perfect_drawer(image, calls)
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
    # a hole that is neither a band nor tall (a blob) is taken for neither, and over both eyes leaves no eye pair
    calls.clear()
    blob = np.zeros_like(mask)
    blob[60:160, 170:270] = True
    assert eye_pair_frames(image, blob) == []
    assert hidden_face_frame(image, blob, the_photo) is None and not calls


def test_a_face_the_cascade_misses_is_framed_from_the_two_eyes_the_hole_leaves(portrait) -> None:
    image, _ = portrait
    nothing = np.zeros(image.shape[:2], bool)
    (truth,) = [face_frame(box) for box in detect_faces(image, nothing)[:1]]
    mouth = nothing.copy()
    mouth[125:165, 195:260] = True  # her mouth and chin: neither a band nor tall, both eyes left
    guesses = eye_pair_frames(image, mouth)
    assert guesses, "no eye pair found above the painted-over mouth"
    left, top, side = guesses[0]
    offset = max(abs(left + side / 2 - truth[0] - truth[2] / 2), abs(top + side / 2 - truth[1] - truth[2] / 2))
    assert offset < AGREE_CENTRE * truth[2] and 1 / AGREE_SIDE < side / truth[2] < AGREE_SIDE
    # the cascade finds her with this hole; hidden_face_frame is what runs where it does not
    calls = []
    found = hidden_face_frame(image, mouth, _perfect_drawer(image, calls))
    assert found is not None and _centre_on_face(found) and abs(found[2] - truth[2]) <= 0.1 * truth[2]
    assert calls[0] == guesses[0]  # the shape gives no hypothesis: the eye pair's is the first


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
    white = lambda photo, hole, frame, keep=None: np.full((frame[2], frame[2], 3), 255, np.uint8)  # noqa: E731
    assert hidden_face_frame(image, mask, white) is None
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    hole = np.zeros((400, 600), bool)
    hole[150:200, 200:400] = True
    assert hole_face_frame(noise, hole, white) is None
    tall = np.zeros((400, 600), bool)
    tall[50:350, 250:350] = True  # shaped like half a face
    assert hole_face_frame(noise, tall, white) is None


@pytest.mark.shared
def test_real_faces_hidden_by_a_painted_over_mouth_are_framed_from_their_eyes(shared_dir) -> None:
    """CelebA-HQ faces at 288 px on a grey 640² photo with the mouth box painted over: where the cascade then misses
    the face (11 of the 54), the eye pairs frame at least half of them, each where the unpainted face's frame is."""
    from hf_faceinpaint.evaluation.dataset import load_eval_images
    from hf_faceinpaint.masks import part_mask
    from hf_faceinpaint.models.registry import load_model

    faces = load_eval_images(str(shared_dir / "data/celebahq_eval256"), 288).pixels
    pipeline = load_model("msl-face")
    missed, found = 0, []
    for face in faces:
        photo = np.full((640, 640, 3), 128, np.uint8)
        photo[176:464, 176:464] = face
        mask = np.zeros((640, 640), bool)
        mask[176:464, 176:464] = part_mask(288, "mouth")
        truth = detect_faces(photo, np.zeros_like(mask))
        if not truth or detect_faces(photo, mask):
            continue
        missed += 1
        frame = pipeline.face_frame(photo, mask)
        if frame is not None:
            found.append((frame, face_frame(truth[0])))
    assert missed >= 5 and len(found) >= missed / 2, (missed, len(found))
    for (left, top, side), (true_left, true_top, true_side) in found:
        offset = max(abs(left + side / 2 - true_left - true_side / 2), abs(top + side / 2 - true_top - true_side / 2))
        assert offset < AGREE_CENTRE * true_side and 1 / AGREE_SIDE < side / true_side < AGREE_SIDE
