"""The training configuration: every option, its default, and its validation.

A `TrainConfig` is plain data. The CLI builds one from flags, the API takes one directly, config.json
and every checkpoint store it with `asdict`, so a run can always be reproduced from its folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..data import SUPPORTED_RES
from ..errors import UserError
from ..losses import LOSSES
from ..models import ARCHS
from .augment import parse_policy
from .lr import LR_DECAYS

# Options that fix the shape of the networks: a checkpoint only fits a config that agrees on these.
MODEL_SHAPE_KEYS = ("arch", "res", "channels", "z_dim", "width", "d_width", "g_norm", "d_norm", "sn", "mbstd", "pack", "depth")


@dataclass
class TrainConfig:
    data: str = "builtin:fashion-mnist"
    out: str = "runs/gansmith"
    # images
    res: int | None = None          # None: chosen from the data
    channels: int | None = None     # None: 1 if all images are grayscale, else 3
    fit: str = "crop"
    # networks
    arch: str = "auto"              # dcgan, progressive (grows from 4x4, fading in blocks), msg (multi-scale) or auto
    phase_kimg: float = 4.0         # progressive: kimg of each fade-in phase and each stable phase
    z_dim: int = 128
    width: int | None = None        # None: the architecture's default (ARCH_DEFAULTS)
    d_width: int | None = None      # D's channel width; None: the same as width (smaller: a weaker D)
    depth: int | None = None        # dcgan: extra 3x3 convolutions at every hidden scale of G and D; None: ARCH_DEFAULTS
    g_norm: str = "bn"              # G's normalization: bn (batch norm) or pixel (per-sample pixel norm)
    d_norm: str = "auto"            # D's normalization: bn, none, or auto (none with --sn or a gradient penalty)
    sn: bool = False                # spectral normalization in D
    mbstd: bool = False             # minibatch standard-deviation channel in D
    pack: int = 1                   # PacGAN: D judges this many samples at once (Lin et al. 2018); 1 = off
    # optimization
    loss: str = "ns"
    batch: int | None = None        # images per step; None: the architecture's default (ARCH_DEFAULTS)
    g_lr: float | None = None       # None: the architecture's default (ARCH_DEFAULTS)
    d_lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    ema: float | None = None        # decay of the moving average of G's weights; 0 = off; None: ARCH_DEFAULTS
    standing_stats: bool | None = None  # sample the EMA with batch-norm statistics recomputed for it; None: ARCH_DEFAULTS
    lr_decay: str = "none"          # none, linear, cosine or late (the last quarter only): to 0 by the end of the run
    # regularizers
    r1: float = 0.0                 # R1 gradient penalty weight gamma; 0 = off
    r1_every: int = 16              # lazy regularization: apply R1 every this many steps
    gp_weight: float = 10.0         # WGAN-GP penalty weight (with --loss wgan-gp)
    label_smooth: float = 0.0       # one-sided label smoothing: real target 1 - this
    instance_noise: float = 0.0     # std of Gaussian noise on D's inputs, annealed to 0 over the run (kimg or minutes)
    augment: str = ""               # DiffAugment policy, e.g. "translation,cutout,color"
    # balance between G and D
    d_steps: int = 1                # D updates per G update
    balance: bool = False           # adaptive: skip D while it wins, extra D steps while it is too weak
    auto_fix: bool = False          # let the run doctor apply its remedies
    # duration: whichever comes first; kimg counts across resumes, minutes only this invocation
    kimg: float | None = None
    minutes: float | None = None
    # bookkeeping, in thousands of images shown
    log_every: float = 1.0
    sample_every: float = 5.0
    checkpoint_every: float = 10.0
    keep: int = 5
    report: bool = True              # refresh RUN/report.html at sample intervals (at most once a minute)
    eval_every: float | None = None  # kimg between FID/KID evaluations (None: never during training)
    eval_n: int = 1000               # generated (and real) images per evaluation
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None          # bf16 mixed precision (GPU, AVX512-BF16 CPU); None: on for CPUs with AVX512-BF16

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_saved(cls, d: dict) -> "TrainConfig":
        return cls.from_dict(upgrade_saved(d))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# Up to this size DCGAN is the default (--arch auto) and uses its "dcgan-small" row below; colour images above
# it grow progressively. Measured on 64 px colour emoji, same CPU time each: DCGAN at width 32 with the
# small-image row beat progressive growing (KID 0.23 vs 0.33 after 5 minutes; benchmarks/results/arch_64px.md,
# time_to_quality.md). Above 64 px nothing has been measured; progressive growing is the established way there.
SMALL_RES = 64
# Up to this size DCGAN adds one 3x3 convolution at every hidden scale of G and D by default (--depth 1): 28 px
# (at 32 px colour it lost, defaults_sweep.md round 6).
TINY_RES = 28
# What an unset --width, --batch, --g-lr, --d-lr, --beta1, --beta2, --ema, --depth and --standing-stats become, per
# architecture; DCGAN up to
# SMALL_RES has its own row, and up to TINY_RES the same row with --depth 1 and batch 16. Each row is measured, not folklore:
# - dcgan <= 64 px: sweeps on Fashion-MNIST 28 px, 5 CPU-minutes per trial (benchmarks/results/defaults_sweep.md):
#   width 32 beats 64 (twice the steps per minute), EMA helps, learning rate 5e-4 instead of 2e-4 helps most;
#   on 64 px emoji, 10 minutes, it scored FID 254 where width 64 at 2e-4 had scored 303 (arch_64px.md).
#   Batch 16 beat 32 and 64 on both data sets (more, noisier steps in the same minutes); on the emoji it took the
#   10-minute FID from 254 to 203 (arch_64px.md, time_to_quality.md). Batch 8 went further on the emoji (5 minutes,
#   bf16: FID 178 vs 195; batch 4: 181) but not on Fashion-MNIST (10 minutes: 27.1 vs 23.5), so 28 px keeps 16
#   (arch_64px.md, defaults_sweep.md round 9; 32 px follows 64 px, unmeasured). EMA 0.99975 beat 0.999 in 10-minute runs
#   (FID 34.8 vs 36.5 and 36.8 vs 37.7 on two seeds, defaults_sweep.md round 4); with the warm-up in ema.py
#   the two are the same average for the first 8,991 steps, so shorter runs do not change.
# - standing statistics (ema.py) at 28 px: Stacked MNIST KL 0.145-0.180 -> 0.115-0.121 on three checkpoints,
#   Fashion-MNIST FID better by 0.8 on average over five checkpoints; at 64 px the emoji FID was worse by 4 on
#   average over four (defaults_sweep.md round 11), so 29-64 px keeps the copied statistics.
# - dcgan at 28 px, depth 1: 10-minute Fashion-MNIST runs, FID 34.8 -> 27.6 (seed 0) and 36.8 -> 27.0 (seed 1)
#   with 0.5x the steps; depth 2 (36.5) is too slow for its gain. At 64 px depth 1 halves the steps and lost
#   (emoji FID 291 vs 203), and on the emoji at 32 px (5 minutes: 197 vs 150), so those keep depth 0
#   (defaults_sweep.md round 6).
# - dcgan above 64 px: Radford et al. 2016.
# - progressive and msg: equalized learning rates keep weights N(0, 1), which needs ProGAN's 1e-3 with betas
#   (0, 0.99) (Karras et al. 2018); at width 16 they cost per image about what DCGAN does at 64 (3x3
#   convolutions at every scale). EMA is off until measured for them.
ARCH_DEFAULTS = {
    "dcgan-small": {"width": 32, "batch": 8, "g_lr": 5e-4, "d_lr": 5e-4, "beta1": 0.5, "beta2": 0.999, "ema": 0.99975,
                    "depth": 0, "standing_stats": False},
    "dcgan": {"width": 64, "batch": 64, "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "ema": 0.0, "depth": 0,
              "standing_stats": False},
    "progressive": {"width": 16, "batch": 64, "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.0, "beta2": 0.99, "ema": 0.0,
                    "depth": 0, "standing_stats": False},
    "msg": {"width": 16, "batch": 64, "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.0, "beta2": 0.99, "ema": 0.0, "depth": 0,
            "standing_stats": False},
}
ARCH_DEFAULTS["dcgan-tiny"] = {**ARCH_DEFAULTS["dcgan-small"], "depth": 1, "batch": 16, "standing_stats": True}


def arch_defaults(arch: str, res: int) -> dict:
    if arch == "dcgan" and res <= SMALL_RES:
        return ARCH_DEFAULTS["dcgan-tiny" if res <= TINY_RES else "dcgan-small"]
    return ARCH_DEFAULTS[arch]


def validate(cfg: TrainConfig) -> None:
    """Raise UserError naming the first bad option value."""
    def require(ok: bool, msg: str):
        if not ok:
            raise UserError(msg)

    require(cfg.res is None or cfg.res in SUPPORTED_RES,
            f"--res {cfg.res} is not supported; choose one of {', '.join(map(str, SUPPORTED_RES))}")
    require(cfg.channels in (None, 1, 3), f"--channels must be 1 or 3, not {cfg.channels}")
    require(cfg.fit in ("crop", "pad"), f"--fit must be crop or pad, not {cfg.fit!r}")
    require(cfg.arch in ARCHS + ("auto",), f"--arch must be one of auto, {', '.join(ARCHS)}, not {cfg.arch!r}")
    require(cfg.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, not {cfg.loss!r}")
    require(cfg.phase_kimg > 0, f"--phase-kimg must be positive, not {cfg.phase_kimg}")
    require(cfg.arch in ("dcgan", "auto") or not uses_dcgan_only_options(cfg),
            f"--arch {cfg.arch} has its own normalization (pixel norm, equalized learning rate, minibatch stddev); "
            "drop --sn/--mbstd/--pack/--depth/--g-norm/--d-norm")
    require(not (cfg.arch == "msg" and "color" in cfg.augment),
            "--arch msg passes all scales as one image to D; use --augment translation,cutout without color")
    require(cfg.g_norm in ("bn", "pixel"), f"--g-norm must be bn or pixel, not {cfg.g_norm!r}")
    require(cfg.d_norm in ("auto", "bn", "none"), f"--d-norm must be auto, bn or none, not {cfg.d_norm!r}")
    require(not (cfg.d_norm == "bn" and (cfg.loss == "wgan-gp" or cfg.r1 > 0)),
            "--d-norm bn cannot be combined with a gradient penalty (wgan-gp, --r1): batch norm mixes samples")
    require(cfg.r1 >= 0, f"--r1 must be a non-negative weight, not {cfg.r1}")
    require(cfg.r1_every >= 1, f"--r1-every must be at least 1, not {cfg.r1_every}")
    require(cfg.gp_weight >= 0, f"--gp-weight must be non-negative, not {cfg.gp_weight}")
    require(0 <= cfg.label_smooth < 0.5, f"--label-smooth must be in [0, 0.5), not {cfg.label_smooth}")
    require(cfg.label_smooth == 0 or cfg.loss in ("ns", "lsgan"),
            f"--label-smooth applies to the ns and lsgan losses, whose D has a target label; not to {cfg.loss}")
    require(cfg.instance_noise >= 0, f"--instance-noise must be non-negative, not {cfg.instance_noise}")
    parse_policy(cfg.augment)  # raises UserError naming an unknown augmentation
    require(1 <= cfg.d_steps <= 100, f"--d-steps must be between 1 and 100, not {cfg.d_steps}")
    require(not (cfg.balance and cfg.loss == "wgan-gp"),
            "--balance does not apply to wgan-gp, whose critic loss has no fixed scale; use --d-steps")
    require(1 <= cfg.z_dim <= 4096, f"--z-dim must be between 1 and 4096, not {cfg.z_dim}")
    require(cfg.width is None or 1 <= cfg.width <= 1024, f"--width must be between 1 and 1024, not {cfg.width}")
    require(cfg.d_width is None or 1 <= cfg.d_width <= 1024, f"--d-width must be between 1 and 1024, not {cfg.d_width}")
    require(cfg.batch is None or 1 <= cfg.batch <= 65536, f"--batch must be a positive number of images, not {cfg.batch}")
    require(cfg.depth is None or 0 <= cfg.depth <= 8, f"--depth must be between 0 and 8 extra layers per scale, not {cfg.depth}")
    require(1 <= cfg.pack <= 16, f"--pack must be between 1 and 16 samples, not {cfg.pack}")
    require(cfg.batch is None or cfg.batch % cfg.pack == 0,
            f"--batch {cfg.batch} must be a multiple of --pack {cfg.pack}")
    for name in ("g_lr", "d_lr"):
        v = getattr(cfg, name)
        require(v is None or 0 < v < 1, f"--{name.replace('_', '-')} must be a learning rate between 0 and 1, not {v}")
    for name in ("beta1", "beta2"):
        v = getattr(cfg, name)
        require(v is None or 0 <= v < 1, f"--{name} must be in [0, 1), not {v}")
    require(cfg.ema is None or 0 <= cfg.ema < 1, f"--ema must be a decay in [0, 1) (0 = off), not {cfg.ema}")
    require(cfg.lr_decay in LR_DECAYS, f"--lr-decay must be one of {', '.join(LR_DECAYS)}, not {cfg.lr_decay!r}")
    require(cfg.kimg is None or cfg.kimg > 0, f"--kimg must be positive, not {cfg.kimg}")
    require(cfg.minutes is None or cfg.minutes > 0, f"--minutes must be positive, not {cfg.minutes}")
    for name in ("log_every", "sample_every", "checkpoint_every"):
        v = getattr(cfg, name)
        require(v > 0, f"--{name.replace('_', '-')} must be a positive number of kimg, not {v}")
    require(cfg.eval_every is None or cfg.eval_every > 0, f"--eval-every must be a positive number of kimg, not {cfg.eval_every}")
    require(cfg.eval_n >= 10, f"--eval-n must be at least 10 images, not {cfg.eval_n}")
    require(cfg.keep >= 1, f"--keep must be at least 1, not {cfg.keep}")
    require(cfg.seed >= 0, f"--seed must be a non-negative integer, not {cfg.seed}")
    require(cfg.device == "auto" or cfg.device.split(":")[0] in ("cpu", "cuda", "mps"),
            f"--device must be auto, cpu, cuda[:N] or mps, not {cfg.device!r}")


def uses_dcgan_only_options(cfg: TrainConfig) -> bool:
    return cfg.sn or cfg.mbstd or cfg.pack > 1 or bool(cfg.depth) or cfg.g_norm != "bn" or cfg.d_norm == "bn"


def auto_arch(cfg: TrainConfig, res: int, channels: int) -> str:
    """--arch auto: progressive growing for colour images above SMALL_RES, DCGAN for smaller or gray images or
    when DCGAN-only options are given."""
    if res > SMALL_RES and channels == 3 and not uses_dcgan_only_options(cfg):
        return "progressive"
    return "dcgan"


def resolve(cfg: TrainConfig, res: int, channels: int) -> TrainConfig:
    """Fill in what the data and the other options decide."""
    arch = auto_arch(cfg, res, channels) if cfg.arch == "auto" else cfg.arch
    d_norm = cfg.d_norm
    if arch != "dcgan":
        d_norm = "none"
    elif d_norm == "auto":
        d_norm = "none" if (cfg.sn or cfg.loss == "wgan-gp" or cfg.r1 > 0) else "bn"
    unset = {k: v for k, v in arch_defaults(arch, res).items() if getattr(cfg, k) is None}
    cfg = cfg.replace(arch=arch, res=res, channels=channels, d_norm=d_norm, **unset)
    cfg = cfg.replace(d_width=cfg.d_width or cfg.width)
    validate(cfg)  # a default batch must still fit --pack
    return cfg


def upgrade_saved(saved: dict) -> dict:
    """A resolved config as a run folder or checkpoint stores it, with the keys that older versions did not
    write filled in with what those versions built: D as wide as G (before --d-width), no extra layers
    (before --depth), the EMA sampled with copied statistics (before --standing-stats). Other missing keys take
    their defaults."""
    c = {**TrainConfig().to_dict(), **saved}
    c["d_width"] = c["d_width"] or c["width"]
    c["depth"] = c["depth"] or 0
    c["standing_stats"] = bool(c["standing_stats"])
    return c


def shape_differences(saved: dict, new: dict) -> list[str]:
    """The model-shape keys on which a saved config and a newly resolved one disagree, as 'key: a != b'."""
    a, b = upgrade_saved(saved), upgrade_saved(new)
    return [f"{k}: {a[k]} != {b[k]}" for k in MODEL_SHAPE_KEYS if a[k] != b[k]]
