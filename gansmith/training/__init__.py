"""Training: the loop, its step, checkpoints and the run folder."""
from .config import TrainConfig
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
