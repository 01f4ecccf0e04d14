"""`scripts/train_prior_refiner.py` end to end on a few synthetic faces: train, resume, export, and the export
loads strictly into a `FacePrior` with a refiner; then a refiner with a fine level warm-started from that export."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_faceinpaint.masks import face_mix_mask, part_mask
from hf_faceinpaint.models.prior import (
    FacePrior,
    fit_pca,
    load_fit_file,
    load_refiner_file,
    refiner_fine,
    refiner_fine_blocks,
    refiner_width,
    save_fit,
)
from hf_faceinpaint.models.hub import read_state_dict
from hf_faceinpaint.pipeline import bf16_is_fast

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_prior_refiner.py"
# log.csv's columns, in order
LOG_COLUMNS = ("step", "l1_hole", "l1", "adv", "d", "perc", "style", "rate", "fm", "local", "part_perc", "part_style")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def log_column(run_dir: Path, column: str) -> float:
    """A column of the last line of a run's log.csv."""
    return float((run_dir / "log.csv").read_text().splitlines()[-1].split(",")[LOG_COLUMNS.index(column)])


def load_refiner_file_state(path: Path) -> dict[str, torch.Tensor]:
    """The refiner's tensors of a prior file, without their "refiner." prefix."""
    return {key.removeprefix("refiner."): value for key, value in read_state_dict(path, "prior").items()
            if key.startswith("refiner.")}


def noise_faces_and_pca(tmp_path: Path, count: int, seed: int) -> tuple[Path, Path]:
    """A folder of `count` 128² noise "faces" and an 8-component PCA of random 16² faces."""
    rng = np.random.default_rng(seed)
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(faces / f"{index}.png")
    pca = tmp_path / "pca.safetensors"
    save_fit(pca, *fit_pca(torch.rand(40, 3, 16, 16) * 2 - 1, 8))
    return faces, pca


