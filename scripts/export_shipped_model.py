"""Export a trained generator as the package's shipped default model (float16 safetensors + config.json).

    python scripts/export_shipped_model.py runs/msl-tiny-128/final
    python scripts/export_shipped_model.py runs/msl-tiny-128/final --out src/hf_faceinpaint/weights/msl-face
    python scripts/export_shipped_model.py runs/msl-tiny-128/final --prior runs/face-prior-refined.safetensors
    python scripts/export_shipped_model.py src/hf_faceinpaint/weights/msl-face --refiner refiner.safetensors --out DIR
    python scripts/export_shipped_model.py src/hf_faceinpaint/weights/msl-face --exemplars bank.safetensors --out DIR
    python scripts/export_shipped_model.py src/hf_faceinpaint/weights/msl-face --network runs/net/final --out DIR

With `--prior`, the gappy-PCA face prior (`scripts/fit_face_prior.py`) joins the network as a structure transfer
(`MSLConfig.prior_blend`, eq. 2 of `models/prior.py`): its buffers (and its refiner, from a file of
`scripts/train_prior_refiner.py --export`) are written into the same safetensors file, so `from_pretrained` carries
it. The network's weights are unchanged. With `--refiner`, a model that already has a prior with a refiner (the shipped
msl-face) gets that refiner's weights replaced by a refiner-only file (`scripts/train_prior_refiner.py
--export-refiner`, what a GPU window sends back); everything else is unchanged. With `--network`, the network of
another run (a `train.py` run's `final/` of the same architecture, without a prior) replaces the checkpoint's; the
prior, its refiner and the eye bank stay. `--mirror-detail`, `--mirror-detail-ramp` and `--mirror-axis-trust` set the
mirror-detail transfer of the exported config (`MSLConfig.mirror_detail`, eq. 4 of `models/symmetry.py`, which has no
weights; the defaults are what ships). With `--exemplars`, a bank of eye-pair windows
(`scripts/fit_exemplar_bank.py`) joins the model as its exemplar detail (`MSLConfig.exemplar_count`, eqs. 5-6 of
`models/exemplars.py`), replacing any bank the checkpoint has (`--no-exemplars` drops it); `--exemplar-detail` and
`--exemplar-ramp` and `--exemplar-contrast` set that transfer (the defaults are what ships).

The input is a `save_pretrained` folder (a run's `final/` holds the EMA generator). The weights are stored in float16
(the prior's basis as int8 codes, the exemplar windows as uint8) to keep the package small and load back into a
float32 model (`load_state_dict_strict` casts). The script refuses a result over the size limit, reloads what it
wrote strictly and reports the largest float16-vs-float32 output change on a seeded random batch. Files are written
to a temporary folder first and renamed into place (`io.atomic_path`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from hf_faceinpaint.io import atomic_path
from hf_faceinpaint.models.hub import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_state_dict
from hf_faceinpaint.models.exemplars import load_bank_file
from hf_faceinpaint.models.prior import (load_fit_file, load_refiner_file, refiner_fine, refiner_fine_blocks,
                                         refiner_width)
from hf_faceinpaint.models.registry import load_pretrained

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "hf_faceinpaint" / "weights" / "msl-face"
MAX_BYTES = 20_000_000  # package-data budget for the shipped model: 20 MB (19.07 MiB)


def output_change(reference: torch.nn.Module, exported: torch.nn.Module, resolution: int) -> float:
    """Largest absolute difference of the two models' outputs on a seeded batch of images and free-form-ish holes."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, resolution, resolution, generator=generator) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    masks = (torch.rand(4, 1, resolution // 8, resolution // 8, generator=generator) > 0.7).float()
    masks = torch.nn.functional.interpolate(masks, size=resolution, mode="nearest")  # (B, 1, H, W), 1 = hole
    with torch.inference_mode():
        return (reference(images, masks) - exported(images, masks)).abs().max().item()


