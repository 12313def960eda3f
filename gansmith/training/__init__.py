"""Training: the loop, its step, checkpoints and the run folder.

`train` and `TrainConfig` are imported on first use, so that modules which only need a checkpoint or the run
folder (sampling, the report) can import `gansmith.training.checkpoint` without loading the trainer.
"""
from __future__ import annotations

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    if name == "TrainConfig":
        from .config import TrainConfig
        return TrainConfig
    if name in ("TrainResult", "train"):
        from . import loop
        return getattr(loop, name)
    raise AttributeError(f"module 'gansmith.training' has no attribute {name!r}")
