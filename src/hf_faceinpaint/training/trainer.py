"""The training loop, top to bottom. Run it through `train.py` (single process) or `accelerate launch train.py`.

Each optimizer step does, on every process:
  1. take this process's batch of real faces, flip some horizontally, and draw their hole masks;
  2-4. the model family's step (a "task": `MSLTask` here, the two-stage model's stages in `twostage.py`). For MSL:
     2. generate the composited inpainting  out = m · G(x ⊙ (1 − m), m) + (1 − m) · x;
     3. discriminator step: D learns real from out (eq. 10; out is detached, G gets no gradient here);
     4. generator step: λ_rec L1 + λ_perc perceptual + λ_style style + λ_adv adversarial (eq. 12), D frozen;
  5. update the EMA copy of the model; log, sample, validate and checkpoint on their schedules.
Masks and flips are pure functions of (seed, step, process, sample), so a resumed run replays the same batches.

A task is built in two steps, so that a missing weights file fails before any data is touched: `__init__` loads the
losses' networks, `build(architecture)` the model, discriminator and optimizers, and `prepare()` hands the trained
modules to Accelerate (after the EMA copy is taken). `step` runs one micro-step and returns the losses to log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import open_dataset, load_fixed_set, train_batches
from ..losses import PerceptualStyleLoss, generator_loss, l1_loss
from ..masks import MaskGenerator, parse_buckets
from ..models.msl import MSLConfig, MSLInpainter
from ..models.prior import load_fit_file
from ..models.registry import preset_config
from ..models.twostage import TwoStageConfig
from ..models.vgg import load_vgg16
from .checkpoint import ema_model, load_checkpoint, resolve_resume, save_checkpoint
from .config import ConfigError, TrainConfig
from .steps import TrainingDiverged, check_finite, discriminator_step
from .twostage import StructureTask, TextureTask
from .validation import inpaint_batches, save_grid, score, telea_outputs, validation_masks


@dataclasses.dataclass
class TrainResult:
    """What `train` leaves behind.

    Args:
        final_dir: The `save_pretrained` folder of the EMA generator.
        generator: This process's trained model (unwrapped), e.g. to compare processes.
        state: The trainer state of the last checkpoint (step, stream positions, bad-image count).
    """

    final_dir: Path
    generator: torch.nn.Module
    state: dict[str, Any]


def sample_seed(config: TrainConfig, micro_step: int, rank: int) -> int:
    """A seed unique to (run seed, micro-step, process), for the masks and flips of one batch."""
    return (config.seed * 1_000_003 + micro_step) * 4099 + rank


def masks_and_flips(config: TrainConfig, generator: MaskGenerator, micro_step: int, rank: int, world: int, batch: int):
    """Hole masks (B, 1, R, R) and horizontal-flip flags (B,) for one batch, reproducible on resume."""
    first = (micro_step * world + rank) * batch  # global index of this batch's first sample
    masks = torch.from_numpy(np.stack([generator(first + i) for i in range(batch)]))[:, None].float()
    flips = torch.rand(batch, generator=torch.Generator().manual_seed(sample_seed(config, micro_step, rank))) < 0.5
    return masks, flips


def zoom_in(images: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """Scale augmentation: enlarge a random `share` of the faces (B, 3, R, R) by a factor in [1, 2] and take a random
    R×R crop of each, reproducibly from `seed`."""
    if share <= 0:
        return images
    rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the masks' and flips'
    side = images.shape[-1]
    out = images.clone()
    for i in range(len(images)):
        if rng.random() >= share:
            continue
        big = round(side * rng.uniform(1.0, 2.0))
        enlarged = F.interpolate(images[i : i + 1], size=(big, big), mode="bicubic", align_corners=False)
        top, left = (int(v) for v in rng.integers(0, big - side + 1, size=2))
        out[i] = enlarged[0, :, top : top + side, left : left + side].clamp(-1.0, 1.0)
    return out


def write_metrics(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records logged after `step` (by a run that stopped after its last checkpoint), so a resumed run
    does not log those steps twice. Rewritten through a temporary file renamed into place."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


def gan_step(
    accelerator,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    perceptual_style: PerceptualStyleLoss,
    images: torch.Tensor,
    hole: torch.Tensor,
    config: TrainConfig,
    step: int,
) -> dict[str, torch.Tensor]:
    """One discriminator step then one generator step on a batch (steps 2-4 of the module docstring).

    Args:
        accelerator: The `Accelerator` the models and optimizers were prepared with.
        generator: The prepared generator.
        discriminator: The prepared discriminator.
        opt_g: The generator's prepared optimizer.
        opt_d: The discriminator's prepared optimizer.
        perceptual_style: The VGG16 perceptual + style loss.
        images: Real faces, (B, 3, R, R) in [-1, 1].
        hole: Masks, (B, 1, R, R), 1 = hole.
        config: Loss kind and weights.
        step: The optimizer step, for the NaN guard's message.

    Returns:
        The losses of this micro-step, keyed for logging.
    """
    # 2. the composited inpainting
    fake = generator(images, hole)
    zero = fake.new_zeros(())

    # 3. discriminator step: real vs. detached fake in one forward (one DDP forward per backward); skipped while
    # the adversarial weight is 0 (a structure-first phase trains on reconstruction and perceptual losses only)
    d_loss = zero
    if config.w_adv > 0:
        d_loss = discriminator_step(
            accelerator, discriminator, opt_d, images, fake, hole, config.adversarial, config.w_gp, step, config.output_dir
        )

    # 4. generator step: D is frozen and called outside DDP, so no D gradient is computed or synchronised
    plain_discriminator = accelerator.unwrap_model(discriminator)
    plain_discriminator.requires_grad_(False)
    with accelerator.autocast():
        adv = generator_loss(config.adversarial, plain_discriminator(fake, hole)) if config.w_adv > 0 else zero
        rec = l1_loss(fake, images)
        perc, style = perceptual_style(fake, images) if config.w_perc > 0 or config.w_style > 0 else (zero, zero)
    plain_discriminator.requires_grad_(True)
    g_loss = config.w_rec * rec + config.w_perc * perc + config.w_style * style + config.w_adv * adv
    check_finite(accelerator, step, config.output_dir, g_loss=g_loss, rec=rec, perc=perc, style=style, adv=adv)
    accelerator.backward(g_loss)
    opt_g.step()
    opt_g.zero_grad(set_to_none=True)
    return {"loss/d": d_loss, "loss/g": g_loss, "loss/rec": rec, "loss/perc": perc, "loss/style": style, "loss/adv": adv}


class MSLTask:
    """MSL: the generator against its spectral-norm PatchGAN discriminator, one `gan_step` per micro-step.

    Args:
        config: The training settings.
        accelerator: The run's `Accelerator`.
    """

    validation_mask_kind = "irregular"  # the MSL paper's Table 1 buckets

    def __init__(self, config: TrainConfig, accelerator) -> None:
        self.config, self.accelerator = config, accelerator
        self.perceptual_style = PerceptualStyleLoss(load_vgg16(config.vgg_weights, config.vgg_normalization)).to(accelerator.device)

    def build(self, architecture: MSLConfig) -> MSLInpainter:
        """The generator, its discriminator and both Adam optimizers (paper: Adam); returns the generator."""
        self.model = MSLInpainter(architecture)
        if self.model.prior is not None:  # the face prior is fitted beforehand (scripts/fit_face_prior.py)
            if self.config.prior_weights is None:
                raise ConfigError(f"{self.config.model} has a face prior: pass --prior-weights FILE (scripts/fit_face_prior.py)")
            load_fit_file(self.model.prior, self.config.prior_weights)
        self.discriminator = self.model.build_discriminator()
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=self.config.lr_g, betas=(self.config.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr_d, betas=(self.config.beta1, 0.999))
        return self.model

    def prepare(self) -> tuple[torch.nn.Module, ...]:
        """Hand G, D and their optimizers to Accelerate; returns the modules to accumulate gradients of."""
        self.generator, self.discriminator, self.opt_g, self.opt_d = self.accelerator.prepare(
            self.model, self.discriminator, self.opt_g, self.opt_d
        )
        return self.generator, self.discriminator

    def step(self, images: torch.Tensor, hole: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        # the configured rates, also after resuming a checkpoint saved with others (a curriculum's next phase)
        for optimizer, rate in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = rate
        return gan_step(
            self.accelerator, self.generator, self.discriminator, self.opt_g, self.opt_d, self.perceptual_style,
            images, hole, self.config, step,
        )

    def inference_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """What validation inpaints with: the (EMA) generator itself."""
        return model

    def training_section(self, state: dict[str, Any]) -> str:
        config = self.config
        return (
            f"Trained with `train.py` from the `{config.model}` preset for {state['step']} steps at batch "
            f"{config.batch_size} × {len(state['positions'])} processes on `{config.dataset}`. "
            f"Losses: L1 ×{config.w_rec}, perceptual ×{config.w_perc}, style ×{config.w_style}, "
            f"{config.adversarial} ×{config.w_adv}. These weights are the EMA generator. They inherit the licence "
            "terms of the training data."
        )


def make_task(config: TrainConfig, accelerator):
    """The task that trains `config.model`: `MSLTask`, or the two-stage model's `StructureTask` / `TextureTask`."""
    if isinstance(preset_config(config.model), TwoStageConfig):
        return (StructureTask if config.stage == 1 else TextureTask)(config, accelerator)
    return MSLTask(config, accelerator)


