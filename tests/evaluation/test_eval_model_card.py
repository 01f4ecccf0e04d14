"""--write-model-card: the results table goes into a model card between markers, and is replaced on the next run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_faceinpaint.evaluation.report import CARD_END, CARD_START, model_card_section, updated_card_text
from hf_faceinpaint.evaluation.runner import EvalConfig, evaluate
from hf_faceinpaint.models.msl import MSLConfig, MSLInpainter


@pytest.fixture
def report(image_folder: Path) -> dict:
    """A small real report: NS on 2 images with generated masks in one bucket."""
    config = EvalConfig(images=str(image_folder), methods=["ns"], mask_mode="generated", buckets=[(0.1, 0.3)],
                        resolution=32, limit=2, fid=False, lpips=False, device="cpu")
    return evaluate(config, progress=False).report


def test_card_round_trip(tmp_path: Path, report: dict) -> None:
    section = model_card_section(report)
    assert section.startswith(CARD_START) and section.endswith(CARD_END) and "| PSNR ↑ | ns |" in section

    # save_pretrained renders the section through the template's `metrics_section`, markers included.
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16), convs_per_level=0, discriminator_widths=(8,)))
    model.save_pretrained(tmp_path / "model", model_card_kwargs={"metrics_section": section})
    card = (tmp_path / "model" / "README.md").read_text()
    assert card.count("## Evaluation") == 1 and card.count(CARD_START) == 1

    # A later evaluation replaces the text between the markers and leaves the rest of the card alone.
    newer = section.replace("| PSNR ↑ | ns |", "| PSNR ↑ | ns-newer |")
    updated = updated_card_text(card, newer)
    assert "ns-newer" in updated and updated.count(CARD_START) == 1 and updated.count("## Evaluation") == 1
    before, after = card.split(CARD_START)[0], card.split(CARD_END)[1]
    assert updated.startswith(before) and updated.endswith(after)
    assert updated_card_text(updated, section) == card


def test_card_without_markers_or_without_file(report: dict) -> None:
    section = model_card_section(report)
    appended = updated_card_text("# My model\n\nSome text.\n", section)
    assert appended.startswith("# My model\n\nSome text.\n\n## Evaluation\n\n" + CARD_START)
    assert updated_card_text(None, section) == f"## Evaluation\n\n{section}\n"
    with pytest.raises(ValueError, match="markers are broken"):
        updated_card_text(f"# card\n{CARD_END}\n{CARD_START}\n", section)