def with_prior(model: torch.nn.Module, args: argparse.Namespace) -> torch.nn.Module:
    """`model` with the face prior of `args.prior` blended into its fill (the same network weights)."""
    if getattr(model, "prior", None) is not None:
        sys.exit("error: the checkpoint already has a face prior")
    config = dataclasses.replace(
        model.config, prior_components=args.prior_components, prior_ridge=args.prior_ridge, prior_input=False,
        prior_blend=args.prior_blend, prior_blend_ramp=args.prior_blend_ramp, prior_detail=args.prior_detail,
        prior_refiner_width=refiner_width(args.prior), prior_refiner_fine=refiner_fine(args.prior),
        prior_refiner_fine_blocks=refiner_fine_blocks(args.prior),
    )
    combined = type(model)(config)
    result = combined.load_state_dict(model.state_dict(), strict=False)
    if result.unexpected_keys or any(not key.startswith("prior.") for key in result.missing_keys):
        sys.exit(f"error: the network does not fit its own config: {result}")
    try:
        load_fit_file(combined.prior, args.prior)
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    return combined.eval()


def with_refiner(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """`model` (with a face prior and its refiner) with the refiner of the file `path`, which may have another
    number of residual blocks at its fine level (the config follows the file)."""
    if getattr(model, "prior", None) is None:
        sys.exit("error: --refiner: the checkpoint has no face prior")
    try:
        blocks = refiner_fine_blocks(path)
        if blocks != model.config.prior_refiner_fine_blocks:
            combined = type(model)(dataclasses.replace(model.config, prior_refiner_fine_blocks=blocks))
            state = {key: value for key, value in model.state_dict().items() if not key.startswith("prior.refiner.")}
            result = combined.load_state_dict(state, strict=False)
            if result.unexpected_keys or any(not key.startswith("prior.refiner.") for key in result.missing_keys):
                sys.exit(f"error: the network does not fit its own config: {result}")
            model = combined
        load_refiner_file(model.prior, path)
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    return model.eval()


def with_network(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """`model` with the network (every weight but the prior's and the eye bank's) of the `save_pretrained` folder
    `folder`, which must hold the same architecture without a prior."""
    try:
        network = load_pretrained(folder)
    except (CheckpointError, OSError, ValueError) as err:
        sys.exit(f"error: --network: {err}")
    own = {key: value for key, value in model.state_dict().items() if not key.startswith(("prior.", "exemplars."))}
    theirs = network.state_dict()
    missing, unexpected = sorted(own.keys() - theirs.keys()), sorted(theirs.keys() - own.keys())
    shapes = sorted(key for key in own.keys() & theirs.keys() if own[key].shape != theirs[key].shape)
    if missing or unexpected or shapes:
        sys.exit(f"error: --network {folder} is another architecture: missing {missing[:5]}, unexpected "
                 f"{unexpected[:5]}, other shapes {shapes[:5]}")
    model.load_state_dict({**model.state_dict(), **theirs})
    return model.eval()


def with_exemplars(model: torch.nn.Module, path: Path | None) -> torch.nn.Module:
    """`model` with the exemplar bank of the file `path` (`scripts/fit_exemplar_bank.py`) in place of its own, if
    any; with `path` None, without one."""
    count = 0
    if path is not None:
        try:
            count = int(read_state_dict(path, "exemplar bank")["eyes"].shape[0])
        except CheckpointError as err:
            sys.exit(f"error: {err}")
        except KeyError:
            sys.exit(f"error: exemplar bank {path} has no eyes windows")
    combined = type(model)(dataclasses.replace(model.config, exemplar_count=count))
    state = {key: value for key, value in model.state_dict().items() if not key.startswith("exemplars.")}
    result = combined.load_state_dict(state, strict=False)
    if result.unexpected_keys or any(not key.startswith("exemplars.") for key in result.missing_keys):
        sys.exit(f"error: the network does not fit its own config: {result}")
    if path is not None:
        try:
            load_bank_file(combined.exemplars, path)
        except CheckpointError as err:
            sys.exit(f"error: {err}")
    return combined.eval()


def export(checkpoint: Path, out: Path, args: argparse.Namespace) -> None:
    model = load_pretrained(checkpoint)
    reference = load_pretrained(checkpoint)
    if args.prior is not None:
        model, reference = with_prior(model, args), with_prior(reference, args)
    if args.refiner is not None:
        model, reference = with_refiner(model, args.refiner), with_refiner(reference, args.refiner)
    if args.network is not None:
        model, reference = with_network(model, args.network), with_network(reference, args.network)
    if args.exemplars is not None or args.no_exemplars:
        model, reference = with_exemplars(model, args.exemplars), with_exemplars(reference, args.exemplars)
    for network in (model, reference):  # validated again
        network.config = dataclasses.replace(network.config, mirror_detail=args.mirror_detail,
                                             mirror_detail_ramp=args.mirror_detail_ramp,
                                             mirror_axis_trust=args.mirror_axis_trust,
                                             exemplar_detail=args.exemplar_detail, exemplar_ramp=args.exemplar_ramp,
                                             exemplar_contrast=args.exemplar_contrast)
    with atomic_path(out) as staging:
        model.half().save_pretrained(staging)
        (staging / "README.md").unlink()  # the shipped card is model_cards/<name>.md
        size = sum(path.stat().st_size for path in staging.iterdir())
        if size > MAX_BYTES:
            sys.exit(f"error: the export is {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
        exported = load_pretrained(staging).float()
        change = output_change(reference, exported, reference.config.resolution)
    print(f"wrote {out / CONFIG_NAME} and {out / WEIGHTS_NAME} ({size / 1e6:.2f} MB, float16 and int8)")
    print(f"largest output change float32 -> float16 weights: {change:.2e} (images in [-1, 1])")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="save_pretrained folder, e.g. runs/msl-tiny-128/final")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"destination folder (default: {DEFAULT_OUT})")
    parser.add_argument("--prior", type=Path, help="a fitted face prior (scripts/fit_face_prior.py) to add")
    parser.add_argument("--refiner", type=Path,
                        help="a refiner-only file (train_prior_refiner.py --export-refiner) to replace the prior's "
                             "refiner of a checkpoint that has one (its fine level's blocks may differ)")
    parser.add_argument("--network", type=Path,
                        help="a save_pretrained folder (a train.py run's final/) of the same network without a prior, "
                             "whose weights replace the checkpoint's network (the prior, refiner and bank stay)")
    parser.add_argument("--prior-components", type=int, default=200, help="its components to keep (default 200)")
    parser.add_argument("--prior-ridge", type=float, default=5.0, help="ridge weight of its fit (default 5)")
    parser.add_argument("--prior-blend", type=float, default=1.5 / 256,
                        help="σ of the structure transfer, fraction of the frame side (default 1.5/256)")
    parser.add_argument("--prior-blend-ramp", type=float, default=12 / 256,
                        help="depth into the hole at which the prior is taken whole, fraction of the side "
                             "(default 12/256)")
    parser.add_argument("--prior-detail", type=float, default=0.0,
                        help="share of the network's detail kept deep inside the hole (default 0)")
    parser.add_argument("--mirror-detail", type=float, default=4 / 256,
                        help="σ of the mirror-detail transfer, fraction of the frame side; 0 = off (default 4/256)")
    parser.add_argument("--mirror-detail-ramp", type=float, default=8 / 256,
                        help="depth into the hole at which the mirror's detail is taken whole, fraction of the side "
                             "(default 8/256)")
    parser.add_argument("--mirror-axis-trust", type=float, default=1.0,
                        help="the mirror's trust where no shift can be matched (half a face painted over): mirrored "
                             "about the frame's centre; 0 = no mirror there (default 1, msl-face v12)")
    parser.add_argument("--exemplars", type=Path,
                        help="an exemplar bank (scripts/fit_exemplar_bank.py) to add, replacing the checkpoint's")
    parser.add_argument("--no-exemplars", action="store_true", help="drop the checkpoint's exemplar bank")
    parser.add_argument("--exemplar-detail", type=float, default=4 / 256,
                        help="σ of the exemplar-detail transfer, fraction of the frame side (default 4/256)")
    parser.add_argument("--exemplar-ramp", type=float, default=8 / 256,
                        help="depth into the hole at which the exemplar's detail is taken whole, fraction of the side "
                             "(default 8/256)")
    parser.add_argument("--exemplar-contrast", type=float, default=0.15,
                        help="the exemplar's detail only where its window lies this far from its skin, grey in [-1, 1] "
                             "(default 0.15; 0 = the whole eyes' core, v8 and v9)")
    args = parser.parse_args(argv)
    if args.prior is not None and args.refiner is not None:
        parser.error("--prior brings its own refiner: pass --prior or --refiner, not both")
    if args.exemplars is not None and args.no_exemplars:
        parser.error("pass --exemplars or --no-exemplars, not both")
    return args


def main() -> None:
    args = parse_args()
    export(args.checkpoint, args.out, args)


if __name__ == "__main__":
    main()
