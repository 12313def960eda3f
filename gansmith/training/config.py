"""The training configuration: every option with its default, help text and check, and `resolve`, the one
place where a user's options become the frozen config a run trains with.

    options (CLI flags, API, saved config.json) --resolve(data, device, ranks)--> frozen TrainConfig --> Trainer

A `TrainConfig` is plain data: config.json and every checkpoint store it with `to_dict`, so a run can be
reproduced from its folder. What changes while a run trains (the doctor's fixes, rollbacks) is not config but
run state: `training/adjustments.py`. The CLI's flags and --help come from the field metadata below.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Callable

from ..data import SUPPORTED_RES, check_image_options
from ..errors import UserError
from ..losses import LOSSES
from ..models import ARCHITECTURES, DISCRIMINATORS
from ..models.dcgan import SMALL_RES
from ..regularizers import REGULARIZERS
from ..seeds import MAX_SEED
from ..system import amp_by_default, check_device_name, resolve_device
from .augment import auto_policy, parse_policy
from .lr import LR_DECAYS

DEFAULT_KIMG = 200  # the duration when neither --kimg nor --minutes is given
# Options that fix the shape of the networks: a checkpoint only fits a config that agrees on these.
MODEL_SHAPE_KEYS = ("arch", "d_arch", "res", "channels", "z_dim", "width", "d_width", "g_norm", "d_norm", "sn", "mbstd",
                    "pack", "depth", "w_dim", "mapping_layers")


def option(default, help: str, check: tuple[Callable, str] | None = None, choices: Callable | None = None,
           cli: bool = True):
    """A config field: `check` is (predicate, what a valid value is), `choices` a function giving the valid names
    (read when needed, so a registry's later additions count)."""
    return field(default=default, metadata={"help": help, "check": check, "choices": choices, "cli": cli})


def positive(what: str = "positive"):
    return (lambda v: v > 0, what)


def between(lo, hi, what: str):
    return (lambda v: lo <= v <= hi, what)


def arch_names():
    return ("auto",) + ARCHITECTURES.names()


@dataclass(frozen=True)
class TrainConfig:
    data: str = option("builtin:fashion-mnist", "the training images", cli=False)
    out: str = option("runs/gansmith", "the run folder", cli=False)
    # images
    res: int | None = option(None, "image size in pixels [default: from the data, at most 64]",
                             choices=lambda: SUPPORTED_RES)
    channels: int | None = option(None, "1 (grayscale) or 3 (colour) [default: from the data]", choices=lambda: (1, 3))
    fit: str = option("crop", "make non-square images square by center crop or white padding",
                      choices=lambda: ("crop", "pad"))
    # networks
    arch: str = option("auto", "network architecture; auto: progressive for colour images above "
                       f"{SMALL_RES} px, else dcgan", choices=arch_names)
    phase_kimg: float = option(4.0, "progressive: kimg of each fade-in phase and each stable phase", positive())
    z_dim: int = option(128, "size of the latent vector", between(1, 4096, "between 1 and 4096"))
    width: int | None = option(None, "channel width of the networks (the number of scales follows --res)",
                               between(1, 1024, "between 1 and 1024"))
    d_width: int | None = option(None, "channel width of D alone; smaller: a weaker D [default: --width]",
                                 between(1, 1024, "between 1 and 1024"))
    depth: int | None = option(None, "dcgan: extra 3x3 convolutions at every hidden scale of G and D, 0 = classic",
                               between(0, 8, "between 0 and 8 extra layers per scale"))
    g_norm: str = option("bn", "G's normalization: batch norm or per-sample pixel norm", choices=lambda: ("bn", "pixel"))
    d_norm: str = option("auto", "D's normalization (auto: none with --sn or a gradient penalty)",
                         choices=lambda: ("auto", "bn", "none"))
    sn: bool = option(False, "spectral normalization in D")
    mbstd: bool = option(False, "minibatch standard-deviation channel in D (against mode collapse)")
    pack: int = option(1, "PacGAN: D judges this many samples at once (against mode collapse; 1 = off)",
                       between(1, 16, "between 1 and 16 samples"))
    d_arch: str = option("auto", "the discriminator: auto (the architecture's own), projected (frozen pretrained "
                         "EfficientNet-Lite0 features, Projected GAN) or vision-aided (both, half of the loss each)", choices=lambda: ("auto",) + DISCRIMINATORS.names())
    w_dim: int = option(128, "stylegan: size of the intermediate latent w", between(1, 4096, "between 1 and 4096"))
    mapping_layers: int = option(4, "stylegan: layers of the mapping network z -> w", between(1, 16, "between 1 and 16"))
    style_mixing: float = option(0.9, "stylegan: probability of style-mixing regularization per batch",
                                 (lambda v: 0 <= v <= 1, "a probability in [0, 1]"))
    pl_weight: float = option(0.0, "stylegan: path-length regularization weight (StyleGAN2: 2; 0 = off)",
                              (lambda v: v >= 0, "a non-negative weight"))
    # optimization
    loss: str = option("ns", "GAN loss", choices=lambda: LOSSES.names())
    batch: int | None = option(None, "images per step (the global batch with several ranks)",
                               between(1, 65536, "a positive number of images up to 65536"))
    g_lr: float | None = option(None, "generator learning rate", (lambda v: 0 < v < 1, "a learning rate between 0 and 1"))
    d_lr: float | None = option(None, "discriminator learning rate",
                                (lambda v: 0 < v < 1, "a learning rate between 0 and 1"))
    beta1: float | None = option(None, "Adam beta1", (lambda v: 0 <= v < 1, "in [0, 1)"))
    beta2: float | None = option(None, "Adam beta2", (lambda v: 0 <= v < 1, "in [0, 1)"))
    ema: float | None = option(None, "decay of the moving average of G's weights used for sampling, 0 = off",
                               (lambda v: 0 <= v < 1, "a decay in [0, 1) (0 = off)"))
    standing_stats: bool | None = option(None, "sample the EMA with batch-norm statistics recomputed for its weights "
                                         "(BigGAN's standing statistics) instead of those copied from G")
    lr_decay: str = option("none", "learning-rate decay to 0 by the end of the run; late: held, then a cosine over "
                           "the last quarter", choices=lambda: LR_DECAYS)
    # regularizers
    r1: float | None = option(None, "R1 penalty weight gamma on real images (0 = off)",
                              (lambda v: v >= 0, "a non-negative weight"))
    r2: float = option(0.0, "R2 penalty weight on generated images (0 = off; R3GAN uses --r1 and --r2 alike)",
                       (lambda v: v >= 0, "a non-negative weight"))
    r1_every: int = option(16, "apply R1 and R2 every this many steps (lazy regularization)",
                           (lambda v: v >= 1, "at least 1"))
    gp_weight: float = option(10.0, "gradient penalty weight for --loss wgan-gp", (lambda v: v >= 0, "non-negative"))
    label_smooth: float = option(0.0, "one-sided label smoothing: D's target for real images is 1 - this",
                                 (lambda v: 0 <= v < 0.5, "in [0, 0.5)"))
    instance_noise: float = option(0.0, "std of noise added to D's inputs, annealed to 0 over the run",
                                   (lambda v: 0 <= v <= 10, "between 0 and 10"))
    augment: str = option("auto", "DiffAugment: any of translation,cutout,color (or joined by +), none, or auto: "
                          "translation,cutout,color below 200 images, none from there on [default: auto]")
    # balance between G and D
    d_steps: int = option(1, "D updates per G update", between(1, 100, "between 1 and 100"))
    balance: bool = option(False, "adaptive balance: skip D while it wins, extra D steps while it is weak")
    auto_fix: bool = option(False, "let the run doctor apply its remedies (lower a learning rate, turn on "
                            "augmentation ...)")
    # duration: whichever comes first; kimg counts across resumes, minutes only this invocation
    kimg: float | None = option(None, "train until this many thousand images have been shown, counted across resumes "
                                f"[default: {DEFAULT_KIMG} if --minutes is not given]", positive())
    minutes: float | None = option(None, "wall-clock budget of this invocation [default: none, --kimg ends the run]", positive())
    # bookkeeping, in thousands of images shown
    log_every: float = option(1.0, "write metrics every this many kimg", positive("a positive number of kimg"))
    sample_every: float = option(5.0, "write a sample grid every this many kimg", positive("a positive number of kimg"))
    checkpoint_every: float = option(10.0, "write a checkpoint every this many kimg",
                                     positive("a positive number of kimg"))
    keep: int = option(5, "number of periodic checkpoints to keep", (lambda v: v >= 1, "at least 1"))
    report: bool = option(True, "refresh RUN/report.html while training (at most once a minute)")
    eval_every: float | None = option(None, "compute FID/KID every this many kimg and keep checkpoints/best.pt [default: off]",
                                      positive("a positive number of kimg"))
    eval_n: int = option(1000, "images per evaluation during training", (lambda v: v >= 10, "at least 10 images"))
    seed: int = option(0, "random seed (same seed, same run)",
                       between(0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}"))
    device: str = option("auto", "auto, cpu, cuda[:N] or mps")
    amp: bool | None = option(None, "bf16 mixed precision where the hardware has it: GPUs that support it, CPUs with "
                              "AVX512-BF16 [default: on for CPUs with AVX512-BF16, where it was measured faster; else off]")

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


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# The Python types each annotation admits (a bool is not a number here, though Python says it is an int; a path
# object is a string, for the API's data and out).
KINDS = {"int": (int,), "float": (int, float), "str": (str, os.PathLike), "bool": (bool,)}


def check_types(cfg: TrainConfig) -> None:
    """Every value of the type its field declares: what a config read from a file needs before any other check."""
    for name, f in FIELDS.items():
        value, kinds = getattr(cfg, name), f.type.split("|")
        if value is None and "None" in f.type:
            continue
        kind = kinds[0].strip()
        if not isinstance(value, KINDS[kind]) or (isinstance(value, bool) and kind != "bool"):
            raise UserError(f"{flag(name)} must be {'an' if kind == 'int' else 'a'} {kind}, not {value!r}")


def validate(cfg: TrainConfig) -> None:
    """Raise UserError naming the first bad option value: its type, each field's own check, then the combinations."""
    check_types(cfg)
    if not str(cfg.out).strip():
        raise UserError("--out must name a folder, not an empty string")
    check_image_options(cfg.res, cfg.channels, cfg.fit)
    for name, f in FIELDS.items():
        value = getattr(cfg, name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{flag(name)} must be a finite number, not {value}")
        choices = f.metadata["choices"]
        if choices is not None and value not in choices():
            raise UserError(f"{flag(name)} must be one of {', '.join(map(str, choices()))}, not {value!r}")
        check = f.metadata["check"]
        if check is not None and not check[0](value):
            raise UserError(f"{flag(name)} must be {check[1]}, not {value}")
    validate_combinations(cfg)


def validate_combinations(cfg: TrainConfig) -> None:
    def require(ok: bool, msg: str):
        if not ok:
            raise UserError(msg)

    loss = LOSSES.get(cfg.loss)
    penalized = any(r.network == "D" and r.weight(cfg) > 0 for r in REGULARIZERS)
    require(not (cfg.d_norm == "bn" and penalized),
            "--d-norm bn cannot be combined with a gradient penalty (wgan-gp, --r1, --r2): batch norm mixes samples")
    require(cfg.label_smooth == 0 or loss.target_label,
            f"--label-smooth applies to the {' and '.join(s.name for s in LOSSES if s.target_label)} losses, whose D "
            f"has a target label; not to {cfg.loss}")
    if cfg.augment != "auto":
        parse_policy(cfg.augment)  # raises UserError naming an unknown augmentation
    require(not (cfg.balance and loss.balance is None),
            f"--balance does not apply to {cfg.loss}, whose D loss has no fixed scale; use --d-steps")
    require(cfg.batch is None or cfg.batch % cfg.pack == 0, f"--batch {cfg.batch} must be a multiple of --pack {cfg.pack}")
    check_device_name(cfg.device)
    if cfg.arch != "auto":
        refuse_foreign_options(cfg, cfg.arch)
        ARCHITECTURES.get(cfg.arch).check(cfg)


# Values that mean "not used" besides an option's default: no extra layers, no normalization in D.
ALSO_OFF = {"depth": 0, "d_norm": "none"}


def given(cfg: TrainConfig, name: str) -> bool:
    """Whether an option is set to something other than its 'off' value."""
    value = getattr(cfg, name)
    return value not in (None, FIELDS[name].default, ALSO_OFF.get(name))


def options_owned_elsewhere(cfg: TrainConfig, arch: str) -> list[str]:
    """Options given that belong to architectures other than `arch`."""
    mine = ARCHITECTURES.get(arch).owns
    return [flag(o) for spec in ARCHITECTURES if spec.name != arch for o in spec.owns if o not in mine and given(cfg, o)]


def refuse_foreign_options(cfg: TrainConfig, arch: str) -> None:
    foreign = options_owned_elsewhere(cfg, arch)
    if foreign:
        raise UserError(f"--arch {arch} does not use {', '.join(foreign)}: drop {'it' if len(foreign) == 1 else 'them'}")


def auto_arch(cfg: TrainConfig, res: int, channels: int) -> str:
    """--arch auto: progressive growing for colour images above SMALL_RES, DCGAN for smaller or gray images or
    when options only DCGAN has are given."""
    if res > SMALL_RES and channels == 3 and not options_owned_elsewhere(cfg, "progressive"):
        return "progressive"
    return "dcgan"


def resolve(cfg: TrainConfig, res: int, channels: int, world: int = 1, n_images: int | None = None) -> TrainConfig:
    """The frozen config a run trains with: everything the data (its resolution, channels and number of images),
    the architecture's defaults, the device and the number of ranks decide, filled in and checked. Nothing after
    this changes the config."""
    validate(cfg)
    arch = auto_arch(cfg, res, channels) if cfg.arch == "auto" else cfg.arch
    spec = ARCHITECTURES.get(arch)
    refuse_foreign_options(cfg, arch)
    cfg = cfg.replace(arch=arch, res=res, channels=channels)
    unset = {k: v for k, v in spec.defaults(res).items() if getattr(cfg, k) is None}
    cfg = cfg.replace(**unset)
    cfg = cfg.replace(**spec.resolve(cfg))
    device = resolve_device(cfg.device)
    cfg = cfg.replace(d_width=cfg.d_width or cfg.width, device=str(device),
                      augment=resolve_augment(cfg.augment, n_images),
                      kimg=DEFAULT_KIMG if cfg.kimg is None and cfg.minutes is None else cfg.kimg,
                      amp=amp_by_default(device) if cfg.amp is None else cfg.amp)
    validate(cfg)  # a default batch must still fit --pack
    if world > 1 and cfg.batch % world:
        raise UserError(f"--batch {cfg.batch} (the global batch) must be divisible by the {world} ranks")
    if world > 1 and (cfg.batch // world) % cfg.pack:
        raise UserError(f"each rank's share of --batch {cfg.batch} must be a multiple of --pack {cfg.pack}")
    return cfg


def resolve_augment(augment: str, n_images: int | None) -> str:
    """--augment as the run uses it: a policy, or "" for none ("auto" decided by the number of images)."""
    if augment == "auto":
        return auto_policy(n_images)
    return augment if parse_policy(augment) else ""


def default_help(name: str) -> str:
    """'[default: ...]' for an option whose default the architecture decides, from every spec's rows."""
    values: dict = {}
    for spec in ARCHITECTURES:
        rows = [(row.values[name], row.label) for row in spec.rows]
        if len({v for v, _ in rows}) == 1:
            rows = [(rows[0][0], spec.name)]
        for i, (value, label) in enumerate(rows):
            if i + 1 < len(rows) and rows[i + 1][0] == value:
                continue  # "up to 28 px" and "up to 64 px" alike: say only the larger
            values.setdefault(value, []).append(label)
    if len(values) == 1:
        return f"[default: {show(next(iter(values)))}]"
    return "[default: " + "; ".join(f"{show(v)} for {', '.join(labels)}" for v, labels in values.items()) + "]"


def show(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"


def upgrade_saved(saved: dict) -> dict:
    """A resolved config as a run folder or checkpoint stores it, with the keys that older versions did not
    write filled in with what those versions built: D as wide as G (before --d-width), no extra layers
    (before --depth), the EMA sampled with copied statistics (before --standing-stats). Other missing keys take
    their defaults."""
    c = {**TrainConfig().to_dict(), **saved}
    c["d_width"] = c["d_width"] or c["width"]
    c["depth"] = c["depth"] or 0
    c["standing_stats"] = bool(c["standing_stats"])
    c["r1"] = c["r1"] or 0.0
    return c


def check_saved(saved) -> TrainConfig:
    """A resolved config read from a file (a checkpoint's), checked by the rules the CLI applies to options: a file
    that passes its checksum may still come from elsewhere. Raises UserError naming what is wrong."""
    if not isinstance(saved, dict):
        raise UserError(f"its config is not a set of options but {type(saved).__name__}")
    try:
        cfg = TrainConfig.from_saved(saved)
    except (TypeError, ValueError) as e:
        raise UserError(f"its config cannot be read ({e})") from None
    validate(cfg)
    if cfg.arch == "auto" or None in (cfg.res, cfg.channels, cfg.width, cfg.batch):
        raise UserError("its config is not resolved (arch, res, channels, width, batch)")
    return cfg


def shape_differences(saved: dict, new: dict) -> list[str]:
    """The model-shape keys on which a saved config and a newly resolved one disagree, as 'key: a != b'."""
    a, b = upgrade_saved(saved), upgrade_saved(new)
    return [f"{k}: {a[k]} != {b[k]}" for k in MODEL_SHAPE_KEYS if a[k] != b[k]]
