"""Training settings: `TrainConfig`, one field per setting (help text and checks in its metadata), the loss weights
grouped per model family. Each leaf field is a `--kebab-case` flag and a key of the flat config files (`flags.py`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import Field, dataclass, field, fields, is_dataclass
from math import inf
from pathlib import Path
from typing import Any

from ..face.draft import DRAFT_PRESETS
from ..losses import ADVERSARIAL_KINDS
from ..masks import MASK_KINDS
from ..models.registry import SHIPPED, list_presets, preset_config
from ..models.twostage import TwoStageConfig


class ConfigError(ValueError):
    """A training configuration that cannot run."""


#: The settings that define a run, stored in each checkpoint: a --resume must match them unless --allow-changed names
#: them (the architecture and the data stream; learning rates, loss weights, masks and step counts may change freely,
#: as a curriculum's next phase does). The model and the stage never change: a checkpoint holds their weights alone.
RUN_SETTINGS = ("model", "stage", "resolution", "dataset", "dataset_split", "image_column", "batch_size", "grad_accum",
                "seed", "shuffle_buffer")
FIXED_SETTINGS = ("model", "stage")
CHANGEABLE_SETTINGS = tuple(name for name in RUN_SETTINGS if name not in FIXED_SETTINGS)


def opt(default: Any, text: str, **checks: Any) -> Any:
    """A setting with its `--help` text and the checks `TrainConfig.validate` applies to it."""
    return field(default=default, metadata={"help": text, **checks})


@dataclass
class MSLWeights:
    """MSL generator loss, eq. 12 of the MSL paper (its weights are the defaults)"""

    adversarial: str = opt("nsgan", "nsgan (the paper's eq. 10), hinge or wgan-gp", choices=ADVERSARIAL_KINDS)
    w_rec: float = opt(1.0, "λ_rec: L1 reconstruction")
    w_perc: float = opt(0.05, "λ_perc: VGG16 perceptual loss")
    w_style: float = opt(120.0, "λ_style: Gram-matrix style loss")
    w_adv: float = opt(0.1, "λ_adv: adversarial loss (0 also skips the discriminator step)")


@dataclass
class StructureWeights:
    """Two-stage stage 1, L_S = L2 + 0.8 LPIPS + 0.1 L_ID + 6 L_hole + L_valid (the paper's weights)"""

    w_l2: float = opt(1.0, "mean squared error")
    w_lpips: float = opt(0.8, "LPIPS")
    w_id: float = opt(0.1, "ArcFace identity loss; 0 trains without --id-weights")
    w_hole: float = opt(6.0, "L1 inside the hole")
    w_valid: float = opt(1.0, "L1 outside the hole")


@dataclass
class TextureWeights:
    """Two-stage stage 2, L_T = 10 L_perc + L_adv + 100 L1 against a WGAN-GP critic (the paper's weights)"""

    w_tex_l1: float = opt(100.0, "L1")
    w_tex_perc: float = opt(10.0, "VGG16 perceptual (L2) loss")
    w_tex_adv: float = opt(1.0, "WGAN-GP adversarial loss")


@dataclass
class DraftWeights:
    """Face draft's refiner: λ_hole L1_hole + L1 (on K×K cell means) + adversarial + perceptual + style (msl-face's)"""

    lowpass: int = opt(4, "K: the L1 losses are taken on K×K cell means (the detail is left to the other losses)", low=1)
    w_draft_hole: float = opt(3.0, "L1 of the hole's cells")
    w_draft_adv: float = opt(1.0, "hinge adversarial loss against a spectral-norm patch discriminator")
    w_draft_perc: float = opt(0.25, "VGG16 perceptual loss (eq. 7 of the MSL paper); 0 trains without --vgg-weights")
    w_draft_style: float = opt(0.0, "Gram-matrix style loss (eqs. 8-9)")


def architecture_config(name: str) -> Any:
    """The architecture `--model` names: a network preset (`list_presets()`) or a face draft's (`DRAFT_PRESETS`)."""
    return DRAFT_PRESETS[name] if name in DRAFT_PRESETS else preset_config(name)


def model_names() -> list[str]:
    """Every name `--model` takes."""
    return sorted([*list_presets(), *DRAFT_PRESETS])


@dataclass
class TrainConfig:
    """Every training setting; `configs/twostage-stage1.yaml` and `-stage2.yaml` hold the two-stage paper's."""

    model: str = opt("msl-tiny-128", "preset to train: a network (`hf_faceinpaint.list_presets()`) or a face draft "
                     "(pca-refiner-128)")
    stage: int = opt(0, "two-stage presets: 1 trains the structure stage, 2 the texture stage; 0 for MSL")
    resolution: int = opt(0, "train the preset's architecture at this image size (0 = the preset's own)", low=0)
    dataset: str = opt("", "training images: Hub dataset id, Parquet file/glob, image folder or .txt list")
    output_dir: str = opt("", "where checkpoints, logs, sample grids and the final model go")
    max_steps: int = opt(0, "optimizer steps (of both D and G) to train for", low=1)
    max_minutes: float = opt(0.0, "stop after this many minutes as if at --max-steps (0 = no time limit)", low=0)
    init_from: str | None = opt(None, "save_pretrained folder to start the model from (for a face draft also a "
                                "pipeline's folder or shipped name, e.g. msl-face)", folder="model.safetensors")
    init_discriminator: str | None = opt(None, "discriminator.safetensors (beside a final/) to start D from", file=True)
    batch_size: int = opt(8, "images per process per micro-step (MSL paper: 8)", low=1)
    grad_accum: int = opt(1, "micro-steps accumulated per optimizer step", low=1)
    vgg_weights: str | None = opt(None, "VGG16 weights (torchvision keys); None downloads them online", file=True)
    vgg_normalization: str = opt("imagenet", "imagenet, or caffe (BGR, 0-255)", choices=("imagenet", "caffe"))
    stylegan_weights: str | None = opt(None, "StyleGAN2 (.pt/.pkl/.safetensors); None = random", file=True, stage=1)
    id_weights: str | None = opt(None, "ArcFace IR-SE50 weights (pSp's model_ir_se50.pth)", file=True, stage=1)
    lpips_weights: str | None = opt(None, "LPIPS v0.1 heads (vgg.pth); None = lpips's", file=True, stage=1)
    stage1_checkpoint: str | None = opt(None, "stage-1 run's final/ to train on", folder="config.json", stage=2)
    prior_weights: str | None = opt(None, "face drafts: the PCA (scripts/fit_face_prior.py) to train a refiner on",
                                    file=True)
    image_column: str = opt("image", "column holding the images (Hub / Parquet datasets)")
    dataset_split: str = opt("train", "split to stream from a Hub training dataset")
    val_dataset: str | None = opt(None, "validation images (same kinds of spec); never taken from the training stream")
    val_split: str = opt("validation", "split to read from a Hub validation dataset")
    val_count: int = opt(64, "validation images (the first ones) with fixed seeded masks", low=1)
    shuffle_buffer: int = opt(1000, "size of the streaming shuffle buffer", low=1)
    num_workers: int = opt(0, "DataLoader worker processes per training process", low=0)
    mask_workers: int = opt(0, "processes drawing the next step's masks (0 = in the training process)", low=0)
    mask_kind: str = opt("irregular", "training masks: irregular, square, mixed or face", choices=MASK_KINDS)
    mask_buckets: str = opt("", "hole-ratio buckets of the irregular masks, e.g. 10-20,20-30 (empty = untargeted)")
    mask_specks: float = opt(0.0, "share of irregular shapes that are clusters of small specks", low=0, high=1)
    scale_aug: float = opt(0.0, "share of images zoomed in by a random factor in [1, 2]", low=0, high=1)
    lr_g: float = opt(1e-4, "Adam learning rate of the generator")
    lr_d: float = opt(1e-4, "Adam learning rate of the discriminator")
    beta1: float = opt(0.5, "Adam β1 (β2 is 0.999)")
    lr_decay: float = opt(0.96, "stage 2: learning rates are multiplied by this every --lr-decay-every steps")
    lr_decay_every: int = opt(100000, "stage 2: steps between learning-rate decays", low=1)
    w_gp: float = opt(10.0, "gradient-penalty weight of WGAN-GP (--adversarial wgan-gp, the stage-2 critic)")
    msl: MSLWeights = field(default_factory=MSLWeights)
    structure: StructureWeights = field(default_factory=StructureWeights)
    texture: TextureWeights = field(default_factory=TextureWeights)
    draft: DraftWeights = field(default_factory=DraftWeights)
    ema_decay: float = opt(0.999, "decay of the exponential moving average of the generator", low=0, high=1)
    mixed_precision: str = opt("no", "no, bf16 or fp16", choices=("no", "bf16", "fp16"))
    seed: int = opt(0, "seed of the shuffle, masks, flips and initial weights")
    checkpoint_every: int = opt(500, "save a resumable checkpoint every N steps (0 = only at the end)", low=0)
    keep_checkpoints: int = opt(3, "keep the last K checkpoints (0 = all)", low=0)
    log_every: int = opt(10, "log losses every N steps", low=1)
    sample_every: int = opt(500, "write a grid of input / output / ground truth every N steps (0 = never)", low=0)
    val_every: int = opt(500, "validate every N steps (0 = only at the end)", low=0)
    resume: str | None = opt(None, "latest, or a checkpoint folder to resume from")
    allow_changed: str = opt("", "run-defining settings a --resume may change, comma-separated, e.g. "
                             f"batch_size,dataset (of {', '.join(CHANGEABLE_SETTINGS)})")
    max_weight: float = opt(1e4, "stop when a trained weight's magnitude exceeds this (0 = no limit)", low=0)
    loss_spike: float = opt(1e3, "stop when a loss exceeds this many times its running median (0 = never)", low=0)
    push_to_hub: str | None = opt(None, "Hub repo id to push the final EMA generator to")
    cpu: bool = opt(False, "train on the CPU even if a GPU is present")

    def flat(self) -> dict[str, Any]:
        """Every setting by field name, the groups' included."""
        return {f.name: getattr(getattr(self, name) if name else self, f.name) for name, f in leaves()}

    def run_settings(self) -> dict[str, Any]:
        """The `RUN_SETTINGS` as they act: the preset's own resolution for 0, a local dataset as an absolute path."""
        values = {name: getattr(self, name) for name in RUN_SETTINGS}
        values["resolution"] = self.resolution or getattr(architecture_config(self.model), "resolution", 0)
        local = Path(self.dataset).expanduser().exists() or any(char in self.dataset for char in "*?[")
        values["dataset"] = os.path.abspath(os.path.expanduser(self.dataset)) if local else self.dataset
        return values

    def changeable(self) -> list[str]:
        """The run-defining settings `--allow-changed` names."""
        return [name.strip() for name in self.allow_changed.split(",") if name.strip()]

    def validate(self) -> None:
        """Raise `ConfigError` naming every setting that cannot work."""
        problems, values = [], self.flat()
        for _, f in leaves():  # the checks in the fields' metadata
            flag, value, check = "--" + f.name.replace("_", "-"), values[f.name], f.metadata
            if "choices" in check and value not in check["choices"]:
                problems.append(f"{flag} must be one of {', '.join(check['choices'])}, got {value!r}")
            low, high = check.get("low", -inf), check.get("high", inf)  # a number's bounds
            if isinstance(value, (int, float)) and not low <= value <= high:
                problems.append(f"{flag} must lie in [{low}, {high}], got {value}")
            if value is not None and check.get("file") and not Path(value).is_file():
                problems.append(f"{flag} file {value} does not exist")
            shipped = f.name == "init_from" and value in SHIPPED
            if value is not None and "folder" in check and not shipped and not (Path(value) / check["folder"]).is_file():
                problems.append(f"{flag} {value} is not a save_pretrained folder (no {check['folder']})")
            if value is not None and "stage" in check and self.stage != check["stage"]:
                problems.append(f"{flag} applies to --stage {check['stage']} only")
        preset = architecture_config(self.model) if self.model in model_names() else None
        two_stage, structured = isinstance(preset, TwoStageConfig), getattr(preset, "use_structure_stage", False)
        problems += [message for bad, message in [
            (not (self.dataset and self.output_dir), "--dataset and --output-dir are required"),
            (preset is None, f"unknown --model {self.model!r}; presets: {', '.join(model_names())}"),
            (self.mask_kind == "face" and bool(self.mask_buckets), "--mask-buckets does not apply to --mask-kind face"),
            (preset and not two_stage and self.stage, f"--stage applies to two-stage presets only, not {self.model}"),
            (two_stage and self.stage not in (1, 2),
             f"{self.model} trains in two stages: pass --stage 1 (structure) or --stage 2 (texture)"),
            (two_stage and self.stage == 1 and not structured,
             f"{self.model} has no structure stage (the paper's variant 1): train it with --stage 2"),
            (two_stage and self.stage == 1 and self.structure.w_id > 0 and self.id_weights is None,
             f"--w-id {self.structure.w_id} needs --id-weights FILE (ArcFace IR-SE50, e.g. pSp's model_ir_se50.pth); "
             "pass --w-id 0 to train without the identity loss"),
            (structured and self.stage == 2 and self.stage1_checkpoint is None,
             f"--stage 2 of {self.model} needs --stage1-checkpoint DIR (the `final` folder of its --stage 1 run)"),
            (bool(set(self.changeable()) - set(CHANGEABLE_SETTINGS)),
             f"--allow-changed takes names of {', '.join(CHANGEABLE_SETTINGS)}; got {self.allow_changed!r}"),
        ] if bad]
        if problems:
            raise ConfigError("bad training configuration:\n  " + "\n  ".join(problems))


def leaves() -> Iterator[tuple[str, Field]]:
    """(group field name, or "" for `TrainConfig`'s own, field) of every setting."""
    for f in fields(TrainConfig):
        yield from ((f.name, g) for g in fields(f.default_factory)) if is_dataclass(f.default_factory) else [("", f)]
