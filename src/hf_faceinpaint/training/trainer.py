"""The training loop, top to bottom. Run it through `train.py` (single process) or `accelerate launch train.py`.

Each optimizer step does, on every process:
  1. take this process's batch of real faces, flip some horizontally, and draw their hole masks;
  2-4. the model family's step: its task (`task.Task`), `msl.MSLTask`, `twostage.StructureTask` / `TextureTask`, or
       the face draft's `draft.DraftTask`;
  5. update the EMA copy of the model; log, sample, validate and checkpoint on their schedules.
Masks and flips are pure functions of (seed, step, process, sample), so a resumed run replays the same batches.
After each step the guards run: a loss far above its running median, or (on log steps and before every save) a NaN or
exploded weight, stops training with nothing saved; SIGINT / SIGTERM stops it after a checkpoint (`signals`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..data import open_dataset, load_fixed_set, train_batches
from ..io import CheckpointError, atomic_path, read_safetensors, save_safetensors_atomic, write_text_atomic
from ..masks import MaskGenerator, parse_buckets
from ..hub import load_state_dict_strict
from ..face.draft import GappyPCADraftConfig
from ..models.twostage import TwoStageConfig
from ..precision import emulated_bf16_warning
from .checkpoint import ema_model, load_checkpoint, resolve_resume, resume_state, save_checkpoint, writing
from .config import ConfigError, TrainConfig, architecture_config
from .draft import DraftTask
from .flags import parse_config
from .msl import MSLTask
from .prefetch import MaskPrefetcher
from .signals import Interrupted, StopSignals, signal_name
from .steps import LossWatch, TrainingDiverged, check_weights
from .task import Task
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


def masks_and_flips(config: TrainConfig, masks: MaskPrefetcher, micro_step: int, rank: int, world: int, batch: int):
    """Hole masks (B, 1, R, R) and horizontal-flip flags (B,) for one batch, reproducible on resume."""
    first = (micro_step * world + rank) * batch  # global index of this batch's first sample
    upcoming = ((micro_step + 1) * world + rank) * batch
    masks = torch.from_numpy(masks.draw(first, batch, upcoming))[:, None].float()
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


DISCRIMINATOR_FILE = "discriminator.safetensors"


class Throughput:
    """Step time, images per second and peak memory between two log steps, for the `perf/` entries of the log.

    Args:
        images_per_step: Images per optimizer step over all processes.
        device: The training device (CUDA memory is read from the allocator, the CPU's from the peak RSS).
        step: The step training starts from.
    """

    def __init__(self, images_per_step: int, device: torch.device, step: int) -> None:
        self.images_per_step, self.device = images_per_step, device
        self.started = self.since = time.monotonic()
        self.step = step

    def read(self, step: int) -> dict[str, float]:
        now = time.monotonic()
        seconds = (now - self.since) / max(step - self.step, 1)
        self.since, self.step = now, step
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        return {"perf/step_s": seconds, "perf/img_s": self.images_per_step / seconds, "perf/peak_mem_gib": peak,
                "perf/minutes": (now - self.started) / 60.0}


def any_process(accelerator: Accelerator, *flags: bool) -> list[bool]:
    """Whether each of `flags` holds on any process, in one reduction; every process gets the same answers."""
    totals = accelerator.reduce(torch.tensor([float(flag) for flag in flags], device=accelerator.device), "sum")
    return [total > 0 for total in totals.tolist()]


def write_metrics(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records logged after `step` (by a run that stopped after its last checkpoint), so a resumed run
    does not log those steps twice."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def make_task(config: TrainConfig, accelerator: Accelerator) -> Task:
    """The task that trains `config.model`: `MSLTask`, the two-stage model's `StructureTask` / `TextureTask`, or the
    face draft's `DraftTask`."""
    architecture = architecture_config(config.model)
    if isinstance(architecture, TwoStageConfig):
        return (StructureTask if config.stage == 1 else TextureTask)(config, accelerator)
    if isinstance(architecture, GappyPCADraftConfig):
        return DraftTask(config, accelerator)
    return MSLTask(config, accelerator)


def train(config: TrainConfig) -> TrainResult:
    """Train `config.model` as configured; the final EMA model is saved with `save_pretrained`.

    Raises:
        ConfigError, CheckpointError: Settings that cannot run, or a checkpoint that cannot be resumed or written.
        TrainingDiverged: A loss or a weight left its range; nothing of it was saved.
        Interrupted: SIGINT or SIGTERM; a checkpoint was saved when the first step had run.
    """
    with StopSignals() as stop, contextlib.ExitStack() as closing:
        return _train(config, stop, closing)


def _train(config: TrainConfig, stop: StopSignals, closing: contextlib.ExitStack) -> TrainResult:
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
    warning = (emulated_bf16_warning(device, "--mixed-precision bf16", "use --mixed-precision no")
               if config.mixed_precision == "bf16" else None)
    if warning and accelerator.is_main_process:
        print(warning, file=sys.stderr, flush=True)
    set_seed(config.seed)  # identical initial weights on every process

    # ---- a resume is checked before anything is built: complete files, the same run settings (or allowed changes)
    folder = resolve_resume(config.resume, output_dir) if config.resume else None
    state: dict[str, Any] = (
        resume_state(folder, config, world, accelerator.print) if folder else
        {"step": 0, "positions": [[0, 0]] * world, "bad_images": 0, "settings": config.run_settings()}
    )

    # ---- losses first: a missing VGG (or other loss network) fails before any data is touched
    task = make_task(config, accelerator)

    # ---- data: the training stream (sharded per process) and the fixed validation set
    dataset, column = open_dataset(config.dataset, image_column=config.image_column, split=config.dataset_split)
    architecture = architecture_config(config.model)
    if config.resolution and hasattr(architecture, "resolution"):
        architecture = dataclasses.replace(architecture, resolution=config.resolution)  # re-validated
    # ---- models and optimizers (Adam, as in both papers)
    model = task.build(architecture)
    if config.init_from:  # continue an earlier run's generator (e.g. the last GPU window's)
        task.init_from(model, config.init_from)
    if config.init_discriminator:
        if task.discriminator is None:
            raise ConfigError(f"--init-discriminator: --stage {config.stage} of {config.model} trains no discriminator")
        load_state_dict_strict(task.discriminator, read_safetensors(config.init_discriminator), config.init_discriminator)
    resolution = task.resolution(architecture)
    buckets = parse_buckets(config.mask_buckets) if config.mask_buckets else None
    masks = MaskPrefetcher(
        MaskGenerator(config.mask_kind, resolution, buckets, config.seed, speck_share=config.mask_specks),
        config.mask_workers,
    )
    closing.callback(masks.close)  # its workers end however training ends
    val_images = val_masks = None
    if config.val_dataset and accelerator.is_main_process:
        val_images = load_fixed_set(config.val_dataset, config.val_count, resolution, config.image_column, config.val_split)
        val_masks = validation_masks(len(val_images), resolution, task.validation_mask_kind)
    ema = ema_model(model, config.ema_decay).to(device)
    trained_modules = task.prepare()

    # ---- resume: models, optimizers, RNG and EMA (the step and every process's stream position are in `state`)
    if folder:
        load_checkpoint(accelerator, folder, ema)
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
        settings = {key: "" if value is None else value for key, value in config.flat().items()}
        accelerator.init_trackers("hf-faceinpaint", config=settings)
        if val_images is not None and step == 0:
            telea = score(telea_outputs(val_images, val_masks), val_images)
            write_metrics(output_dir / "metrics.jsonl", {"step": 0, **{f"val/telea_{k}": v for k, v in telea.items()}})
    progress = tqdm(total=config.max_steps, initial=step, disable=not accelerator.is_local_main_process, desc="train")
    closing.callback(progress.close)  # an error's line then starts on a line of its own
    micro_step = step * config.grad_accum
    clock = Throughput(config.batch_size * world * config.grad_accum, device, step)
    watch = LossWatch(config.loss_spike)
    last = stopping = False
    stop.deferring = True  # a signal now ends the loop after its step, with a checkpoint

    while not (last or stopping):
        # 1. this process's batch, flipped and masked reproducibly
        epoch, done, images, skipped = next(stream)
        hole, flips = masks_and_flips(config, masks, micro_step, rank, world, config.batch_size)
        # augment on the training device: on one CPU thread flip + zoom of a 256-batch took 0.19 s, more than a GPU step
        images, flips = images.to(device, non_blocking=True), flips.to(device)  # (B, 3, R, R), (B,)
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
        images = zoom_in(images, config.scale_aug, sample_seed(config, micro_step, rank))
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
        watch.check(accelerator, step, config.output_dir, losses)
        late = config.max_minutes > 0 and time.monotonic() - clock.started > 60.0 * config.max_minutes
        late, stopping = any_process(accelerator, late, stop.signum > 0)
        last = step >= config.max_steps or late
        saving = (config.checkpoint_every and step % config.checkpoint_every == 0) or last or stopping
        if step % config.log_every == 0 or saving:  # never log on, or save, a diverged model
            check_weights(accelerator, step, config.output_dir, config.max_weight, generator=model, ema=ema.module,
                          discriminator=task.discriminator)
        if step % config.log_every == 0 or last:
            logged = {k: accelerator.reduce(v.detach().float(), reduction="mean").item() for k, v in losses.items()}
            logged.update({"data/epoch": epoch, "data/bad_images": state["bad_images"], **clock.read(step)})
            accelerator.log(logged, step=step)
            if accelerator.is_main_process:
                write_metrics(output_dir / "metrics.jsonl", {"step": step, **logged})
                progress.set_postfix({key[5:]: f"{logged[key]:.3f}" for key in ("loss/g", "loss/d") if key in logged})
        if accelerator.is_main_process and val_images is not None:
            if config.sample_every and step % config.sample_every == 0:
                outputs = inpaint_batches(task.inference_model(ema.module), val_images[:8], val_masks[:8])
                save_grid(output_dir / "samples" / f"step-{step:08d}.png", val_images[:8], val_masks[:8], outputs)
            if (config.val_every and step % config.val_every == 0) or last:
                metrics = score(inpaint_batches(task.inference_model(ema.module), val_images, val_masks), val_images)
                accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
                write_metrics(output_dir / "metrics.jsonl", {"step": step, **{f"val/{k}": v for k, v in metrics.items()}})
        if saving:
            positions = accelerator.gather(torch.tensor([[epoch, done]], device=device)).tolist()
            state.update(step=step, positions=positions)
            saved = save_checkpoint(accelerator, output_dir, step, ema, state, config.keep_checkpoints)

    stop.deferring = False  # the final save is atomic: a signal may end it at once
    progress.close()  # (when an error ends the loop, `closing` closes these two)
    masks.close()
    if stopping:
        accelerator.end_training()
        signum = stop.signum or signal.SIGTERM  # a process the signal did not reach stopped with the others
        raise Interrupted(signum, f"interrupted by {signal_name(signum)} at step {step}: saved the checkpoint {saved}; "
                                  "go on with --resume latest")
    final = output_dir / "final"
    if accelerator.is_main_process:
        card = {"model_name": Path(config.output_dir).name, "training_section": task.training_section(state)}
        save_final(ema.module, final, card)
        if task.discriminator is not None:  # to continue the GAN later (--init-discriminator)
            discriminator = accelerator.unwrap_model(task.discriminator)
            with writing(f"the discriminator {output_dir / DISCRIMINATOR_FILE}"):
                save_safetensors_atomic(discriminator.state_dict(), output_dir / DISCRIMINATOR_FILE)
        if config.push_to_hub:
            ema.module.push_to_hub(config.push_to_hub, model_card_kwargs=card)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and the process group: last
    return TrainResult(final, model, state)


def save_final(model: torch.nn.Module, final: Path, card: dict[str, str]) -> None:
    """`save_pretrained` of the EMA model into `final` (model card fields `card`), replacing it only when complete."""
    with writing(f"the final model {final}"), atomic_path(final) as tmp:
        model.save_pretrained(tmp, model_card_kwargs=card)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse the flags / config file and train. Returns the exit status."""
    try:
        config = parse_config(argv)
        train(config)
    except Interrupted as stop:  # one line: what was saved, and how to go on
        print(stop, file=sys.stderr)
        return stop.status
    except (ConfigError, CheckpointError, TrainingDiverged, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
