"""Export a face-inpainting pipeline as shipped package data: float16 weights and one config.json.

    python scripts/export_shipped_model.py msl-face --draft runs/refiner/final --out runs/msl-face-new
    python scripts/export_shipped_model.py msl-face --network runs/msl-tiny-128/final --out runs/msl-face-new
    python scripts/export_shipped_model.py msl-face --exemplars runs/exemplars.safetensors --out runs/msl-face-new
    python scripts/export_shipped_model.py runs/msl-tiny-128/final --draft runs/refiner/final \
        --exemplars runs/exemplars.safetensors                     # a network alone: msl-face's stages around it
    python scripts/export_shipped_model.py msl-face --set stages.mirror.axis_trust=0 --out runs/msl-face-no-axis

SOURCE is a pipeline (a shipped name such as msl-face, or a `save_pretrained` folder: its config and weights are
the starting point) or a network's `save_pretrained` folder (a `train.py` run's `final/`; it then gets msl-face's
framer and stages, at their configs' defaults). `--network`, `--draft` (a `train.py --model pca-refiner-128` run's
`final/`) and `--exemplars` (a bank of `scripts/fit_exemplar_bank.py`) replace a component; `--set KEY=VALUE`
changes one config value (a JSON path into config.json, the value as JSON). The script restates no setting: every
value comes from SOURCE, a component's folder or the config dataclasses.

The weights are stored in float16 (the PCA's basis as int8 codes, the eye bank as uint8), which load back into a
float32 model (`load_state_dict_strict` casts). The script refuses a result over `MAX_BYTES`, reloads what it wrote
strictly and reports the largest float16-vs-float32 change of the network's output on a seeded batch. Files go to a
temporary folder first and are renamed into place (`io.atomic_path`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import torch

from hf_faceinpaint.face import CascadeFramer, ExemplarDetail, GappyPCADraft, MirrorDetail, StructureTransfer
from hf_faceinpaint.face.exemplars import load_bank_file
from hf_faceinpaint.hub import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_state_dict
from hf_faceinpaint.io import atomic_path
from hf_faceinpaint.models.base import Inpainter
from hf_faceinpaint.models.registry import SHIPPED, load_pretrained, shipped_checkpoint
from hf_faceinpaint.pipeline import FaceInpaintPipeline

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "hf_faceinpaint" / "weights" / "msl-face"
MAX_BYTES = 20_000_000  # package-data budget for the shipped model: 20 MB (19.07 MiB)


def pipeline_of(source: str) -> FaceInpaintPipeline:
    """The pipeline `source` names, or msl-face's composition around the network it holds."""
    model = load_pretrained(shipped_checkpoint(source) if source in SHIPPED else source)
    if isinstance(model, FaceInpaintPipeline):
        return model
    return FaceInpaintPipeline(model, CascadeFramer(), None, {"structure": StructureTransfer(),
                                                              "mirror": MirrorDetail()})


def with_exemplars(pipeline: FaceInpaintPipeline, path: Path) -> None:
    """Put the bank of `path` in as the `exemplars` stage (after `structure`, before `mirror`: eqs. 2, 5-6, 4)."""
    count = int(read_state_dict(path, "exemplar bank")["eyes"].shape[0])
    old = pipeline.stages["exemplars"].config if "exemplars" in pipeline.stages else ExemplarDetail().config
    stage = ExemplarDetail(dataclasses.replace(old, count=count))
    load_bank_file(stage, path)
    stages = dict(pipeline.stages.items())
    stages["exemplars"] = stage
    order = ["structure", "exemplars", "mirror"]
    pipeline.stages = torch.nn.ModuleDict(sorted(stages.items(), key=lambda kv: order.index(kv[0])
                                                  if kv[0] in order else len(order)))


def with_setting(values: dict[str, Any], assignment: str) -> dict[str, Any]:
    """`values` (a config.json) with `KEY=VALUE` applied: KEY a dotted path, VALUE JSON."""
    key, _, text = assignment.partition("=")
    *path, last = key.split(".")
    node = values
    for part in path:
        if not isinstance(node.get(part), dict):
            raise KeyError(f"--set {assignment}: the config has no {part!r} under {'.'.join(path)}")
        node = node[part]
    if last not in node:
        raise KeyError(f"--set {assignment}: the config has no {key!r}")
    node[last] = json.loads(text)
    return values


def build(args: argparse.Namespace) -> FaceInpaintPipeline:
    pipeline = pipeline_of(args.source)
    if args.network is not None:
        network = load_pretrained(args.network)
        if not isinstance(network, Inpainter):
            raise ValueError(f"--network {args.network} holds a {type(network).__name__}, not a network")
        pipeline.network = network
    if args.draft is not None:
        pipeline.draft = GappyPCADraft.from_pretrained(args.draft)
    if args.exemplars is not None:
        with_exemplars(pipeline, args.exemplars)
    if args.set:
        values = pipeline.config_dict()
        for assignment in args.set:
            values = with_setting(values, assignment)
        rebuilt = FaceInpaintPipeline.from_config(values)
        rebuilt.load_state_dict(pipeline.state_dict())
        pipeline = rebuilt
    return pipeline.eval()


def output_change(reference: torch.nn.Module, exported: torch.nn.Module, resolution: int) -> float:
    """Largest absolute difference of two networks' outputs on a seeded batch of images and blocky holes."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, resolution, resolution, generator=generator) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    masks = (torch.rand(4, 1, resolution // 8, resolution // 8, generator=generator) > 0.7).float()
    masks = torch.nn.functional.interpolate(masks, size=resolution, mode="nearest")  # (B, 1, H, W), 1 = hole
    with torch.inference_mode():
        return (reference(images, masks) - exported(images, masks)).abs().max().item()


def export(pipeline: FaceInpaintPipeline, out: Path) -> None:
    reference = pipeline.network
    with atomic_path(out) as staging:
        copy.deepcopy(pipeline).half().save_pretrained(staging)
        (staging / "README.md").unlink()  # the shipped card is model_cards/<name>.md
        size = sum(path.stat().st_size for path in staging.iterdir())
        if size > MAX_BYTES:
            raise ValueError(f"the export is {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
        exported = FaceInpaintPipeline.from_pretrained(staging).float()
        change = output_change(reference, exported.network, reference.config.resolution)
    print(f"wrote {out / CONFIG_NAME} and {out / WEIGHTS_NAME} ({size / 1e6:.2f} MB, float16, int8 and uint8)")
    print(f"largest network output change float32 -> float16 weights: {change:.2e} (images in [-1, 1])")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a pipeline (shipped name or folder) or a network's save_pretrained folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"destination folder (default: {DEFAULT_OUT})")
    parser.add_argument("--network", type=Path, help="a network's save_pretrained folder to use instead")
    parser.add_argument("--draft", type=Path, help="a face draft's save_pretrained folder (train.py's final/)")
    parser.add_argument("--exemplars", type=Path, help="an eye bank file (scripts/fit_exemplar_bank.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config value: a dotted path into config.json and a JSON value; repeatable")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        export(build(args), args.out)
    except (CheckpointError, OSError, KeyError, TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
