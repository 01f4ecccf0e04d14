"""Exemplar detail (`face/exemplars.py`): cutting the bank's windows, eq. 5's search over windows and shifts, eq. 6's
transfer (only the hole's core, damped to the photo's detail level, with a contrast only on the exemplar's eyes
themselves, nothing where the hole misses the part, hides too little of it or the frame is not trusted), the strict
bank file, the stage's own Hub round trip, and the bank script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_faceinpaint.face import geometry
from hf_faceinpaint.face.base import Draft
from hf_faceinpaint.face.exemplars import (
    BANK_SIDE,
    MAX_SHIFT,
    ExemplarConfig,
    ExemplarDetail,
    cut_windows,
    detail_gain,
    feature_region,
    load_bank_file,
    window_box,
    window_shape,
)
from hf_faceinpaint.face.filters import gaussian_blur
from hf_faceinpaint.io import CheckpointError, save_safetensors_atomic

SIDE = 256
CORE = geometry.EYE_CORE.pixels(SIDE)  # (top, bottom, left, right) of the eyes' core


def ExemplarBank(count: int) -> ExemplarDetail:  # noqa: N802 - the stage as a bank of `count` windows
    return ExemplarDetail(ExemplarConfig(count=count))


def transfer(bank: ExemplarDetail, filled: torch.Tensor, mask: torch.Tensor, sigma: float, ramp: float,
             trust: torch.Tensor | None = None, contrast: float = 0.0) -> torch.Tensor:
    """Eqs. 5-6 with `bank`'s windows, σ and the ramp in pixels, and the draft's trust (None: no draft)."""
    side = filled.shape[-1]
    stage = ExemplarDetail(ExemplarConfig(count=bank.config.count, sigma=sigma / side, ramp=ramp / side,
                                          contrast=contrast))
    stage.eyes.copy_(bank.eyes)
    return stage(filled, mask, None if trust is None else Draft(torch.zeros_like(filled), trust))


def random_bank(count: int = 6, seed: int = 0) -> ExemplarDetail:
    """A bank of smooth random grey windows."""
    generator = torch.Generator().manual_seed(seed)
    bank = ExemplarBank(count)
    noise = gaussian_blur(torch.randn(count, 1, *window_shape("eyes"), generator=generator), 1.5)
    bank.eyes.copy_(((noise / noise.abs().amax() + 1) * 127.5).round().to(torch.uint8))
    return bank


def eyes_hole(batch: int, side: int = SIDE) -> torch.Tensor:
    """(B, 1, side, side): the evaluation's eyes box."""
    top, bottom, left, right = geometry.PARTS["eyes"].pixels(side)
    mask = torch.zeros(batch, 1, side, side)
    mask[..., top:bottom, left:right] = 1
    return mask


def test_windows_are_grey_uint8_cuts_of_the_bank_side() -> None:
    faces = torch.randint(0, 256, (3, 3, BANK_SIDE, BANK_SIDE), dtype=torch.uint8)
    windows = cut_windows(faces, "eyes")
    top, bottom, left, right = window_box("eyes", BANK_SIDE)
    assert windows.shape == (3, 1, *window_shape("eyes")) and windows.dtype == torch.uint8
    expected = faces[:, :, top:bottom, left:right].float().mean(dim=1, keepdim=True).round()
    torch.testing.assert_close(windows.float(), expected)
    with pytest.raises(ValueError, match="128² frames"):
        cut_windows(faces[..., :64, :64], "eyes")


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("offset", [(0, 0), (2, -4), (-4, 2)])
def test_eq_5_finds_the_window_and_its_place_under_a_hole(mirrored: bool, offset: tuple[int, int]) -> None:
    bank = random_bank()
    windows = bank.windows("eyes", torch.zeros(1))  # (2N, 1, h, w)
    wanted = 3 + (bank.config.count if mirrored else 0)
    height, width = window_shape("eyes")
    dy, dx = offset
    # the window seen with a margin of MAX_SHIFT: the wanted window placed at (dy, dx), brightened by 0.2 (eq. 5
    # ignores a constant), the rest flat
    around = torch.full((1, 1, height + 2 * MAX_SHIFT, width + 2 * MAX_SHIFT), 0.1)
    around[..., MAX_SHIFT + dy : MAX_SHIFT + dy + height, MAX_SHIFT + dx : MAX_SHIFT + dx + width] = (
        windows[wanted] + 0.2)
    hole = torch.zeros_like(around)
    hole[..., 14:30, 10:70] = 1  # the fill's pixels count too, more than the known ones
    index, found = bank.match("eyes", around.clamp(-1, 1.2), hole)
    assert index.item() == wanted and tuple(found[0].tolist()) == offset


