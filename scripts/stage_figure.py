"""The model card's figure of the stages: what each face stage adds, on the bundled portrait.

    python scripts/stage_figure.py model_cards/msl-face-stages-astronaut.png [--model msl-face]

Rows: both eyes painted over, one eye painted over, the bundled mask (mouth and cheeks). Columns: the painted photo,
then the pipeline with its stages added one by one (the network alone; + the draft's structure, eq. 2; + the eye
bank, eqs. 5-6; + the mirror, eqs. 3-4: the whole pipeline), each cropped to the face and enlarged 2×. Every column is
the same `FaceInpaintPipeline` with fewer stages, run through `inpaint_arrays` as `inpaint()` runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hf_faceinpaint.images import example_image_path, example_mask_path, image_array, load_image, load_mask
from hf_faceinpaint.io import atomic_path
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.pipeline import FaceInpaintPipeline, inpaint_arrays

CROP = (35, 125, 200, 200)  # (top, left, height, width) of the astronaut's face in the 512² portrait
EYES = [(202, 99), (249, 103)]  # the centres (col, row) of her eyes


def masks(photo: np.ndarray) -> dict[str, np.ndarray]:
    rows, cols = np.ogrid[: photo.shape[0], : photo.shape[1]]
    eye = [((cols - x) / 26) ** 2 + ((rows - y) / 17) ** 2 <= 1 for x, y in EYES]
    return {"both eyes": eye[0] | eye[1], "one eye": eye[1],
            "mouth": load_mask(example_mask_path(), (photo.shape[1], photo.shape[0]))}


def columns(pipeline: FaceInpaintPipeline) -> dict[str, FaceInpaintPipeline]:
    """The pipeline with its stages added one by one."""
    names = list(pipeline.stages)
    out = {"network alone": FaceInpaintPipeline(pipeline.network, pipeline.framer, None, {}, pipeline.config)}
    for count, name in enumerate(names, start=1):
        stages = {key: pipeline.stages[key] for key in names[:count]}
        out[f"+ {name}"] = FaceInpaintPipeline(pipeline.network, pipeline.framer, pipeline.draft, stages,
                                               pipeline.config)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--model", default="msl-face", help="a face pipeline (default msl-face)")
    args = parser.parse_args(argv)
    pipeline = load_model(args.model)
    if not isinstance(pipeline, FaceInpaintPipeline):
        print(f"error: {args.model} is not a face pipeline", file=sys.stderr)
        return 2
    photo = image_array(load_image(example_image_path()))
    top, left, height, width = CROP
    view = np.s_[top : top + height, left : left + width]
    variants = columns(pipeline)
    rows = []
    for label, mask in masks(photo).items():
        painted = photo.copy()
        painted[mask] = (255, 105, 180)
        tiles = [painted[view]] + [inpaint_arrays(model, [photo], [mask])[0][view] for model in variants.values()]
        rows.append(np.concatenate(tiles, axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0)).resize((2 * width * len(tiles), 2 * height * len(rows)))
    canvas = Image.new("RGB", (grid.width, grid.height + 24), "white")
    canvas.paste(grid, (0, 24))
    draw = ImageDraw.Draw(canvas)
    for i, title in enumerate(["painted", *variants]):
        draw.text((i * 2 * width + 6, 6), title, fill="black")
    with atomic_path(args.out) as tmp:
        canvas.save(tmp, format="PNG")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
