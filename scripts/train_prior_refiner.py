"""Train the face prior's `PriorRefiner`: from the gappy-PCA guess to a sharp face on the prior's grid.

    python scripts/train_prior_refiner.py "../shared/data/faces128/train-*.parquet" runs/prior-refiner \
        [--prior msl-face] [--steps 6000] [--resume latest]
    python scripts/train_prior_refiner.py ... --export runs/face-prior-refined.safetensors   # no training
    python scripts/train_prior_refiner.py ... --device cuda --bf16 --workers 8 --minutes 7 --batch-size 128  # a GPU

The PCA (mean, basis, variance) is taken from `--prior` (a model with a face prior, e.g. the shipped msl-face, or a
file from `scripts/fit_face_prior.py`) and stays fixed; only the refiner learns. Each step draws faces (flipped and
zoomed by up to 12 %), a training mask each (`masks.face_mix_mask`: face-part boxes, thick masks, strokes), fits the
PCA to the known pixels exactly as inference does (`FacePrior.fit_grid`), and trains the refiner to give back the real
face on the grid (with `--fine`, on a grid twice as fine, from the known pixels there too: see `PriorRefiner`): L1
(the hole's cells weighted 6×; with `--lowpass K` on K×K cell means, so only the structure is held to the truth)
plus a hinge loss against a spectral-norm patch discriminator (with `--d-r1`, a plain one held by an R1 penalty),
which is what makes it draw eyes and mouths instead of their posterior mean (with `--adv-hole`, each patch weighted
by the hole near it, so patches of known pixels do not dilute it; with `--d-warmup N`, trained alone for the first N
steps, so it can already tell the starting refiner's fills from real faces; with `--fm-weight`, plus pix2pixHD's
feature matching on its layers, a denser target than one logit per patch; with `--local-weight`, plus a second,
local discriminator (Iizuka et al. 2017) on the eyes' and the mouth's regions of the faces, where at least 30 % of the
region is hole, and with `--part-share`, more holes over eyes and mouths to give it); optionally (`--perceptual-weight`,
`--style-weight`, with `--vgg-weights`) the MSL paper's perceptual and style losses (eqs. 7-9, VGG16 pool1-pool3) of
the composited face, which reward drawn edges over a blurred mean (`--part-perceptual-weight`,
`--part-style-weight`: the same on the eyes' and the mouth's regions, enlarged `--part-zoom` times, so VGG's layers
see a lip line or a tooth). An exponential moving average of the refiner is what gets exported.
Checkpoints go to OUT/checkpoint.pt (written to a temporary file, then renamed) every --save-every steps; `--resume
latest` continues from it. `--export FILE` writes the PCA and the EMA refiner into one safetensors file for
`scripts/export_shipped_model.py --prior FILE`; `--export-refiner FILE` writes the EMA refiner alone in float16 (what
a GPU window sends back: `scripts/device_train.sh`), for `scripts/export_shipped_model.py --refiner FILE`.
`--warm-start` begins from `--prior`'s own refiner (with `--fine`, its fine level starts as an upsampling of that
refiner's face; with `--fine-blocks N`, N residual blocks at the fine level, new ones starting as the identity, and
with `--freeze-coarse` only the fine level learns: the face on the grid, and its BatchNorm statistics, stay).
`--workers N` draws the batches (augmentation and masks) in N processes, in step order, so a run draws the same
batches whatever N is; `--minutes` ends a run (with a checkpoint) after that much training time.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from hf_faceinpaint.data import DatasetSpecError, load_fixed_set
from hf_faceinpaint.losses import (PerceptualStyleLoss, discriminator_loss, feature_matching_loss, generator_loss,
                                   hole_patch_weights, r1_penalty)
from hf_faceinpaint.masks import face_mix_mask, part_mask
from hf_faceinpaint.models.discriminator import PatchDiscriminator
from hf_faceinpaint.models.hub import CheckpointError, read_state_dict, save_safetensors_atomic
from hf_faceinpaint.models.prior import (FacePrior, known_cells, load_fit_file, refiner_fine, refiner_fine_blocks,
                                         refiner_width)
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.models.vgg import load_vgg16
from hf_faceinpaint.pipeline import emulated_bf16_warning

RESOLUTION = 128  # the faces and masks are drawn at this side, then area-pooled to the prior's grid
ZOOM = 0.88  # faces are cropped to a random square of at least this share of the side (scale augmentation)
# The local discriminator's regions of an aligned face, (top, bottom, left, right) fractions of the side: the eyes
# and the mouth boxes of `masks.FACE_PARTS` grown by 6 % of the side, so a whole eye or mouth is in view.
LOCAL_REGIONS = {"eyes": (0.30, 0.62, 0.14, 0.86), "mouth": (0.58, 0.90, 0.24, 0.76)}
LOCAL_PARTS = ("eyes", "mouth", "left-eye", "right-eye")  # the boxes --part-share draws
# A region counts for the local discriminator where at least this share of it is hole: the evaluation's eyes and
# mouth boxes cover 52 % and 48 % of their regions, one eye's box 34 % of the eyes' region.
LOCAL_MIN_HOLE = 0.3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="training faces: Parquet file/glob, image folder, .txt list or Hub id")
    parser.add_argument("out", type=Path, help="run folder (checkpoint.pt, log.csv)")
    parser.add_argument("--prior", default="msl-face",
                        help="where the PCA comes from: a model with a face prior, or a fit_face_prior.py file")
    parser.add_argument("--components", type=int, default=200,
                        help="PCA components to keep, with a file --prior (default 200)")
    parser.add_argument("--ridge", type=float, default=5.0, help="ridge weight, with a file --prior")
    parser.add_argument("--width", type=int, default=32, help="the refiner's first-level channels")
    parser.add_argument("--fine", action="store_true", help="give the refiner its level at twice the grid's side")
    parser.add_argument("--fine-blocks", type=int, default=0,
                        help="residual blocks at the fine level (with --fine; new ones start as the identity)")
    parser.add_argument("--freeze-coarse", action="store_true",
                        help="train the fine level alone (with --fine): the face on the grid stays --prior's")
    parser.add_argument("--warm-start", action="store_true",
                        help="start from --prior's refiner (of the same --width) instead of a fresh one")
    parser.add_argument("--steps", type=int, default=6000, help="total steps (a resumed run continues to it)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (both networks)")
    parser.add_argument("--hole-weight", type=float, default=6.0, help="L1 weight of the hole's cells")
    parser.add_argument("--lowpass", type=int, default=1,
                        help="take the L1 losses on K×K cell means of the face (K = 1: per cell); the detail finer "
                             "than that is then left to the adversarial and perceptual losses")
    parser.add_argument("--d-lr", type=float, default=None, help="Adam learning rate of the discriminator (--lr)")
    parser.add_argument("--d-r1", type=float, default=0.0,
                        help="γ of an R1 penalty (γ/2 E||∇D(real)||², every step) on a discriminator without spectral "
                             "norm, which can then reach the hinge margins; 0 = the spectral-norm discriminator")
    parser.add_argument("--d-warmup", type=int, default=0,
                        help="the run's first N steps train the discriminator alone, against the starting refiner "
                             "(a fresh discriminator needs hundreds of steps to tell its fills from real faces)")
    parser.add_argument("--adv-weight", type=float, default=0.05, help="weight of the adversarial loss")
    parser.add_argument("--fm-weight", type=float, default=0.0,
                        help="weight of pix2pixHD's feature-matching loss on the discriminator's layers; 0 = off")
    parser.add_argument("--adv-hole", action="store_true",
                        help="weight each patch's adversarial loss by the hole near it (`hole_patch_weights`): "
                             "patches of known pixels, the same in real and fake, no longer dilute it")
    parser.add_argument("--local-weight", type=float, default=0.0,
                        help="weight of a local discriminator's hinge loss on the eyes' and the mouth's regions of the "
                             "face (Iizuka et al. 2017's local discriminator, without spectral norm), where at least "
                             "LOCAL_MIN_HOLE of the region is hole; 0 = off")
    parser.add_argument("--local-r1", type=float, default=0.0,
                        help="γ of an R1 penalty on the local discriminator (on the sum of its patch logits: γ = 1 and "
                             "0.02 kept it from learning at all in a 2026-12-06 run); 0 = none")
    parser.add_argument("--part-share", type=float, default=0.0,
                        help="share of the faces whose hole is a jittered eyes, eye or mouth box (`LOCAL_PARTS`) "
                             "instead of a `face_mix_mask` (0 = the face mix alone)")
    parser.add_argument("--perceptual-weight", type=float, default=0.0,
                        help="weight of the perceptual loss (eq. 7, VGG16 pool1-pool3) on the composited face; 0 = off")
    parser.add_argument("--style-weight", type=float, default=0.0, help="weight of the style loss (eqs. 8-9); 0 = off")
    parser.add_argument("--part-perceptual-weight", type=float, default=0.0,
                        help="weight of the perceptual loss (eq. 7) on the eyes' and the mouth's regions "
                             "(`LOCAL_REGIONS`, where at least LOCAL_MIN_HOLE is hole), enlarged --part-zoom times, "
                             "so VGG's layers see a lip line or a tooth, not a few pixels; 0 = off")
    parser.add_argument("--part-style-weight", type=float, default=0.0,
                        help="weight of the style loss (eqs. 8-9) on the same enlarged regions; 0 = off")
    parser.add_argument("--part-zoom", type=int, default=2,
                        help="enlargement (bicubic) of the regions before VGG for the --part-* losses")
    parser.add_argument("--vgg-weights", default=None,
                        help="VGG16 weights for the perceptual and style losses (e.g. the HED stand-in "
                        "../shared/weights/vgg16_hed/vgg16_features.safetensors, Caffe convention)")
    parser.add_argument("--vgg-normalization", default="caffe", choices=("caffe", "imagenet"),
                        help="input convention of --vgg-weights (caffe: the HED stand-in; imagenet: torchvision's)")
    parser.add_argument("--ema", type=float, default=0.999, help="decay of the exported moving average")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N faces (0 = all)")
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu", help="torch device to train on, e.g. cpu or cuda")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes drawing the batches (0 = the training process); the batches are the same")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop (with a checkpoint) after this many minutes of training; 0 = run to --steps")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast for the networks (the PCA fit stays float32): on a GPU, or a CPU with bf16 "
                             "units (AMX, AVX512-BF16: 10.4 against 5.0 faces/s on 2 Xeon cores); slower elsewhere")
    parser.add_argument("--resume", choices=["latest"], help="continue from OUT/checkpoint.pt")
    parser.add_argument("--export", type=Path, help="write the PCA and the EMA refiner to this .safetensors file, "
                        "from OUT/checkpoint.pt, and exit")
    parser.add_argument("--export-refiner", type=Path,
                        help="after training (or with --export, beside its file): write the EMA refiner alone, "
                             "float16, to this .safetensors file (for export_shipped_model.py --refiner)")
    args = parser.parse_args(argv)
    if args.vgg_weights is None and args.export is None and any(
            (args.perceptual_weight, args.style_weight, args.part_perceptual_weight, args.part_style_weight)):
        parser.error("--perceptual-weight, --style-weight and the --part-* losses need --vgg-weights")
    if args.part_zoom < 1:
        parser.error(f"--part-zoom must be at least 1, got {args.part_zoom}")
    for option, path in (("--export", args.export), ("--export-refiner", args.export_refiner)):
        if path is not None and path.suffix != ".safetensors":
            parser.error(f"{option} needs a .safetensors file")
    if not 0.0 <= args.part_share <= 1.0:
        parser.error(f"--part-share must be in [0, 1], got {args.part_share}")
    if (args.fine_blocks or args.freeze_coarse) and not args.fine:
        parser.error("--fine-blocks and --freeze-coarse need --fine")
    if args.workers < 0 or args.minutes < 0:
        parser.error("--workers and --minutes must not be negative")
    return args


def build_prior(args: argparse.Namespace) -> FacePrior:
    """The fixed PCA of `args.prior` with a fresh refiner (or, with --warm-start, its own refiner's weights)."""
    if str(args.prior).endswith(".safetensors"):
        try:
            size = math.isqrt(read_state_dict(args.prior, "face prior")["mean"].numel() // 3)  # an RGB size² grid
            pca = FacePrior(size, args.components, args.ridge, refiner_width(args.prior), refiner_fine(args.prior),
                            refiner_fine_blocks(args.prior))
            load_fit_file(pca, args.prior)
        except (CheckpointError, KeyError) as err:
            raise SystemExit(f"error: {args.prior} is not a face prior file: {err}") from err
    else:
        pca = load_model(args.prior).prior
        if pca is None:
            raise SystemExit(f"error: model {args.prior} has no face prior")
    prior = FacePrior(pca.size, pca.components, pca.ridge, refiner_width=args.width, refiner_fine=args.fine,
                      refiner_fine_blocks=args.fine_blocks)
    prior.load_fit(pca.mean.float(), pca.basis.float(), pca.variance.float())
    if args.warm_start:
        if pca.refiner is None:
            raise SystemExit(f"error: --warm-start: {args.prior} has no refiner")
        width = pca.refiner.head.weight.shape[1]
        if width != args.width:
            raise SystemExit(f"error: --warm-start: {args.prior}'s refiner has width {width}, it does not fit "
                             f"--width {args.width}")
        result = prior.refiner.load_state_dict(pca.refiner.state_dict(), strict=False)  # all but a new fine level
        new = [key for key in result.missing_keys if not key.startswith(("fine.", "fine_head."))]
        if result.unexpected_keys or new:
            raise SystemExit(f"error: --warm-start: {args.prior}'s refiner does not fit this one: missing {new[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]}")
    prior.requires_grad_(False)
    refiner = prior.refiner
    trained = (refiner.fine, refiner.fine_head) if args.freeze_coarse else (refiner,)
    for module in trained:
        module.requires_grad_(True)
    return prior


def augment(faces: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random flips and zooms of (B, 3, R, R) uint8 faces; returns float in [-1, 1]."""
    out = []
    for face in faces:
        side = int(rng.integers(round(ZOOM * RESOLUTION), RESOLUTION + 1))
        top, left = (int(rng.integers(0, RESOLUTION - side + 1)) for _ in range(2))
        crop = face[None, :, top : top + side, left : left + side].float()
        crop = F.interpolate(crop, size=RESOLUTION, mode="bilinear", antialias=True, align_corners=False)
        out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
    return torch.cat(out) / 127.5 - 1.0  # (B, 3, R, R)


def draw_mask(rng: np.random.Generator, part_share: float) -> np.ndarray:
    """One training hole: with probability `part_share` a jittered box of `LOCAL_PARTS`, else a `face_mix_mask`."""
    if part_share and rng.random() < part_share:
        return part_mask(RESOLUTION, str(rng.choice(LOCAL_PARTS)), rng)
    return face_mix_mask(RESOLUTION, rng)


def draw_batch(faces: torch.Tensor, seed: int, step: int, batch_size: int,
               part_share: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of step `step`: augmented faces (B, 3, R, R) in [-1, 1] and their holes (B, 1, R, R), 1 = hole,
    drawn from the step's own generator (a resumed run, or one with workers, draws what an uninterrupted one would)."""
    rng = np.random.default_rng([seed, step])
    real = augment(faces[torch.from_numpy(rng.integers(0, len(faces), batch_size))], rng)
    hole = torch.from_numpy(np.stack([draw_mask(rng, part_share) for _ in range(batch_size)]))
    return real, hole[:, None].float()


def local_regions(missing: torch.Tensor, *images: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """The `LOCAL_REGIONS` crops of `missing` (B, 1, S, S) and of each image (B, C, S, S), of the faces where the
    region is at least `LOCAL_MIN_HOLE` hole: one tuple (missing, *images) per region that any face has."""
    side, out = missing.shape[-1], []
    for top, bottom, left, right in LOCAL_REGIONS.values():
        rows, cols = slice(round(top * side), round(bottom * side)), slice(round(left * side), round(right * side))
        chosen = missing[:, 0, rows, cols].mean((1, 2)) >= LOCAL_MIN_HOLE  # (B,)
        if chosen.any():
            out.append(tuple(x[chosen][..., rows, cols] for x in (missing, *images)))
    return out


class Batches(IterableDataset):
    """The batches of steps `first`, `first` + 1, ... (`draw_batch`); worker k of n draws the steps ≡ k mod n, and a
    DataLoader takes the workers' batches in turn, so they arrive in step order."""

    def __init__(self, faces: torch.Tensor, seed: int, first: int, last: int, batch_size: int,
                 part_share: float = 0.0) -> None:
        super().__init__()
        self.faces, self.seed, self.first, self.last, self.batch_size = faces, seed, first, last, batch_size
        self.part_share = part_share

    def __iter__(self):
        worker = get_worker_info()
        index, count = (0, 1) if worker is None else (worker.id, worker.num_workers)
        if worker is not None:
            torch.set_num_threads(1)  # the workers are many; each one draws whole batches
        for step in range(self.first + index, self.last, count):
            yield draw_batch(self.faces, self.seed, step, self.batch_size, self.part_share)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file renamed into place (a killed run never leaves half a checkpoint)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def export(prior: FacePrior, refiner_state: dict, path: Path, refiner_only: bool = False) -> None:
    """Write the PCA and the refiner (float32), or with `refiner_only` the refiner alone (float16, keys
    "refiner.*"), through a temporary file renamed into place."""
    prior.refiner.load_state_dict(refiner_state)
    state = {key: value for key, value in prior.state_dict().items() if key.startswith("refiner.") or not refiner_only}
    dtype = torch.float16 if refiner_only else torch.float32
    tensors = {key: value.to("cpu", dtype if value.is_floating_point() else value.dtype).contiguous()
               for key, value in state.items()}
    save_safetensors_atomic(tensors, path, metadata={"size": str(prior.size), "refiner_width": str(
        prior.refiner.head.weight.shape[1])})
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = args.out / "checkpoint.pt"
    device = torch.device(args.device)
    warning = emulated_bf16_warning(device, "--bf16", "drop --bf16") if args.bf16 else None
    if warning:
        print(warning, file=sys.stderr, flush=True)
    prior = build_prior(args).to(device)
    refiner = prior.refiner
    side = prior.size * (2 if args.fine else 1)  # the side of the refiner's face
    if args.lowpass < 1 or side % args.lowpass:
        raise SystemExit(f"error: --lowpass {args.lowpass} must be a positive divisor of the face's side {side}")
    discriminator = PatchDiscriminator(in_channels=4, widths=(64, 128, 256), spectral_norm=not args.d_r1).to(device)
    # the local discriminator (--local-weight): trained with the patch discriminator, by the same optimizer
    local_d = (PatchDiscriminator(in_channels=4, widths=(64, 128, 256), spectral_norm=False).to(device)
               if args.local_weight else None)
    opt_g = torch.optim.Adam([p for p in refiner.parameters() if p.requires_grad], lr=args.lr, betas=(0.5, 0.999))
    d_params = list(discriminator.parameters()) + ([] if local_d is None else list(local_d.parameters()))
    opt_d = torch.optim.Adam(d_params, lr=args.d_lr or args.lr, betas=(0.5, 0.999))
    ema = copy.deepcopy(refiner).requires_grad_(False)
    part_losses = bool(args.part_perceptual_weight or args.part_style_weight)
    features = (PerceptualStyleLoss(load_vgg16(args.vgg_weights, args.vgg_normalization)).to(device)
                if args.perceptual_weight or args.style_weight or part_losses else None)
    step = 0
    if args.resume or args.export:
        if not checkpoint_path.exists():
            raise SystemExit(f"error: no checkpoint at {checkpoint_path}")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)  # our own tensors, no pickle code
        refiner.load_state_dict(state["refiner"])
        ema.load_state_dict(state["ema"])
        discriminator.load_state_dict(state["discriminator"])
        if (local_d is None) != ("local_d" not in state):
            raise SystemExit("error: resume with --local-weight exactly when the checkpoint has a local discriminator"
                             f" (it has {'one' if 'local_d' in state else 'none'})")
        if local_d is not None:
            local_d.load_state_dict(state["local_d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = int(state["step"])
        for optimizer, lr in ((opt_g, args.lr), (opt_d, args.d_lr or args.lr)):  # this run's rates, not the saved
            for group in optimizer.param_groups:
                group["lr"] = lr
        print(f"resumed at step {step}")
    if args.export:
        export(prior, ema.state_dict(), args.export)
        if args.export_refiner:
            export(prior, ema.state_dict(), args.export_refiner, refiner_only=True)
        return 0

    start = time.perf_counter()
    try:
        faces = load_fixed_set(args.dataset, args.limit or 10**9, RESOLUTION)  # (M, 3, R, R) in [-1, 1]
    except DatasetSpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    faces = ((faces + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)  # a quarter of the memory
    print(f"{len(faces)} faces loaded in {time.perf_counter() - start:.0f} s")
    log = open(args.out / "log.csv", "a")
    refiner.train()
    if args.freeze_coarse:  # its BatchNorm statistics stay as well
        for name, module in refiner.named_children():
            if name not in ("fine", "fine_head"):
                module.eval()
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)  # noqa: E731
    batches = DataLoader(Batches(faces, args.seed, step, args.steps, args.batch_size, args.part_share),
                         batch_size=None,
                         num_workers=args.workers, pin_memory=device.type == "cuda",
                         prefetch_factor=4 if args.workers else None)
    began = tick = time.perf_counter()
    seen = 0
    for real, hole in batches:  # (B, 3, R, R) in [-1, 1], (B, 1, R, R)
        real, hole = real.to(device, non_blocking=True), hole.to(device, non_blocking=True)
        with torch.no_grad():
            guess, cells, share, _ = prior.fit_grid(real, hole)  # (B, 3, S, S) ×2, (B, 1, S, S)
            # the known cells and the target on the output's grid (S, or 2S with --fine): (B, 3|1, side, side)
            out_cells, out_share = known_cells(real, 1.0 - hole, side) if args.fine else (cells, share)
            target = F.adaptive_avg_pool2d(real, side)
        missing = 1.0 - out_share  # the hole's share of each cell
        warming = step < args.d_warmup  # a discriminator-only step: the refiner stays as it is

        with autocast(), torch.set_grad_enabled(not warming):
            face = refiner(cells, share, guess, *((out_cells, out_share) if args.fine else ())).float()
        fake = out_share * out_cells + missing * face  # (B, 3, side, side): the refined face in the known cells

        # discriminator: hinge loss, real faces vs composited fills, with the hole as a fourth channel
        with autocast():
            d_real, d_fake = discriminator(target, missing).float(), discriminator(fake.detach(), missing).float()
        weights = hole_patch_weights(missing, d_fake) if args.adv_hole else None  # (B, 1, h, w) or all patches
        loss_d = discriminator_loss("hinge", d_real, d_fake, weights)
        if args.d_r1:  # in float32: a second-order gradient
            probe = target.detach().requires_grad_(True)
            loss_d = loss_d + 0.5 * args.d_r1 * r1_penalty(discriminator(probe, missing), probe)
        # the eyes' and the mouth's regions, [(missing, real, fake)] crops, for the local discriminator or --part-*
        local = local_regions(missing, target, fake) if local_d is not None or part_losses else []
        for hole_crop, real_crop, fake_crop in local if local_d is not None else ():  # float32: R1, 2nd order
            probe = real_crop.detach().requires_grad_(bool(args.local_r1))
            d_local = local_d(probe, hole_crop)
            loss_d = loss_d + discriminator_loss("hinge", d_local, local_d(fake_crop.detach(), hole_crop))
            if args.local_r1:
                loss_d = loss_d + 0.5 * args.local_r1 * r1_penalty(d_local, probe)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        l1_hole = l1_all = adv = matching = perceptual = style = local_adv = torch.zeros(())
        part_perceptual = part_style = torch.zeros(())
        if not warming:
            # refiner: L1 (the hole's cells weighted) plus the hinge generator loss, and the perceptual and style
            # losses (eqs. 7-9) of the composited face, which reward drawn edges over their blurred mean
            # (with --lowpass K, on K×K cell means: the structure, not the detail, is held to the truth)
            error = F.avg_pool2d(face - target, args.lowpass).abs()  # (B, 3, side/K, side/K)
            pooled = F.avg_pool2d(missing, args.lowpass)
            l1_hole = (error * pooled).sum() / (3 * pooled.sum()).clamp_min(1.0)
            l1_all = error.mean()
            with autocast():
                fake_features = [f.float() for f in discriminator.features(fake, missing)]
            adv = generator_loss("hinge", fake_features[-1], weights)
            loss_g = args.hole_weight * l1_hole + l1_all + args.adv_weight * adv
            if local and local_d is not None:
                local_adv = sum(generator_loss("hinge", local_d(crop, hole_crop)) for hole_crop, _, crop in local)
                loss_g = loss_g + args.local_weight * local_adv / len(local)
            if args.fm_weight:  # the updated discriminator's features of the real face, as in the fake's pass
                with torch.no_grad(), autocast():
                    real_features = [f.float() for f in discriminator.features(target, missing)]
                matching = feature_matching_loss(real_features[:-1], fake_features[:-1],
                                                 missing if args.adv_hole else None)
                loss_g = loss_g + args.fm_weight * matching
            if features is not None:
                with autocast():
                    perceptual, style = (term.float() for term in features(fake, target))
                loss_g = loss_g + args.perceptual_weight * perceptual + args.style_weight * style
            if local and part_losses:  # the same losses on the enlarged eyes' and mouth's regions
                with autocast():
                    terms = [features(*(F.interpolate(crop, scale_factor=args.part_zoom, mode="bicubic",
                                                      align_corners=False) for crop in (fake_crop, real_crop)))
                             for _, real_crop, fake_crop in local]
                part_perceptual = sum(term[0].float() for term in terms) / len(terms)
                part_style = sum(term[1].float() for term in terms) / len(terms)
                loss_g = loss_g + args.part_perceptual_weight * part_perceptual + args.part_style_weight * part_style
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            with torch.no_grad():
                for average, live in zip(ema.parameters(), refiner.parameters()):
                    average.lerp_(live, 1.0 - args.ema)
                for average, live in zip(ema.buffers(), refiner.buffers()):
                    average.copy_(live)
        step += 1
        seen += args.batch_size

        if step % args.log_every == 0:
            rate = seen / (time.perf_counter() - tick)
            tick, seen = time.perf_counter(), 0
            line = (f"{step},{l1_hole.item():.4f},{l1_all.item():.4f},{adv.item():.3f},{loss_d.item():.3f},"
                    f"{perceptual.item():.4f},{style.item():.5f},{rate:.1f},{matching.item():.4f},"
                    f"{local_adv.item():.3f},{part_perceptual.item():.4f},{part_style.item():.5f}")
            print(f"step {step}: l1_hole {l1_hole.item():.4f} l1 {l1_all.item():.4f} adv {adv.item():.3f} "
                  f"d {loss_d.item():.3f} perc {perceptual.item():.4f} style {style.item():.5f} "
                  f"fm {matching.item():.4f} local {local_adv.item():.3f} part_perc {part_perceptual.item():.4f} "
                  f"part_style {part_style.item():.5f} ({rate:.1f} img/s)", flush=True)
            log.write(line + "\n")
            log.flush()
        out_of_time = args.minutes and time.perf_counter() - began > 60 * args.minutes
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            save_checkpoint(checkpoint_path, {
                "refiner": refiner.state_dict(), "ema": ema.state_dict(),
                "discriminator": discriminator.state_dict(), "opt_g": opt_g.state_dict(),
                **({} if local_d is None else {"local_d": local_d.state_dict()}),
                "opt_d": opt_d.state_dict(), "step": step,
            })
        if out_of_time:
            print(f"stopped after {args.minutes:g} minutes at step {step}")
            break
    if args.export_refiner:
        export(prior, ema.state_dict(), args.export_refiner, refiner_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