def test_eq_6_changes_only_the_holes_core_and_takes_the_exemplars_detail() -> None:
    bank = random_bank(count=1)
    generator = torch.Generator().manual_seed(1)
    filled = gaussian_blur(torch.rand(2, 3, SIDE, SIDE, generator=generator) * 2 - 1, 6.0)  # a soft fill
    filled[..., :90, :] += 0.05 * torch.randn(2, 3, 90, SIDE, generator=generator)  # the photo's own detail above
    filled = filled.clamp(-1, 1)
    mask = eyes_hole(2)
    out = transfer(bank, filled, mask, sigma=4.0, ramp=8.0)
    changed = (out - filled).abs().amax(dim=1, keepdim=True) > 1e-6  # (B, 1, S, S)
    top, bottom, left, right = CORE
    ramp = round(0.03 * SIDE)
    assert changed.any() and not (changed & (mask == 0)).any()  # the hole only
    assert not changed[..., : top - ramp, :].any() and not changed[..., bottom + ramp + 1 :, :].any()  # its core
    assert changed[..., (top + bottom) // 2, (left + right) // 2].all()
    # deep inside the core, out = G_σ ∗ x + g · (e − G_σ ∗ e): the fill's detail is the exemplar's, grey (the same
    # in every channel)
    inner = (slice(None), slice(None), slice(top + 2, bottom - 8), slice(left + 30, right - 30))  # w = 1 there
    detail = (out - gaussian_blur(filled, 4.0))[inner]
    assert (detail[:, 0] - detail[:, 1]).abs().max() < 1e-5 and detail.abs().max() > 0.01


def eye_window(seed: int = 0) -> torch.Tensor:
    """(1, 1, h, w) grey eye-pair window in [-1, 1]: skin (0.4) with faint wrinkle lines (±0.05) and two dark irises
    (−0.6) in the eyes' core."""
    height, width = window_shape("eyes")
    window = torch.full((1, 1, height, width), 0.4)
    window[..., 2::4, :] += 0.05 * (torch.rand(width, generator=torch.Generator().manual_seed(seed)) - 0.5) * 2
    rows, cols = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    for centre in (0.3 * width, 0.7 * width):  # the irises, on the core's middle row
        window[..., ((rows - 0.6 * height) ** 2 + (cols - centre) ** 2) <= 16] = -0.6
    return window


def test_the_feature_region_is_the_eyes_not_the_skin() -> None:
    window = eye_window()
    region = feature_region(window, 0.15)[0, 0]  # (h, w)
    height, width = region.shape
    middle = round(0.6 * height)
    assert region[middle, round(0.3 * width)] > 0.95 and region[middle, round(0.7 * width)] > 0.95
    assert region[:, round(0.5 * width)].max() < 0.01  # between the eyes: skin and wrinkles only
    assert region[: round(0.3 * height)].max() < 0.01


def test_eq_6_with_a_contrast_takes_the_exemplars_eyes_and_leaves_the_skin_smooth() -> None:
    bank = ExemplarBank(1)
    bank.eyes.copy_(((eye_window() + 1) * 127.5).round().to(torch.uint8))
    generator = torch.Generator().manual_seed(3)
    filled = (0.4 + 0.08 * torch.randn(1, 3, SIDE, SIDE, generator=generator)).clamp(-1, 1)  # blotchy skin
    mask = eyes_hole(1)
    whole, eyes = (transfer(bank, filled, mask, 4.0, 8.0, contrast=contrast) for contrast in (0.0, 0.15))
    smooth = gaussian_blur(filled, 4.0)
    top, bottom, left, right = CORE
    between = (..., slice(top + 2, top + 20), slice(round(0.47 * SIDE), round(0.53 * SIDE)))  # skin, deep in the hole
    # between the eyes the fill's blotches are gone either way, and with the contrast no wrinkle is drawn there
    torch.testing.assert_close(eyes[between], smooth[between], atol=1e-4, rtol=0)
    assert (whole[between] - smooth[between]).abs().max() > 0.01
    assert torch.equal(eyes * (1 - mask), filled * (1 - mask))
    # the irises: both draw the exemplar's dark detail
    core = (..., slice(top, bottom), slice(left, right))
    assert (eyes - smooth)[core].min() < -0.3 and (whole - smooth)[core].min() < -0.3
    with pytest.raises(ValueError, match="contrast >= 0"):
        ExemplarConfig(contrast=-0.1)


def test_eq_6_leaves_frames_alone_that_it_must_not_touch() -> None:
    bank = random_bank()
    filled = torch.rand(2, 3, SIDE, SIDE) * 2 - 1
    mouth = torch.zeros(2, 1, SIDE, SIDE)
    mouth[..., 170:210, 80:180] = 1  # misses the eyes' window
    assert torch.equal(transfer(bank, filled, mouth, 4.0, 8.0), filled)
    assert torch.equal(transfer(bank, filled, eyes_hole(2), 4.0, 8.0, trust=torch.zeros(2)), filled)  # no face
    assert torch.equal(transfer(bank, filled[..., :200], eyes_hole(2)[..., :200], 4.0, 8.0), filled[..., :200])
    nose = torch.zeros(2, 1, SIDE, SIDE)
    top, bottom, left, right = geometry.PARTS["nose"].pixels(SIDE)
    nose[..., top:bottom, left:right] = 1
    assert torch.equal(transfer(bank, filled, nose, 4.0, 8.0), filled)  # reaches the eyes' core, hides too little
    thin = torch.zeros(2, 1, SIDE, SIDE)
    thin[..., 120, 60:200] = 1  # a one-pixel stroke: never deep enough
    assert torch.equal(transfer(bank, filled, thin, 4.0, 8.0), filled)


def test_the_detail_gain_matches_a_soft_photo_and_never_amplifies() -> None:
    generator = torch.Generator().manual_seed(2)
    detail = torch.randn(2, 1, 20, 30, generator=generator)
    known = torch.ones(2, 1, 20, 30)
    gain = detail_gain(0.25 * detail, detail, known)
    torch.testing.assert_close(gain.flatten(), torch.full((2,), 0.25))
    assert detail_gain(3 * detail, detail, known).eq(1).all()
    assert detail_gain(0.25 * detail, detail, torch.zeros_like(known)).eq(1).all()  # nothing known: no measure


def test_a_bank_file_loads_strictly(tmp_path) -> None:
    bank, other = random_bank(count=4), ExemplarBank(4)
    save_safetensors_atomic({"eyes": bank.eyes}, tmp_path / "bank.safetensors")
    load_bank_file(other, tmp_path / "bank.safetensors")
    assert torch.equal(other.eyes, bank.eyes)
    cases = {
        "more": ({"eyes": bank.eyes, "mouth": bank.eyes.clone()}, "unexpected: mouth"),
        "count": ({"eyes": bank.eyes[:3]}, r"needs uint8 \(4, 1"),
        "dtype": ({"eyes": bank.eyes.float()}, "holds torch.float32"),
    }
    for name, (state, match) in cases.items():
        save_safetensors_atomic(state, tmp_path / f"{name}.safetensors")
        with pytest.raises(CheckpointError, match=match):
            load_bank_file(ExemplarBank(4), tmp_path / f"{name}.safetensors")


def test_the_stage_saves_its_bank_as_uint8_and_uses_it(tmp_path) -> None:
    bank = random_bank(count=5)
    bank.save_pretrained(tmp_path / "m")
    loaded = ExemplarDetail.from_pretrained(tmp_path / "m")
    assert loaded.eyes.dtype == torch.uint8 and torch.equal(loaded.eyes, bank.eyes)
    filled, mask = torch.rand(1, 3, SIDE, SIDE) * 2 - 1, eyes_hole(1)
    with torch.inference_mode():
        assert not torch.allclose(loaded(filled, mask, None), filled)
    with pytest.raises(ValueError, match="sigma > 0"):
        ExemplarConfig(count=2, sigma=0.0)
    with pytest.raises(ValueError, match="count >= 1"):
        ExemplarBank(0)


BANK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fit_exemplar_bank.py"


def _plain_pattern(rng: np.random.Generator) -> np.ndarray:
    """(BANK_SIDE, BANK_SIDE, 3) float: random texture, plain skin on the face's axis (cols .45-.55)."""
    pattern = rng.integers(40, 216, (BANK_SIDE, BANK_SIDE, 3)).astype(float)
    pattern[:, round(geometry.AXIS_BAND[0] * BANK_SIDE) : round(geometry.AXIS_BAND[1] * BANK_SIDE)] = 128.0
    return pattern


def _write_faces(folder: Path, faces: list[np.ndarray], rng: np.random.Generator) -> None:
    folder.mkdir()
    for i, face in enumerate(faces):
        Image.fromarray(np.clip(face + rng.normal(0, 8, face.shape), 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


def _bank_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BANK_SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_the_bank_script_keeps_typical_windows_only(tmp_path: Path) -> None:
    """scripts/fit_exemplar_bank.py: four faces sharing a pattern and two with it inverted (an odd eye region); the
    most typical half are the pattern's, and a draw larger than the kept pool is refused in one line."""
    rng = np.random.default_rng(0)
    pattern = _plain_pattern(rng)
    _write_faces(tmp_path / "faces", [pattern] * 4 + [255 - pattern] * 2, rng)
    out = tmp_path / "bank.safetensors"
    done = _bank_script(str(tmp_path / "faces"), str(out), "--count", "3", "--keep", "0.5")
    assert done.returncode == 0, done.stderr
    bank = ExemplarBank(3)
    load_bank_file(bank, out)
    typical = cut_windows(torch.from_numpy(pattern.round().astype(np.uint8)).permute(2, 0, 1)[None], "eyes").float()
    assert ((bank.eyes.float() - typical).abs().mean(dim=(1, 2, 3)) < 12).all()  # none of the inverted two
    refused = _bank_script(str(tmp_path / "faces"), str(tmp_path / "x.safetensors"), "--count", "4", "--keep", "0.5")
    assert refused.returncode == 2 and "cannot give 4 windows" in refused.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_the_bank_script_drops_windows_with_detail_between_the_eyes(tmp_path: Path, script_module) -> None:
    """A bridge of glasses (dark and bright bars on the face's axis, in the eyes' rows) raises `axis_share` over
    --max-axis, so those faces are not drawn, however typical; --max-axis inf keeps them."""
    rng = np.random.default_rng(1)
    pattern = _plain_pattern(rng)
    bridge = pattern.copy()
    columns = np.arange(round(geometry.AXIS_BAND[0] * BANK_SIDE), round(geometry.AXIS_BAND[1] * BANK_SIDE))
    bridge[round(0.43 * BANK_SIDE) : round(0.55 * BANK_SIDE), columns] = np.where(columns % 2, 20.0, 235.0)[:, None]
    windows = cut_windows(torch.from_numpy(np.stack([pattern, bridge]).round().astype(np.uint8)).permute(0, 3, 1, 2),
                          "eyes")
    axis_share = script_module("fit_exemplar_bank").axis_share
    plain, barred = axis_share(windows, "eyes").tolist()
    assert plain < 0.8 < barred
    _write_faces(tmp_path / "faces", [pattern] * 3 + [bridge] * 3, rng)
    out = tmp_path / "bank.safetensors"
    done = _bank_script(str(tmp_path / "faces"), str(out), "--count", "3", "--keep", "1")
    assert done.returncode == 0, done.stderr
    bank = ExemplarBank(3)
    load_bank_file(bank, out)
    assert (axis_share(bank.eyes, "eyes") < 0.8).all()  # none of the barred three
    assert _bank_script(str(tmp_path / "faces"), str(out), "--count", "4", "--keep", "1").returncode == 2
    assert _bank_script(str(tmp_path / "faces"), str(out), "--count", "6", "--keep", "1", "--max-axis",
                        "inf").returncode == 0
