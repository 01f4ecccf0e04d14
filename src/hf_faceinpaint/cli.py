"""Command line: `hf-faceinpaint inpaint | demo | info | evaluate` (also `python -m hf_faceinpaint`)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from . import __version__
from .evaluation.command import add_evaluate_command
from .images import example_image_path, example_mask_path, image_format, save_image
from .models.classic import ClassicInpainter
from .hub import CheckpointError
from .models.registry import DEFAULT_MODEL, ResolvedModel, resolve_model
from .pipeline import inpaint
from .precision import PRECISIONS
from .profiling import count_parameters, gflops_per_image

# Errors that mean bad input or a bad checkpoint: reported as one "error: ..." line, exit status 2.
USER_ERRORS = (OSError, ValueError, CheckpointError)
FOLDER_BATCH = 8  # folder mode: at most this many photos per inpaint() call (one batch of the network)...
#: ... and at most this many of their pixels, unless one photo alone has more: a call holds each of its photos about
#: three times over, so folder mode's peak memory stays that of single mode on its largest photo (1.5 GiB at 12000²).
FOLDER_PIXELS = 32_000_000


def error_message(err: BaseException) -> str:
    """A user error as one line (a multi-line message joined), or its type's name when it has no message."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def _resolve(spec: str | None, device: str | None, allow_untrained: bool = False) -> ResolvedModel:
    """`resolve_model` (which checks the device) with the no-default warning folded into the output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained default model")  # the printed method line says it
        resolved = resolve_model(spec, device=device, allow_untrained=allow_untrained)
    if spec is None and isinstance(resolved.model, ClassicInpainter):
        resolved.source = "no trained default model ships with this installation"
    return resolved


def _pair_folders(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    """Pair every image in `image_dir` with the mask of the same stem in `mask_dir` (x.jpg <-> x.png)."""
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}

    def by_stem(folder: Path) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in readable and not path.name.startswith("."):
                if path.stem in files:
                    raise ValueError(f"two files named {path.stem}.* in {folder}: {files[path.stem].name}, {path.name}")
                files[path.stem] = path
        return files

    images, masks = by_stem(image_dir), by_stem(mask_dir)
    if not images:
        raise ValueError(f"no image files in {image_dir}")
    unmatched = [path.name for stem, path in images.items() if stem not in masks]
    if unmatched:
        raise ValueError(f"no mask in {mask_dir} for {len(unmatched)} image(s): {', '.join(unmatched)}")
    return [(path, masks[stem]) for stem, path in images.items()]


def _identity(path: Path) -> tuple[int, int] | Path:
    """What makes two paths one file or folder: device and inode where it exists (so symlinks, hard links and
    relative paths compare equal), else the absolute path with symlinks resolved."""
    try:
        status = path.stat()
    except OSError:
        return path.resolve()
    return status.st_dev, status.st_ino


def _refuse_input_folder(out_dir: Path, inputs: dict[str, Path]) -> None:
    """Refuse folder mode's --out-dir when it is one of its input folders (named by option in `inputs`)."""
    for option, folder in inputs.items():
        if _identity(out_dir) == _identity(folder):
            raise ValueError(f"--out-dir {out_dir} is the {option} folder: the results would overwrite its files; "
                             "choose another output folder")


def _refuse_input_files(pairs: list[tuple[Path, Path]], outputs: list[Path]) -> None:
    """Refuse an output file that is one of the photos or masks, so that no input is overwritten."""
    inputs = {_identity(path): f"{kind} {path}" for pair in pairs for kind, path in zip(("photo", "mask"), pair)}
    for out in outputs:
        if _identity(out) in inputs:
            raise ValueError(f"the output {out} is the {inputs[_identity(out)]}: it would be overwritten; choose "
                             "another output file")


