"""End to end on generated data: `hf-faceinpaint evaluate` with classic methods and a saved 32² checkpoint; then
the library entry point with an untrained preset (labels, reruns), the other mask protocols and compositing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from hf_faceinpaint.cli import main
from hf_faceinpaint.evaluation.methods import load_method, run_method
from hf_faceinpaint.evaluation.report import results_markdown
from hf_faceinpaint.evaluation.runner import EvalConfig, evaluate
from hf_faceinpaint.masks import square_mask
from hf_faceinpaint.models.msl import MSLConfig, MSLInpainter

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

PNGS = ["plot_psnr.png", "plot_ssim.png", "plot_l1.png", "plot_lpips.png", "plot_fid.png", "examples.png"]


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """An untrained 32² MSL saved with save_pretrained (its README.md is a model card)."""
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16, 16), convs_per_level=0, discriminator_widths=(8, 16)))
    model.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.mark.slow
def test_cli_end_to_end(
    tmp_path: Path,
    image_folder: Path,
    mask_folder: Path,
    lpips_files: tuple[Path, Path],
    fid_weights: Path,
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backbone, heads = lpips_files
    out, card = tmp_path / "results", tiny_checkpoint / "README.md"
    status = main([
        "evaluate", "--images", str(image_folder), "--masks", str(mask_folder),
        "--methods", f"telea,ns,{tiny_checkpoint}", "--buckets", "10-20,20-30", "--resolution", "32",
        "--out", str(out), "--device", "cpu", "--batch-size", "5", "--seed", "1",
        "--vgg-weights", str(backbone), "--vgg-normalization", "caffe", "--lpips-weights", str(heads),
        "--fid-weights", str(fid_weights), "--write-model-card", str(card),
    ])
    printed = capsys.readouterr().out
    assert status == 0
    assert f"method: {tiny_checkpoint} (local directory" in printed and "NOT meaningful" in printed

    report = json.loads((out / "results.json").read_text())
    assert report["untrained_methods"] == [] and report["methods"][2]["resolution"] == 32
    assert [m["key"] for m in report["metrics"]] == ["psnr", "ssim", "l1", "lpips", "fid"]
    assert report["metrics"][3]["label"] == "LPIPS (stand-in backbone)"
    assert report["sample_sizes"]["images"] == 8 and report["sample_sizes"]["pairs"] == 16
    assert {p["bucket"] for p in report["pairs"]} == {"10-20", "20-30"}

    # Any number can be recomputed by hand from `pairs`.
    values = [p["metrics"]["ns"]["psnr"] for p in report["pairs"] if p["bucket"] == "20-30"]
    entry = report["results"]["ns"]["20-30"]["psnr"]
    half = stats.t.ppf(0.975, 7) * np.std(values, ddof=1) / math.sqrt(8)
    assert entry["count"] == 8 and entry["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert entry["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half], abs=1e-9)
    for pair in report["pairs"]:
        low, high = (0.1, 0.2) if pair["bucket"] == "10-20" else (0.2, 0.3)
        assert low < pair["hole_ratio"] <= high

    fid = report["fid"]
    assert fid["computed"] and not fid["meaningful"]
    assert fid["sample_sizes"] == {"10-20": {"n_real": 8, "n_fake": 8}, "20-30": {"n_real": 8, "n_fake": 8}}
    assert "NOT meaningful" in fid["note"] and "8 inpainted vs 8 ground truth" in fid["note"]
    assert report["results"]["telea"]["10-20"]["fid"]["n_fake"] == 8

    markdown = (out / "results.md").read_text()
    assert "| Metric | Method | (10%, 20%] | (20%, 30%] |" in markdown
    assert "| LPIPS (stand-in backbone) ↓ |" in markdown and f"| {tiny_checkpoint} |" in markdown
    assert "FID ↓ (n = 8 vs 8, not meaningful)" in markdown and "NOT meaningful" in markdown
    rows = [line.split("|")[1:-1] for line in markdown.splitlines() if line.startswith("| ")][1:]  # no header
    psnr_rows = {cells[1].strip(): cells[2].strip() for cells in rows[:3]}  # method label -> (10%, 20%] cell
    means = {m["label"]: report["results"][m["name"]]["10-20"]["psnr"]["mean"] for m in report["methods"]}
    best = max(means, key=means.get)
    assert psnr_rows[best].startswith(f"**{means[best]:.2f}** ± ")
    assert sum(cell.startswith("**") for cell in psnr_rows.values()) == 1

    for name in PNGS:
        with Image.open(out / name) as picture:
            picture.verify()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    card_text = card.read_text()
    assert card_text.count("<!-- evaluation:start -->") == 1 and "## Evaluation" in card_text
    assert "| PSNR ↑ | telea |" in card_text and "# MSLInpainter" in card_text


def test_rerun_gives_identical_results_and_outputs_are_composited(image_folder: Path) -> None:
    config = EvalConfig(
        images=str(image_folder), methods=["telea", "msl-tiny-128"], mask_mode="generated", buckets=[(0.2, 0.4)],
        resolution=32, limit=2, fid=False, lpips=False, device="cpu", examples=2,
    )
    first = evaluate(config, progress=False)
    assert first.report == evaluate(config, progress=False).report
    assert len(first.examples) == 2 and list(first.examples[0].outputs) == ["telea", "msl-tiny-128 (untrained)"]
    assert first.report["untrained_methods"] == ["msl-tiny-128"]
    markdown = results_markdown(first.report)
    assert "|  | msl-tiny-128 (untrained) |" in markdown and "NOT a trained model" in markdown
    assert first.report["fid"]["computed"] is False and "--no-fid" in first.report["fid"]["note"]
    assert "lpips" not in first.report["results"]["telea"]["20-40"]

    # A 128² network on 32² frames: resized there and back, and still exact outside the hole.
    method = load_method("msl-tiny-128", device=torch.device("cpu"), seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    holes = np.stack([square_mask(32, 12), square_mask(32, 20)])
    output = run_method(method, frames, holes)
    np.testing.assert_array_equal(output[~holes], frames[~holes])
    assert (output[holes] != frames[holes]).any()


def test_square_protocol(image_folder: Path) -> None:
    report = evaluate(
        EvalConfig(images=str(image_folder), methods=["ns"], mask_mode="square", square_size=16, resolution=32,
                   fid=False, lpips=False, device="cpu"),
        progress=False,
    ).report
    assert [b["title"] for b in report["buckets"]] == ["centred square 16×16 (25.0%)"]
    assert {p["mask"] for p in report["pairs"]} == {"square-16px"} and len(report["pairs"]) == 8
    assert all(p["hole_ratio"] == 0.25 for p in report["pairs"])


def test_precision_is_checked_and_recorded(image_folder: Path) -> None:
    config = EvalConfig(images=str(image_folder), methods=["msl-tiny-128"], mask_mode="square", square_size=16,
                        resolution=32, limit=1, fid=False, lpips=False, device="cpu", precision="fp32")
    settings = evaluate(config, progress=False).report["settings"]
    assert settings["precision"] == "fp32" and settings["bf16_autocast"] is False
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        evaluate(dataclasses.replace(config, precision="fp16"), progress=False)


def test_parts_protocol_scores_exactly_what_inpaint_returns(image_folder: Path, tiny_checkpoint: Path) -> None:
    """`evaluate` and `inpaint()` share one inference path: per pair, the same PSNR (the issue allows 0.05 dB)."""
    from hf_faceinpaint import inpaint
    from hf_faceinpaint.evaluation.dataset import load_eval_images
    from hf_faceinpaint.masks import FACE_PARTS, part_mask
    from hf_faceinpaint.metrics import psnr

    config = EvalConfig(images=str(image_folder), methods=[str(tiny_checkpoint)], mask_mode="parts", resolution=48,
                        limit=3, fid=False, lpips=False, device="cpu")
    report = evaluate(config, progress=False).report
    assert [b["key"] for b in report["buckets"]] == list(FACE_PARTS) and len(report["pairs"]) == len(FACE_PARTS) * 3
    frames = load_eval_images(str(image_folder), 48, 3, progress=False).pixels  # (3, 48, 48, 3) uint8
    for pair in report["pairs"]:
        frame, hole = frames[pair["image_index"]], part_mask(48, pair["mask"])
        result = np.asarray(inpaint(Image.fromarray(frame), hole, model=str(tiny_checkpoint)))
        # torch.tensor copies: the array PIL gives is read-only, which torch.from_numpy warns about
        to01 = lambda a: torch.tensor(a).permute(2, 0, 1)[None].double() / 255  # noqa: E731
        direct = psnr(to01(result), to01(frame)).item()
        assert abs(direct - pair["metrics"][str(tiny_checkpoint)]["psnr"]) < 0.05
