"""GAN training with Accelerate: configuration, the training loop, checkpoints and validation."""

from .config import ConfigError, TrainConfig, parse_config
from .trainer import TrainingDiverged, main, train

__all__ = ["ConfigError", "TrainConfig", "TrainingDiverged", "main", "parse_config", "train"]