def test_train_resume_and_export(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(12):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((128, 128), Image.BICUBIC).save(faces / f"{index}.png")
    pca = tmp_path / "pca.safetensors"
    save_fit(pca, *fit_pca(torch.rand(40, 3, 16, 16) * 2 - 1, 8))
    common = [str(faces), str(tmp_path / "run"), "--prior", str(pca), "--components", "8", "--width", "4",
              "--batch-size", "2", "--save-every", "1", "--log-every", "1"]

    first = run(*common, "--steps", "2")
    assert first.returncode == 0, first.stderr
    assert "step 2:" in first.stdout and "12 faces loaded" in first.stdout
    second = run(*common, "--steps", "3", "--resume", "latest")
    assert second.returncode == 0, second.stderr
    assert "resumed at step 2" in second.stdout and "step 3:" in second.stdout
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and not (tmp_path / "run" / "checkpoint.tmp").exists()

    exported = tmp_path / "refined.safetensors"
    done = run(*common, "--export", str(exported))
    assert done.returncode == 0, done.stderr
    assert refiner_width(exported) == 4
    prior = FacePrior(16, 8, 5.0, refiner_width=4)
    load_fit_file(prior, exported)  # strict: every refiner key, the PCA of the file
    torch.testing.assert_close(prior.refiner.head.weight, state["ema"]["head.weight"])

    # a refiner with a fine level, warm-started from the exported one (its grid levels), trained and exported
    fine = [str(faces), str(tmp_path / "fine"), "--prior", str(exported), "--components", "8", "--width", "4",
            "--batch-size", "2", "--fine", "--warm-start", "--log-every", "1"]
    trained = run(*fine, "--steps", "1")
    assert trained.returncode == 0, trained.stderr
    fine_state = torch.load(tmp_path / "fine" / "checkpoint.pt", weights_only=True)
    assert fine_state["refiner"]["fine_head.weight"].any()  # the fine level (zero at the start) learns
    # the grid levels start from the exported refiner (one step moves the moving average by 0.1 % of a step)
    torch.testing.assert_close(fine_state["ema"]["head.weight"], prior.refiner.head.weight, atol=1e-5, rtol=0)
    fine_file = tmp_path / "fine.safetensors"
    assert run(*fine, "--export", str(fine_file)).returncode == 0
    assert refiner_fine(fine_file) and not refiner_fine(exported)
    load_fit_file(FacePrior(16, 8, 5.0, refiner_width=4, refiner_fine=True), fine_file)
    # blocks added at the fine level of that refiner, trained alone: the grid levels stay as they were
    blocks = [str(faces), str(tmp_path / "blocks"), "--prior", str(fine_file), "--components", "8", "--width", "4",
              "--batch-size", "2", "--fine", "--warm-start", "--fine-blocks", "2", "--freeze-coarse"]
    assert run(*blocks, "--steps", "2", "--export", "x.safetensors").returncode != 0  # nothing to export yet
    trained = run(*blocks, "--steps", "2", "--export-refiner", str(tmp_path / "blocks.safetensors"))
    assert trained.returncode == 0, trained.stderr
    start, end = load_refiner_file_state(fine_file), torch.load(tmp_path / "blocks" / "checkpoint.pt",
                                                                weights_only=True)["refiner"]
    for key in ("head.weight", "stem.1.running_mean", "middle.0.body.0.weight"):  # frozen, BatchNorm too
        torch.testing.assert_close(end[key], start[key], msg=key)
    assert end["fine.3.body.3.weight"].any() and (end["fine_head.weight"] != start["fine_head.weight"]).any()
    assert refiner_fine_blocks(tmp_path / "blocks.safetensors") == 2
    refused = run(*blocks[:8], "--fine-blocks", "2")
    assert refused.returncode != 0 and "need --fine" in refused.stderr
    wrong = run(str(faces), str(tmp_path / "wrong"), "--prior", str(exported), "--components", "8", "--width", "8",
                "--warm-start")
    assert wrong.returncode != 0 and "does not fit --width 8" in wrong.stderr


def test_workers_draw_the_same_batches_and_a_time_budget_ends_the_run(tmp_path: Path) -> None:
    faces, pca = noise_faces_and_pca(tmp_path, 6, seed=2)
    common = ["--prior", str(pca), "--components", "8", "--width", "4", "--batch-size", "2", "--log-every", "1"]

    alone = run(str(faces), str(tmp_path / "alone"), *common, "--steps", "3")
    pooled = run(str(faces), str(tmp_path / "pooled"), *common, "--steps", "3", "--workers", "2",
                 "--export-refiner", str(tmp_path / "refiner.safetensors"))
    assert alone.returncode == 0 and pooled.returncode == 0, alone.stderr + pooled.stderr
    losses = [[line.split(" (")[0] for line in done.stdout.splitlines() if line.startswith("step ")]
              for done in (alone, pooled)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]  # batch for batch the same draw, in step order

    # --export-refiner: the moving average alone, float16, loadable strictly into a prior with that refiner
    ema = torch.load(tmp_path / "pooled" / "checkpoint.pt", weights_only=True)["ema"]
    prior = FacePrior(16, 8, 5.0, refiner_width=4)
    load_refiner_file(prior, tmp_path / "refiner.safetensors")
    torch.testing.assert_close(prior.refiner.head.weight, ema["head.weight"].half().float())

    timed = run(str(faces), str(tmp_path / "timed"), *common, "--steps", "1000", "--minutes", "0.0001")
    assert timed.returncode == 0, timed.stderr
    assert "stopped after 0.0001 minutes at step 1" in timed.stdout
    assert torch.load(tmp_path / "timed" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_a_file_that_is_not_a_prior_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    done = run(str(tmp_path), str(tmp_path / "run"), "--prior", str(bad))
    assert done.returncode != 0 and "is not a face prior file" in done.stderr


def test_perceptual_and_style_losses_join_the_refiners_loss(tmp_path: Path, vgg_file: Path) -> None:
    faces, pca = noise_faces_and_pca(tmp_path, 4, seed=1)
    common = [str(faces), str(tmp_path / "run"), "--prior", str(pca), "--components", "8", "--width", "4",
              "--batch-size", "2", "--steps", "1", "--log-every", "1", "--perceptual-weight", "0.1",
              "--style-weight", "0.5"]

    refused = run(*common)
    assert refused.returncode != 0 and "need --vgg-weights" in refused.stderr
    done = run(*common, "--vgg-weights", str(vgg_file), "--vgg-normalization", "imagenet")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("step 1:"))
    perceptual, style = (float(line.split(name)[1].split()[0]) for name in (" perc ", " style "))
    assert perceptual > 0 and style > 0  # both were computed on the composited face, not left at zero
    assert "warning: --bf16" not in done.stderr  # float32: nothing to warn about

    # --bf16: the same first step (same seed, same draw) under bf16 autocast gives the same losses to bf16 precision
    common[1] = str(tmp_path / "run-bf16")
    done = run(*common, "--vgg-weights", str(vgg_file), "--vgg-normalization", "imagenet", "--bf16")
    assert done.returncode == 0, done.stderr
    fast = next(line for line in done.stdout.splitlines() if line.startswith("step 1:"))
    for name in (" l1_hole ", " l1 ", " perc "):
        value, reference = (float(text.split(name)[1].split()[0]) for text in (fast, line))
        assert abs(value - reference) <= 0.03 * abs(reference), (name, value, reference)
    assert fast.split(" (")[0] != line.split(" (")[0]  # ... and bf16 really ran: the printed losses differ
    # where bf16 is emulated (no AMX or AVX512-BF16), the run says so before it starts, and only there
    assert ("warning: --bf16 on cpu, which has no bf16 units" in done.stderr) == (not bf16_is_fast(torch.device("cpu")))


def test_lowpass_l1_hole_weighted_adversarial_and_the_discriminators_own_rate(tmp_path: Path) -> None:
    faces, pca = noise_faces_and_pca(tmp_path, 4, seed=3)
    common = ["--prior", str(pca), "--components", "8", "--width", "4", "--batch-size", "2", "--log-every", "1",
              "--save-every", "1"]

    def logged(run_name: str, *extra: str) -> dict[str, float]:
        """The losses logged at step 1, by name."""
        done = run(str(faces), str(tmp_path / run_name), *common, "--steps", "1", *extra)
        assert done.returncode == 0, done.stderr
        line = next(line for line in done.stdout.splitlines() if line.startswith("step 1:"))
        return {name: float(line.split(f" {name} ")[1].split()[0]) for name in ("l1", "adv", "fm")}

    def first_step(run_name: str, *extra: str) -> tuple[float, float]:
        """(L1, adversarial loss) logged at step 1."""
        losses = logged(run_name, *extra)
        return losses["l1"], losses["adv"]

    # the same first step: L1 of 4×4 cell means is at most the per-cell L1 (|mean e| <= mean |e|), and not equal
    (per_cell, adv), (pooled, _) = first_step("cells"), first_step("pooled", "--lowpass", "4")
    assert pooled < per_cell
    # --adv-hole changes only the adversarial term's weighting: the same L1, another adversarial loss
    hole = logged("hole", "--adv-hole")
    hole_l1, hole_adv = hole["l1"], hole["adv"]
    assert hole_l1 == per_cell and hole_adv != adv
    # --fm-weight: the same step's L1 and adversarial loss (features() ends in forward's logits), plus a matching term
    matched = logged("fm", "--adv-hole", "--fm-weight", "10")
    assert (matched["l1"], matched["adv"]) == (hole_l1, hole_adv) and matched["fm"] > 0
    assert hole["fm"] == 0.0  # off by default
    assert log_column(tmp_path / "fm", "fm") == pytest.approx(matched["fm"], abs=1e-4)
    # --d-r1: a discriminator without spectral norm (no parametrisations in its checkpoint), held by the penalty
    first_step("r1", "--d-r1", "10")
    plain = torch.load(tmp_path / "r1" / "checkpoint.pt", weights_only=True)["discriminator"]
    normed = torch.load(tmp_path / "cells" / "checkpoint.pt", weights_only=True)["discriminator"]
    assert any("parametrizations" in key for key in normed) and not any("parametrizations" in key for key in plain)
    # --d-warmup: step 1 trains the discriminator alone; the refiner's weights stay, exactly as with a zero rate
    warm_l1, _ = first_step("warm", "--d-warmup", "1")
    first_step("still", "--lr", "0", "--d-lr", "2e-4")
    warm, still = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True) for name in ("warm", "still"))
    assert warm_l1 == 0.0  # no refiner loss was computed
    for part in ("refiner", "discriminator"):  # (the power iteration's vectors move with every forward pass)
        for key, value in warm[part].items():
            if key.endswith(("weight", "bias", "original")):
                assert torch.equal(value, still[part][key]), (part, key)
    trained = torch.load(tmp_path / "cells" / "checkpoint.pt", weights_only=True)["refiner"]
    assert not torch.equal(warm["refiner"]["head.weight"], trained["head.weight"])  # a refiner step moves it
    refused = run(str(faces), str(tmp_path / "odd"), *common, "--lowpass", "3")
    assert refused.returncode != 0 and "--lowpass 3 must be a positive divisor of the face's side 16" in refused.stderr

    resumed = run(str(faces), str(tmp_path / "cells"), *common, "--steps", "2", "--resume", "latest",
                  "--lr", "1e-4", "--d-lr", "3e-4")
    assert resumed.returncode == 0, resumed.stderr
    state = torch.load(tmp_path / "cells" / "checkpoint.pt", weights_only=True)
    assert [group["lr"] for group in state["opt_g"]["param_groups"]] == [1e-4]  # this run's rates, not the saved
    assert [group["lr"] for group in state["opt_d"]["param_groups"]] == [3e-4]