def train(config: TrainConfig) -> TrainResult:
    """Train `config.model` as configured; the final EMA model is saved with `save_pretrained`."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    config.validate()
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        cpu=config.cpu or not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
        log_with="tensorboard",
        project_dir=str(output_dir),
    )
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    set_seed(config.seed)  # identical initial weights on every process

    # ---- losses first: a missing VGG (or other loss network) fails before any data is touched
    task = make_task(config, accelerator)

    # ---- data: the training stream (sharded per process) and the fixed validation set
    dataset, column = open_dataset(config.dataset, image_column=config.image_column, split=config.dataset_split)
    architecture = preset_config(config.model)
    if config.resolution:
        architecture = dataclasses.replace(architecture, resolution=config.resolution)  # re-validated
    # ---- models and optimizers (Adam, as in both papers)
    model = task.build(architecture)
    resolution = architecture.resolution
    buckets = parse_buckets(config.mask_buckets) if config.mask_buckets else None
    masks = MaskGenerator(config.mask_kind, resolution, buckets, config.seed, speck_share=config.mask_specks)
    val_images = val_masks = None
    if config.val_dataset and accelerator.is_main_process:
        val_images = load_fixed_set(config.val_dataset, config.val_count, resolution, config.image_column, config.val_split)
        val_masks = validation_masks(len(val_images), resolution, task.validation_mask_kind)
    ema = ema_model(model, config.ema_decay).to(device)
    trained_modules = task.prepare()

    # ---- resume: models, optimizers, RNG, EMA, step and every process's position in the stream
    state: dict[str, Any] = {"step": 0, "positions": [[0, 0]] * world, "bad_images": 0}
    if config.resume:
        folder = resolve_resume(config.resume, output_dir)
        state = load_checkpoint(accelerator, folder, ema)
        if len(state["positions"]) != world:
            raise ValueError(f"checkpoint {folder} was written by {len(state['positions'])} processes, not {world}")
        accelerator.print(f"resumed from {folder} at step {state['step']}")
    step = state["step"]
    epoch, done = state["positions"][rank]
    stream = train_batches(
        dataset, column, resolution, config.batch_size, rank=rank, world_size=world, seed=config.seed,
        shuffle_buffer=config.shuffle_buffer, num_workers=config.num_workers, epoch=epoch, skip=done,
    )

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        truncate_metrics(output_dir / "metrics.jsonl", step)
        accelerator.init_trackers("hf-faceinpaint", config={k: v if v is not None else "" for k, v in vars(config).items()})
        if val_images is not None and step == 0:
            telea = score(telea_outputs(val_images, val_masks), val_images)
            write_metrics(output_dir / "metrics.jsonl", {"step": 0, **{f"val/telea_{k}": v for k, v in telea.items()}})
    progress = tqdm(total=config.max_steps, initial=step, disable=not accelerator.is_local_main_process, desc="train")
    micro_step = step * config.grad_accum

    while step < config.max_steps:
        # 1. this process's batch, flipped and masked reproducibly
        epoch, done, images, skipped = next(stream)
        hole, flips = masks_and_flips(config, masks, micro_step, rank, world, config.batch_size)
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)  # (B, 3, R, R)
        images = zoom_in(images, config.scale_aug, sample_seed(config, micro_step, rank)).to(device)
        hole = hole.to(device)  # (B, 1, R, R), 1 = hole
        state["bad_images"] += int(accelerator.reduce(torch.tensor(skipped, device=device), reduction="sum").item())
        micro_step += 1

        with accelerator.accumulate(*trained_modules):
            losses = task.step(images, hole, step)
        if not accelerator.sync_gradients:
            continue
        # 5. one optimizer step is complete
        step += 1
        ema.update_parameters(model)
        progress.update(1)
        if step % config.log_every == 0 or step == config.max_steps:
            logged = {k: accelerator.reduce(v.detach().float(), reduction="mean").item() for k, v in losses.items()}
            logged.update({"data/epoch": epoch, "data/bad_images": state["bad_images"]})
            accelerator.log(logged, step=step)
            if accelerator.is_main_process:
                write_metrics(output_dir / "metrics.jsonl", {"step": step, **logged})
                progress.set_postfix({key[5:]: f"{logged[key]:.3f}" for key in ("loss/g", "loss/d") if key in logged})
        if accelerator.is_main_process and val_images is not None:
            if config.sample_every and step % config.sample_every == 0:
                outputs = inpaint_batches(task.inference_model(ema.module), val_images[:8], val_masks[:8])
                save_grid(output_dir / "samples" / f"step-{step:08d}.png", val_images[:8], val_masks[:8], outputs)
            if (config.val_every and step % config.val_every == 0) or step == config.max_steps:
                metrics = score(inpaint_batches(task.inference_model(ema.module), val_images, val_masks), val_images)
                accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
                write_metrics(output_dir / "metrics.jsonl", {"step": step, **{f"val/{k}": v for k, v in metrics.items()}})
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.max_steps:
            positions = accelerator.gather(torch.tensor([[epoch, done]], device=device)).tolist()
            state.update(step=step, positions=positions)
            save_checkpoint(accelerator, output_dir, step, ema, state, config.keep_checkpoints)

    progress.close()
    final = output_dir / "final"
    if accelerator.is_main_process:
        card = {"model_name": Path(config.output_dir).name, "training_section": task.training_section(state)}
        save_final(ema.module, final, card)
        if config.push_to_hub:
            ema.module.push_to_hub(config.push_to_hub, model_card_kwargs=card)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and the process group: last
    return TrainResult(final, model, state)


def save_final(model: torch.nn.Module, final: Path, card: dict[str, str]) -> None:
    """`save_pretrained` of the EMA model into `final` (model card fields `card`), through a temporary folder
    renamed into place."""
    tmp = final.with_name(f".{final.name}-tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, model_card_kwargs=card)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse the flags / config file and train. Returns the exit status."""
    import sys

    from ..models.hub import CheckpointError
    from .config import ConfigError, parse_config

    try:
        config = parse_config(argv)
        train(config)
    except (ConfigError, CheckpointError, TrainingDiverged, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