def _run_inpaint(args: argparse.Namespace) -> None:
    for given, option in ((args.photo, "image"), (args.hole, "mask")):  # `inpaint IMAGE MASK -o OUT`
        if given is not None and getattr(args, option) is not None:
            raise ValueError(f"the {option} is given twice: as an argument and as --{option}")
        if given is not None:
            setattr(args, option, given)
    single = (args.image, args.mask, args.out)
    folder = (args.image_dir, args.mask_dir, args.out_dir)
    if any(folder) == any(single) or not all(folder if any(folder) else single):
        raise ValueError("pass either IMAGE MASK --out OUT (or --image, --mask and --out), or --image-dir, --mask-dir "
                         "and --out-dir")
    if args.out:
        image_format(args.out)  # reject an unwritable extension before any work
        pairs, outputs = [(Path(args.image), Path(args.mask))], [Path(args.out)]
    else:
        inputs = {"--image-dir": Path(args.image_dir), "--mask-dir": Path(args.mask_dir)}
        _refuse_input_folder(Path(args.out_dir), inputs)
        pairs = _pair_folders(Path(args.image_dir), Path(args.mask_dir))
        outputs = [Path(args.out_dir) / f"{image.stem}.png" for image, _ in pairs]
    _refuse_input_files(pairs, outputs)
    resolved = _resolve(args.model, args.device)
    print(f"method: {resolved.name} ({resolved.source})")
    failed: list[str] = []  # folder mode: "name: problem" of each pair that could not be inpainted
    with tqdm(total=len(pairs), unit="image", disable=args.out is not None) as progress:
        for start, stop in folder_chunks([image for image, _ in pairs]):
            _inpaint_chunk(pairs[start:stop], outputs[start:stop], resolved, args.precision, failed, args.out is None)
            progress.update(stop - start)
    if args.out:
        print(f"wrote {outputs[0]}")
        return
    print(f"wrote {len(pairs) - len(failed)} image(s) to {args.out_dir}")
    if failed:
        raise ValueError(f"{len(failed)} of {len(pairs)} pair(s) could not be inpainted: {'; '.join(failed)}")


def _inpaint_chunk(pairs: list[tuple[Path, Path]], outputs: list[Path], resolved: ResolvedModel, precision: str,
                   failed: list[str], folder_mode: bool) -> None:
    """Inpaint `pairs` in one call and write the results to `outputs` (all of them dropped from memory on return,
    before the next chunk's photos are read). In folder mode, when the call fails, the pairs are retried one by one
    and each that fails is noted in `failed` as "name: problem"."""
    try:
        results = inpaint([image for image, _ in pairs], [mask for _, mask in pairs], model=resolved.model,
                          precision=precision)
    except (OSError, ValueError):
        if not folder_mode:
            raise
        results = [_inpaint_or_note(image, mask, resolved, precision, failed) for image, mask in pairs]
    for result, out in zip(results, outputs):
        if result is not None:
            save_image(result, out)