def test_a_local_discriminator_judges_the_eyes_and_the_mouth(tmp_path: Path) -> None:
    faces, pca = noise_faces_and_pca(tmp_path, 4, seed=4)
    common = ["--prior", str(pca), "--components", "8", "--width", "4", "--batch-size", "4", "--log-every", "1",
              "--save-every", "1", "--fine"]

    def step_one(run_name: str, *extra: str) -> tuple[str, dict]:
        """The line logged at step 1 and the run's checkpoint."""
        done = run(str(faces), str(tmp_path / run_name), *common, "--steps", "1", *extra)
        assert done.returncode == 0, done.stderr
        line = next(line for line in done.stdout.splitlines() if line.startswith("step 1:"))
        return line, torch.load(tmp_path / run_name / "checkpoint.pt", weights_only=True)

    # every hole an eyes, eye or mouth box: a region of most faces is mostly hole, and the refiner's loss has the
    # local term; the local discriminator is saved with the run
    local_line, local_state = step_one("local", "--local-weight", "1", "--part-share", "1")
    local = float(local_line.split(" local ")[1].split()[0])
    assert local != 0.0 and "local_d" in local_state
    assert log_column(tmp_path / "local", "local") == pytest.approx(local, abs=1e-3)
    # --local-r1: the same first step plus a penalty on the local discriminator's loss
    penalised_line, _ = step_one("local-r1", "--local-weight", "1", "--part-share", "1", "--local-r1", "10")
    d_loss = [float(line.split(" d ")[1].split()[0]) for line in (local_line, penalised_line)]
    assert penalised_line.split(" d ")[0] == local_line.split(" d ")[0] and d_loss[1] > d_loss[0]
    # off by default: no local term, no local discriminator, and the same draw as before the option existed
    plain_line, plain_state = step_one("plain")
    assert " local 0.000 " in plain_line and "local_d" not in plain_state
    # a run resumes only as it was started
    for name, extra in (("local", ()), ("plain", ("--local-weight", "1"))):
        done = run(str(faces), str(tmp_path / name), *common, "--steps", "2", "--resume", "latest", *extra)
        assert done.returncode != 0 and "resume with --local-weight exactly when" in done.stderr
    refused = run(str(faces), str(tmp_path / "odd"), *common, "--part-share", "1.5")
    assert refused.returncode != 0 and "--part-share must be in [0, 1], got 1.5" in refused.stderr


