"""GAN training with Accelerate: settings (`config`, `flags`), the loop (`trainer`), the task interface (`task`) and
the model families' tasks (`msl`, `twostage`), their shared steps (`steps`), checkpoints and validation."""

from .config import ConfigError, TrainConfig
from .flags import parse_config
from .trainer import TrainingDiverged, main, train

__all__ = ["ConfigError", "TrainConfig", "TrainingDiverged", "main", "parse_config", "train"]