def folder_chunks(images: list[Path]) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of `images` inpainted in one call: at most `FOLDER_BATCH` photos of at most
    `FOLDER_PIXELS` pixels together, or one larger photo alone (sizes read from the files' headers)."""
    start, pixels = 0, 0
    for index, image in enumerate(images):
        size = _pixel_count(image)
        if index > start and (index - start == FOLDER_BATCH or pixels + size > FOLDER_PIXELS):
            yield start, index
            start, pixels = index, 0
        pixels += size
    if images:
        yield start, len(images)


def _pixel_count(image: Path) -> int:
    """The photo's pixels from its header; `FOLDER_PIXELS` for a file that cannot be read (inpainted alone, where
    its error is named)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # loading it warns, if it must
            with Image.open(image) as opened:
                return opened.width * opened.height
    except (OSError, ValueError, Image.DecompressionBombError):
        return FOLDER_PIXELS


def _inpaint_or_note(image: Path, mask: Path, resolved: ResolvedModel, precision: str,
                     failed: list[str]) -> Image.Image | None:
    """One pair of folder mode: the result, or None with "name: problem" appended to `failed`."""
    try:
        return inpaint(image, mask, model=resolved.model, precision=precision)
    except (OSError, ValueError) as err:
        failed.append(f"{image.name}: {' '.join(str(err).split())}")
        return None


def _run_demo(args: argparse.Namespace) -> None:
    image_format(args.out)
    resolved = _resolve(args.model, args.device)
    print(f"method: {resolved.name} ({resolved.source})")
    save_image(inpaint(example_image_path(), example_mask_path(), model=resolved.model, precision=args.precision),
               args.out)
    print(f"wrote {args.out}")


def _run_info(args: argparse.Namespace) -> None:
    resolved = _resolve(args.model, args.device, allow_untrained=True)
    model = resolved.model
    print(f"model: {resolved.name}")
    print(f"weights: {resolved.source}")
    if isinstance(model, ClassicInpainter):
        print("config:", json.dumps({"method": model.method, "radius": model.radius}, indent=2), sep="\n")
        return
    network = getattr(model, "network", model)  # a pipeline's network, or the network itself
    resolution = network.config.resolution
    print(f"class: {type(model).__name__}")
    print("config:", json.dumps(model.config_dict(), sort_keys=True, indent=2), sep="\n")
    print(f"parameters: {count_parameters(model):,} ({count_parameters(network):,} in the network)")
    print(f"network GFLOPs per image ({resolution}×{resolution}): {gflops_per_image(network, resolution):.2f}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `hf-faceinpaint` with its `inpaint`, `demo`, `info` and `evaluate` sub-commands."""
    parser = argparse.ArgumentParser(prog="hf-faceinpaint", description="Face-image inpainting.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    model_help = (
        f"'telea', 'ns', '{DEFAULT_MODEL}', a save_pretrained folder or a Hub repo id "
        f"(default: {DEFAULT_MODEL} when installed, else telea)"
    )

    run = commands.add_parser("inpaint", help="inpaint one image, or a folder of images",
                              usage="%(prog)s IMAGE MASK -o OUT [options] | --image-dir DIR --mask-dir DIR --out-dir DIR")
    run.add_argument("photo", nargs="?", metavar="IMAGE", help="input photo (or --image)")
    run.add_argument("hole", nargs="?", metavar="MASK",
                     help="mask, white / non-zero = hole, same size as the photo (or --mask)")
    run.add_argument("--image", help="input photo")
    run.add_argument("--mask", help="mask, white / non-zero = hole, same size as the photo")
    run.add_argument("-o", "--out", help="output file (.png recommended)")
    run.add_argument("--image-dir", help="folder of photos (folder mode)")
    run.add_argument("--mask-dir", help="folder of masks named like the photos, e.g. x.png for x.jpg")
    run.add_argument("--out-dir", help="folder for the results (written as <stem>.png)")
    run.set_defaults(handler=_run_inpaint)

    demo = commands.add_parser("demo", help="inpaint the bundled example portrait with the bundled mask")
    demo.add_argument("-o", "--out", required=True, help="output file (.png recommended)")
    demo.set_defaults(handler=_run_demo)

    info = commands.add_parser("info", help="show a model's config, size, cost and weights source")
    info.set_defaults(handler=_run_info)

    for sub in (run, demo, info):
        presets = "; info also takes preset names (untrained)" if sub is info else ""
        sub.add_argument("-m", "--model", default=None, help=model_help + presets)
        sub.add_argument("--device", default=None, help="torch device for neural models, e.g. cpu or cuda")
    for sub in (run, demo):
        sub.add_argument("--precision", choices=PRECISIONS, default="auto",
                         help="a neural model's arithmetic: auto = bf16 autocast on hardware with bf16 units (AMX, "
                              "AVX512-BF16, CUDA), else fp32; fp32 = always fp32 (default auto)")
    add_evaluate_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit status: 0 on success, 2 for bad arguments, input or model.

    Args:
        argv: The arguments after the program name (default: `sys.argv[1:]`).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed usage, --help or --version
        return stop.code if isinstance(stop.code, int) else 2
    try:
        args.handler(args)
    except USER_ERRORS as err:
        print(f"error: {error_message(err)}", file=sys.stderr)
        return 2
    return 0