def test_perceptual_and_style_losses_on_the_enlarged_eyes_and_mouth(tmp_path: Path, vgg_file: Path) -> None:
    faces, pca = noise_faces_and_pca(tmp_path, 4, seed=5)
    common = ["--prior", str(pca), "--components", "8", "--width", "4", "--batch-size", "4", "--log-every", "1",
              "--save-every", "1", "--fine", "--part-share", "1", "--steps", "1"]
    vgg = ["--vgg-weights", str(vgg_file), "--vgg-normalization", "imagenet"]

    def step_one(run_name: str, *extra: str) -> tuple[dict[str, float], dict]:
        """The part losses logged at step 1 (printed and in log.csv) and the run's refiner."""
        done = run(str(faces), str(tmp_path / run_name), *common, *extra)
        assert done.returncode == 0, done.stderr
        line = next(line for line in done.stdout.splitlines() if line.startswith("step 1:"))
        losses = {name: float(line.split(f" {name} ")[1].split()[0]) for name in ("part_perc", "part_style")}
        for name, value in losses.items():
            assert log_column(tmp_path / run_name, name) == pytest.approx(value, abs=1e-4)
        return losses, torch.load(tmp_path / run_name / "checkpoint.pt", weights_only=True)["refiner"]

    # every hole an eyes, eye or mouth box: both losses are computed on the regions, and they move the refiner
    part, part_refiner = step_one("part", *vgg, "--part-perceptual-weight", "1", "--part-style-weight", "1")
    assert part["part_perc"] > 0 and part["part_style"] > 0
    plain, plain_refiner = step_one("plain", *vgg)
    assert plain == {"part_perc": 0.0, "part_style": 0.0}  # off by default
    assert not torch.equal(part_refiner["fine_head.weight"], plain_refiner["fine_head.weight"])  # the same draw
    # a larger enlargement sees the same regions at another scale: other losses
    zoomed, _ = step_one("zoom", *vgg, "--part-perceptual-weight", "1", "--part-zoom", "1")
    assert zoomed["part_perc"] != part["part_perc"]
    refused = run(str(faces), str(tmp_path / "novgg"), *common, "--part-style-weight", "1")
    assert refused.returncode != 0 and "the --part-* losses need --vgg-weights" in refused.stderr
    refused = run(str(faces), str(tmp_path / "zero"), *common, *vgg, "--part-zoom", "0")
    assert refused.returncode != 0 and "--part-zoom must be at least 1, got 0" in refused.stderr


