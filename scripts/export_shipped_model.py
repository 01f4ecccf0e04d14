"""Export a trained generator as the package's shipped default model (float16 safetensors + config.json).

    python scripts/export_shipped_model.py runs/msl-tiny-128/final
    python scripts/export_shipped_model.py runs/msl-tiny-128/final --out src/hf_faceinpaint/weights/msl-face

The input is a `save_pretrained` folder (a run's `final/` holds the EMA generator). The weights are stored in float16
to halve the package size and load back into a float32 model (`load_state_dict_strict` casts). The script refuses a
result over the size limit, reloads what it wrote strictly and reports the largest float16-vs-float32 output change on
a seeded random batch. Files are written to a temporary folder first and renamed into place (`io.atomic_path`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from hf_faceinpaint.io import atomic_path
from hf_faceinpaint.models.hub import CONFIG_NAME, WEIGHTS_NAME
from hf_faceinpaint.models.registry import load_pretrained

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "hf_faceinpaint" / "weights" / "msl-face"
MAX_BYTES = 20 * 1024 * 1024  # package-data budget for the shipped model


def output_change(reference: torch.nn.Module, exported: torch.nn.Module, resolution: int) -> float:
    """Largest absolute difference of the two models' outputs on a seeded batch of images and free-form-ish holes."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, resolution, resolution, generator=generator) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    masks = (torch.rand(4, 1, resolution // 8, resolution // 8, generator=generator) > 0.7).float()
    masks = torch.nn.functional.interpolate(masks, size=resolution, mode="nearest")  # (B, 1, H, W), 1 = hole
    with torch.inference_mode():
        return (reference(images, masks) - exported(images, masks)).abs().max().item()


def export(checkpoint: Path, out: Path) -> None:
    model = load_pretrained(checkpoint)
    reference = load_pretrained(checkpoint)
    with atomic_path(out) as staging:
        model.half().save_pretrained(staging)
        (staging / "README.md").unlink()  # the shipped card is model_cards/<name>.md
        size = sum(path.stat().st_size for path in staging.iterdir())
        if size > MAX_BYTES:
            sys.exit(f"error: the export is {size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit")
        exported = load_pretrained(staging).float()
        change = output_change(reference, exported, reference.config.resolution)
    print(f"wrote {out / CONFIG_NAME} and {out / WEIGHTS_NAME} ({size / 2**20:.2f} MiB, float16)")
    print(f"largest output change float32 -> float16 weights: {change:.2e} (images in [-1, 1])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="save_pretrained folder, e.g. runs/msl-tiny-128/final")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"destination folder (default: {DEFAULT_OUT})")
    args = parser.parse_args()
    export(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
