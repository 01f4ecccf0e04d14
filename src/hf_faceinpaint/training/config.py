"""Training settings: one dataclass, filled from a YAML/JSON config file and/or command-line flags (flags win)."""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Optional

from ..losses import ADVERSARIAL_KINDS
from ..masks import MASK_KINDS


class ConfigError(ValueError):
    """A training configuration that cannot run."""


@dataclass
class TrainConfig:
    """Every training setting. Each field is also a `--kebab-case` command-line flag.

    Args:
        model: Preset name of the generator to train (see `hf_faceinpaint.list_presets()`).
        stage: Two-stage presets only: 1 trains the structure stage (pSp encoder into the frozen StyleGAN2),
            2 the texture stage (the structure stage frozen). 0 for MSL presets.
        resolution: Train the preset's architecture at this image size instead of its own (0 = the preset's).
        dataset: Training images: Hub dataset id, Parquet file/glob, image folder or .txt file list.
        output_dir: Where checkpoints, logs, sample grids and the final model go.
        max_steps: Number of optimizer steps (of both D and G) to train for.
        batch_size: Images per process per micro-step (MSL paper: 8; two-stage paper, the default for its
            presets: 2 in stage 1, 1 in stage 2).
        vgg_weights: VGG16 weights file (torchvision `features.N` keys) for the perceptual and style losses;
            None downloads torchvision's ImageNet VGG16 when online.
        vgg_normalization: Input convention of those weights: "imagenet" (torchvision) or "caffe" (BGR, 0-255,
            mean-subtracted; the HED stand-in in ../shared/weights/vgg16_hed).
        stylegan_weights: Stage 1: pretrained StyleGAN2 generator, a rosinality .pt, an NVlabs .pkl or a .safetensors
            from `save_stylegan2`; its architecture replaces the preset's. None = a random generator (pipeline checks
            only; it is frozen, so stage 1 cannot learn faces without pretrained weights).
        id_weights: Stage 1: ArcFace IR-SE50 weights for the identity loss (pSp's model_ir_se50.pth); required when
            w_id > 0.
        lpips_weights: Stage 1: LPIPS v0.1 VGG linear heads (vgg.pth); None finds them in an installed `lpips`
            package. The backbone is the VGG16 of --vgg-weights.
        stage1_checkpoint: Stage 2: the save_pretrained folder of a stage-1 run (its `final`); the model starts from it
            and its structure stage stays frozen. Required when the preset has a structure stage.
        image_column: Column holding the images (Hub / Parquet datasets).
        dataset_split: Split to stream from a Hub training dataset.
        val_dataset: Validation images (same kinds of spec); never carved from the training stream.
        val_split: Split to read from a Hub validation dataset.
        val_count: Number of validation images (the first ones, in order) with fixed seeded masks.
        shuffle_buffer: Size of the streaming shuffle buffer.
        num_workers: DataLoader worker processes per training process.
        mask_kind: Training masks: "irregular", "square", "mixed" or "face" (face parts, thick masks and free-form
            strokes; see `masks.face_mix_mask`) (two-stage default: square, as in its paper).
        mask_buckets: Hole-ratio buckets to draw irregular masks from, e.g. "10-20,20-30"; empty = untargeted.
        mask_specks: Share of the irregular masks' shapes that are clusters of small specks, in [0, 1] (0: strokes
            and blobs only). Small isolated holes occur in the NVIDIA test masks and when users dab out blemishes.
        scale_aug: Share of training images zoomed in by a random factor in [1, 2] (a random crop of the enlarged
            face), so the network also sees faces larger than the frame it trains at.
        prior_weights: The fitted face prior (`scripts/fit_face_prior.py`) for presets with a prior; required for them.
        lr_g: Adam learning rate of the generator (two-stage default: 1e-3 in stage 1, 1e-4 in stage 2).
        lr_d: Adam learning rate of the discriminator.
        beta1: Adam β1 (β2 is 0.999; two-stage stage 1 default: 0.9, pSp's Adam).
        grad_accum: Micro-steps accumulated per optimizer step.
        adversarial: "nsgan" (the paper's eq. 10), "hinge" or "wgan-gp".
        w_rec: λ_rec of eq. 12.
        w_perc: λ_perc of eq. 12.
        w_style: λ_style of eq. 12.
        w_adv: λ_adv of eq. 12.
        w_gp: Gradient-penalty weight for "wgan-gp" (also the two-stage texture critic's).
        w_l2: Two-stage stage 1, L_S: weight of the L2 (mean squared error) term.
        w_lpips: Stage 1: weight of LPIPS.
        w_id: Stage 1: weight of the ArcFace identity loss; 0 trains without --id-weights.
        w_hole: Stage 1: weight of the L1 inside the hole.
        w_valid: Stage 1: weight of the L1 outside the hole.
        w_tex_l1: Stage 2, L_T: weight of the L1 term.
        w_tex_perc: Stage 2: weight of the VGG16 perceptual (L2) term.
        w_tex_adv: Stage 2: weight of the WGAN-GP adversarial term (the critic is always WGAN-GP in stage 2).
        lr_decay: Stage 2: learning rates are multiplied by this every `lr_decay_every` steps (paper: 0.96).
        lr_decay_every: Stage 2: steps between learning-rate decays (paper: 100000).
        ema_decay: Decay of the exponential moving average of the generator's weights.
        mixed_precision: "no", "bf16" or "fp16".
        seed: Seed of the shuffle, masks, flips and initial weights.
        checkpoint_every: Save a resumable checkpoint every N steps (0 = only at the end).
        keep_checkpoints: Keep the last K checkpoints.
        log_every: Log losses every N steps.
        sample_every: Write a PNG grid of masked input / output / ground truth every N steps (0 = never).
        val_every: Validate every N steps (0 = only at the end).
        resume: "latest" or a checkpoint folder to resume from.
        push_to_hub: Hub repo id to push the final EMA generator to.
        cpu: Train on the CPU even if a GPU is present.
    """

    model: str = "msl-tiny-128"
    stage: int = 0
    resolution: int = 0
    dataset: str = ""
    output_dir: str = ""
    max_steps: int = 0
    batch_size: int = 8
    vgg_weights: Optional[str] = None
    vgg_normalization: str = "imagenet"
    stylegan_weights: Optional[str] = None
    id_weights: Optional[str] = None
    lpips_weights: Optional[str] = None
    stage1_checkpoint: Optional[str] = None
    image_column: str = "image"
    dataset_split: str = "train"
    val_dataset: Optional[str] = None
    val_split: str = "validation"
    val_count: int = 64
    shuffle_buffer: int = 1000
    num_workers: int = 0
    mask_kind: str = "irregular"
    mask_buckets: str = ""
    mask_specks: float = 0.0
    scale_aug: float = 0.0
    prior_weights: Optional[str] = None
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    grad_accum: int = 1
    adversarial: str = "nsgan"
    w_rec: float = 1.0
    w_perc: float = 0.05
    w_style: float = 120.0
    w_adv: float = 0.1
    w_gp: float = 10.0
    w_l2: float = 1.0
    w_lpips: float = 0.8
    w_id: float = 0.1
    w_hole: float = 6.0
    w_valid: float = 1.0
    w_tex_l1: float = 100.0
    w_tex_perc: float = 10.0
    w_tex_adv: float = 1.0
    lr_decay: float = 0.96
    lr_decay_every: int = 100000
    ema_decay: float = 0.999
    mixed_precision: str = "no"
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    sample_every: int = 500
    val_every: int = 500
    resume: Optional[str] = None
    push_to_hub: Optional[str] = None
    cpu: bool = False

    def validate(self) -> None:
        """Raise `ConfigError` naming every setting that cannot work."""
        from ..models.registry import list_presets

        problems = []
        if not self.dataset:
            problems.append("--dataset is required")
        if not self.output_dir:
            problems.append("--output-dir is required")
        if self.max_steps <= 0:
            problems.append(f"--max-steps must be positive, got {self.max_steps}")
        if self.batch_size <= 0 or self.grad_accum <= 0:
            problems.append("--batch-size and --grad-accum must be positive")
        if self.model not in list_presets():
            problems.append(f"unknown --model {self.model!r}; presets: {', '.join(list_presets())}")
        if self.adversarial not in ADVERSARIAL_KINDS:
            problems.append(f"--adversarial must be one of {ADVERSARIAL_KINDS}, got {self.adversarial!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            problems.append(f"--mixed-precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.vgg_normalization not in ("imagenet", "caffe"):
            problems.append(f"--vgg-normalization must be imagenet or caffe, got {self.vgg_normalization!r}")
        if self.mask_kind not in MASK_KINDS:
            problems.append(f"--mask-kind must be one of {', '.join(MASK_KINDS)}, got {self.mask_kind!r}")
        if self.mask_kind == "face" and self.mask_buckets:
            problems.append("--mask-buckets does not apply to --mask-kind face")
        if not 0.0 <= self.scale_aug <= 1.0:
            problems.append(f"--scale-aug must lie in [0, 1], got {self.scale_aug}")
        if self.prior_weights is not None and not Path(self.prior_weights).is_file():
            problems.append(f"--prior-weights file {self.prior_weights} does not exist")
        if not 0.0 <= self.mask_specks <= 1.0:
            problems.append(f"--mask-specks must lie in [0, 1], got {self.mask_specks}")
        if self.vgg_weights is not None and not Path(self.vgg_weights).is_file():
            problems.append(f"--vgg-weights file {self.vgg_weights} does not exist")
        if self.model in list_presets():
            problems += self._stage_problems()
        if problems:
            raise ConfigError("bad training configuration:\n  " + "\n  ".join(problems))


    def _stage_problems(self) -> list[str]:
        """What cannot work in the --stage settings and their weights files."""
        from ..models.registry import preset_config
        from ..models.twostage import TwoStageConfig

        architecture = preset_config(self.model)
        if not isinstance(architecture, TwoStageConfig):
            return [f"--stage applies to two-stage presets only, not {self.model}"] if self.stage else []
        if self.stage not in (1, 2):
            return [f"{self.model} trains in two stages: pass --stage 1 (structure) or --stage 2 (texture)"]
        problems = []
        for flag, path in (("--stylegan-weights", self.stylegan_weights), ("--id-weights", self.id_weights),
                           ("--lpips-weights", self.lpips_weights)):
            if path is not None and not Path(path).is_file():
                problems.append(f"{flag} file {path} does not exist")
            elif path is not None and self.stage != 1:
                problems.append(f"{flag} applies to --stage 1 only")
        if self.stage == 1 and not architecture.use_structure_stage:
            problems.append(f"{self.model} has no structure stage (the paper's variant 1): train it with --stage 2")
        if self.stage == 1 and self.w_id > 0 and self.id_weights is None:
            problems.append(
                f"--w-id {self.w_id} needs --id-weights FILE (ArcFace IR-SE50 weights, e.g. pSp's model_ir_se50.pth); "
                "pass --w-id 0 to train without the identity loss"
            )
        if self.stage1_checkpoint is not None:
            if self.stage != 2:
                problems.append("--stage1-checkpoint applies to --stage 2 only")
            elif not (Path(self.stage1_checkpoint) / "config.json").is_file():
                problems.append(f"--stage1-checkpoint {self.stage1_checkpoint} is not a save_pretrained folder (no config.json)")
        elif self.stage == 2 and architecture.use_structure_stage:
            problems.append(
                f"--stage 2 of {self.model} needs --stage1-checkpoint DIR (the `final` folder of its --stage 1 run): "
                "the structure stage is frozen in stage 2, so it must be trained first"
            )
        return problems


# Two-stage paper settings that differ from the MSL defaults, applied by `parse_config` to settings not given.
STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {"batch_size": 2, "lr_g": 1e-3, "beta1": 0.9, "mask_kind": "square"},
    2: {"batch_size": 1, "lr_g": 1e-4, "mask_kind": "square"},
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per `TrainConfig` field (help text from the docstring), plus --config."""
    docs = _field_docs()
    parser = argparse.ArgumentParser(
        description="Train an hf-faceinpaint model (run under `accelerate launch` for several processes)."
    )
    parser.add_argument("--config", help="YAML or JSON file with any of the settings below; flags override it")
    for field in fields(TrainConfig):
        default = field.default if field.default is not MISSING else None
        kind = {"int": int, "float": float}.get(field.type if isinstance(field.type, str) else "", str)
        if field.type == "bool":
            parser.add_argument(_flag(field.name), action="store_true", default=None, help=docs.get(field.name))
        else:
            parser.add_argument(
                _flag(field.name), type=kind, default=None, help=f"{docs.get(field.name, '')} (default: {default})"
            )
    return parser


def _field_docs() -> dict[str, str]:
    """Per-field help text, parsed from the "Args:" section of `TrainConfig`'s docstring."""
    docs: dict[str, str] = {}
    current = None
    for line in (TrainConfig.__doc__ or "").splitlines():
        stripped = line.strip()
        if line.startswith(" " * 8) and not line.startswith(" " * 12) and ":" in stripped:
            current, text = stripped.split(":", 1)
            docs[current] = text.strip()
        elif current and line.startswith(" " * 12):
            docs[current] += " " + stripped
    return docs


def read_config_file(path: str) -> dict[str, Any]:
    """Settings from a .yaml/.yml/.json file; keys may use dashes or underscores."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as err:  # yaml.YAMLError / json.JSONDecodeError, with the file's own message
        raise ConfigError(f"cannot parse config file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    data = {key.replace("-", "_"): value for key, value in data.items()}
    types = {f.name: f.type for f in fields(TrainConfig)}
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"config file {path} has unknown settings: {', '.join(unknown)}")
    return {key: _coerce(key, types[key], value, path) for key, value in data.items()}


def _coerce(key: str, type_name: str, value: Any, path: str) -> Any:
    """Convert a config-file value to the field's type (YAML reads 1e-4 as a string, for example)."""
    if value is None:
        return None
    try:
        if type_name == "int" and not isinstance(value, bool):
            return int(value)
        if type_name == "float" and not isinstance(value, bool):
            return float(value)
        if type_name == "bool" and isinstance(value, bool):
            return value
        if type_name in ("str", "Optional[str]") and isinstance(value, (str, int, float)):
            return str(value)
    except ValueError:
        pass
    raise ConfigError(f"config file {path}: {key} must be {type_name}, got {value!r}")


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Build and validate a `TrainConfig` from a config file (if given) and command-line flags; with --stage, the
    two-stage paper's `STAGE_DEFAULTS` fill the settings neither gives."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    values.update({key: value for key, value in vars(args).items() if key != "config" and value is not None})
    for key, value in STAGE_DEFAULTS.get(values.get("stage", 0), {}).items():
        values.setdefault(key, value)
    try:
        config = TrainConfig(**values)
    except TypeError as err:
        raise ConfigError(str(err)) from err
    config.validate()
    return config