def test_local_regions_keep_the_faces_whose_region_is_mostly_hole() -> None:
    spec = importlib.util.spec_from_file_location("train_prior_refiner", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    side = 64
    missing = torch.zeros(3, 1, side, side)
    missing[0] = torch.from_numpy(part_mask(side, "eyes")).float()  # the evaluation's eyes box: 52 % of its region
    missing[1] = torch.from_numpy(part_mask(side, "nose")).float()  # a nose box: too little of either region
    missing[2, :, round(0.7 * side) :] = 1.0  # the frame's lower 30 %: most of the mouth's region, none of the eyes'
    image = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, side, side)
    crops = script.local_regions(missing, image)
    assert len(crops) == 2  # eyes (face 0), mouth (face 2)
    (eye_hole, eye_image), (mouth_hole, mouth_image) = crops
    top, bottom, left, right = (round(edge * side) for edge in script.LOCAL_REGIONS["eyes"])
    assert eye_image.shape == (1, 3, bottom - top, right - left) and eye_image.unique().tolist() == [0.0]
    assert mouth_image.unique().tolist() == [2.0]
    assert eye_hole.mean() >= script.LOCAL_MIN_HOLE and mouth_hole.mean() >= script.LOCAL_MIN_HOLE
    # --part-share 0 draws what the face mix draws, from the same generator; 1 only the local boxes (none of which
    # reaches the frame's top eighth, where half faces and strokes do)
    mixed, reference = np.random.default_rng(0), np.random.default_rng(0)
    assert all(np.array_equal(script.draw_mask(mixed, 0.0), face_mix_mask(128, reference)) for _ in range(8))
    rng = np.random.default_rng(0)
    assert all(not script.draw_mask(rng, 1.0)[:16].any() for _ in range(20))
