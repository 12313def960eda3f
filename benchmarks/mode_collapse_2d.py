"""Mode-collapse benchmark on 2-D Gaussian mixtures (the set-ups of VEEGAN, Srivastava et al. 2017, and
PacGAN, Lin et al. 2018): 8 Gaussians on a ring and 25 on a 5x5 grid, MLP generator and discriminator.

For every configuration and seed: train, draw 2,500 samples and report
- modes covered: mixture components that receive at least MIN_COUNT high-quality samples, and
- high quality: % of samples within 3 standard deviations of their nearest mode's mean.

The defences are the trainer's own pieces: losses and R1 from gansmith.losses, spectral normalization and
the minibatch standard-deviation layer from gansmith.models.layers, the EMA of G from gansmith.training.ema,
the balance policy from gansmith.training.policies.

    python benchmarks/mode_collapse_2d.py --seeds 5 --out benchmarks/results/mode_collapse_2d.md
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from gansmith import losses
from gansmith.models.layers import MinibatchStdDev, maybe_spectral_norm
from gansmith.training.ema import make_ema, update_ema
from gansmith.training.lr import decay_factor
from gansmith.training.policies import BalancePolicy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine  # noqa: E402

N_EVAL = 2500
TOPK_DECAY = 0.99  # per 100 steps, as Sinha et al. decay k per epoch
MIN_COUNT = 20   # a mode counts as covered with at least this many high-quality samples (of 2,500)


# --- data --------------------------------------------------------------------------------------------
def mixture(kind: str) -> tuple[torch.Tensor, float]:
    """Mode means and the common standard deviation."""
    if kind == "ring":  # 8 modes on a circle of radius 2, std 0.02
        a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([2 * a.cos(), 2 * a.sin()], 1).float(), 0.02
    if kind == "grid":  # 25 modes at (-4, -2, 0, 2, 4)^2, std 0.05
        v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(v, v), 0.05
    raise ValueError(kind)


def sample_real(means, std, n, gen):
    idx = torch.randint(len(means), (n,), generator=gen)
    return means[idx] + std * torch.randn(n, 2, generator=gen)


DISTANCE_BANDS = (1, 2, 3, 10)  # in std: where the samples lie, relative to their nearest mode


def score(x: torch.Tensor, means: torch.Tensor, std: float) -> dict:
    """Modes covered, % high quality, and % of samples per distance band (<1, 1-2, 2-3, 3-10, >10 std; a real
    2-D Gaussian puts 39 / 47 / 12.5 / 1.1 / 0 % there)."""
    d = torch.cdist(x, means)
    dist, nearest = d.min(1)
    hq = dist < 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(means))
    band = torch.bucketize(dist / std, torch.tensor(DISTANCE_BANDS, dtype=dist.dtype))
    bands = torch.bincount(band, minlength=len(DISTANCE_BANDS) + 1).float() * 100 / len(x)
    return {"modes": int((counts >= MIN_COUNT).sum()), "hq": 100.0 * hq.float().mean().item(),
            "bands": [round(b, 1) for b in bands.tolist()]}


# --- networks ----------------------------------------------------------------------------------------
class MLPG(nn.Module):
    def __init__(self, z_dim, hidden, layers):
        super().__init__()
        mods, d = [], z_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        mods.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z):
        return self.net(z)


class MLPD(nn.Module):
    """pack: PacGAN (Lin et al. 2018), each verdict on `pack` consecutive samples concatenated."""

    def __init__(self, hidden, layers, sn=False, mbstd=False, pack=1):
        super().__init__()
        self.pack = pack
        mods, d = [], 2 * pack
        for _ in range(layers):
            mods += [maybe_spectral_norm(nn.Linear(d, hidden), sn), nn.LeakyReLU(0.2)]
            d = hidden
        self.body = nn.Sequential(*mods)
        self.mbstd = MinibatchStdDev() if mbstd else None
        self.head = maybe_spectral_norm(nn.Linear(d + int(mbstd), 1), sn)

    def forward(self, x):
        h = self.body(x.reshape(x.shape[0] // self.pack, -1))
        if self.mbstd is not None:  # the image layer, on features seen as N x C x 1 x 1
            h = self.mbstd(h[:, :, None, None]).flatten(1)
        return self.head(h).squeeze(1)


# --- training ----------------------------------------------------------------------------------------
@dataclass
class Setup:
    name: str
    loss: str = "ns"
    steps: int = 2500
    batch: int = 128
    z_dim: int = 2
    g_hidden: int = 128
    d_hidden: int = 128
    layers: int = 3
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    r1: float = 0.0
    sn: bool = False
    mbstd: bool = False
    ema: float = 0.0
    balance: bool = False
    d_steps: int = 1
    lr_decay: str = "none"  # gansmith.training.lr: both learning rates fall to 0 over the run
    pack: int = 1
    topk: float = 1.0  # G learns from this share of its best-scored samples (reached by TOPK_DECAY)
    note: str = ""


def top_k(fake: torch.Tensor, fraction: float) -> torch.Tensor:
    """The `fraction` of D's verdicts on generated samples that score most real: G learns only from those
    (Top-k training, Sinha et al. 2020). Measured here, not adopted by the trainer (mode_collapse_2d.md)."""
    k = max(1, round(fraction * fake.shape[0]))
    return fake if k >= fake.shape[0] else fake.topk(k, dim=0).values


def train_generator(s: Setup, kind: str, seed: int) -> tuple[nn.Module, int]:
    """The trained generator (its EMA when EMA is on) and the number of skipped D steps."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    means, std = mixture(kind)
    G, D = MLPG(s.z_dim, s.g_hidden, s.layers), MLPD(s.d_hidden, s.layers, s.sn, s.mbstd, s.pack)
    G_ema = make_ema(G) if s.ema > 0 else None
    opt_G = torch.optim.Adam(G.parameters(), s.g_lr, betas=s.betas)
    opt_D = torch.optim.Adam(D.parameters(), s.d_lr, betas=s.betas)
    balance = BalancePolicy(s.loss) if s.balance else None
    skipped = 0
    for step in range(s.steps):
        for opt, lr in ((opt_G, s.g_lr), (opt_D, s.d_lr)):
            opt.param_groups[0]["lr"] = lr * decay_factor(s.lr_decay, step / s.steps)
        n_d = balance.d_updates(s.d_steps) if balance else s.d_steps
        skipped += n_d == 0
        for _ in range(n_d):
            real = sample_real(means, std, s.batch, gen)
            with torch.no_grad():
                fake = G(torch.randn(s.batch, s.z_dim, generator=gen))
            loss_d = losses.discriminator_loss(s.loss, D(real), D(fake))
            total = loss_d
            if s.r1 > 0:
                total = total + 0.5 * s.r1 * losses.r1_penalty(D, real)
            opt_D.zero_grad(set_to_none=True)
            total.backward()
            opt_D.step()
        if balance:
            if n_d == 0:  # measure D without updating it, as the trainer does
                with torch.no_grad():
                    real = sample_real(means, std, s.batch, gen)
                    fake = G(torch.randn(s.batch, s.z_dim, generator=gen))
                    loss_d = losses.discriminator_loss(s.loss, D(real), D(fake))
            balance.observe(float(loss_d), step)
        D.requires_grad_(False)
        fake_out = D(G(torch.randn(s.batch, s.z_dim, generator=gen)))
        loss_g = losses.generator_loss(s.loss, top_k(fake_out, max(s.topk, TOPK_DECAY ** (step / 100))))
        opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_G.step()
        D.requires_grad_(True)
        if G_ema is not None:
            update_ema(G_ema, G, s.ema)
    return G_ema or G, skipped


def train_one(s: Setup, kind: str, seed: int) -> dict:
    t0 = time.time()
    G, skipped = train_generator(s, kind, seed)
    with torch.no_grad():
        x = G(torch.randn(N_EVAL, s.z_dim, generator=torch.Generator().manual_seed(99 + seed)))
    out = score(x, *mixture(kind))
    out.update(seconds=time.time() - t0, d_skipped=skipped)
    return out


BASE = Setup("baseline: ns loss, plain MLP D")
SETUPS = {
    "baseline": BASE,
    "r1": replace(BASE, name="+ R1 (gamma 0.1)", r1=0.1),
    "sn": replace(BASE, name="+ spectral norm in D", sn=True),
    "mbstd": replace(BASE, name="+ minibatch std in D", mbstd=True),
    "ema": replace(BASE, name="+ EMA of G (0.99)", ema=0.99),
    "balance": replace(BASE, name="+ balance policy", balance=True),
    "hinge": replace(BASE, name="hinge loss", loss="hinge"),
    "all": replace(BASE, name="R1 + minibatch std + EMA", r1=0.1, mbstd=True, ema=0.99),
    "all-decay": replace(BASE, name="R1 + minibatch std + EMA + cosine lr decay", r1=0.1, mbstd=True, ema=0.99,
                         lr_decay="cosine"),
    "all-late": replace(BASE, name="R1 + minibatch std + EMA + late lr decay (last quarter)", r1=0.1, mbstd=True,
                        ema=0.99, lr_decay="late"),
    "all-late-topk": replace(BASE, name="R1 + minibatch std + EMA + late lr decay + top-k 0.5", r1=0.1,
                             mbstd=True, ema=0.99, lr_decay="late", topk=0.5),
    "all-topk": replace(BASE, name="R1 + minibatch std + EMA + top-k 0.5", r1=0.1, mbstd=True, ema=0.99, topk=0.5),
    "decay": replace(BASE, name="+ cosine lr decay", lr_decay="cosine"),
    "all-ema999": replace(BASE, name="R1 + minibatch std + EMA 0.999", r1=0.1, mbstd=True, ema=0.999),
    "pack2": replace(BASE, name="+ PacGAN2", pack=2),
    "all-pack2": replace(BASE, name="R1 + minibatch std + EMA + PacGAN2", r1=0.1, mbstd=True, ema=0.99, pack=2),
    "all-z16": replace(BASE, name="R1 + minibatch std + EMA, z 16-d", r1=0.1, mbstd=True, ema=0.99, z_dim=16),
    "all-big": replace(BASE, name="R1 + minibatch std + EMA, 4 x 400 units (PacGAN's size)", r1=0.1, mbstd=True,
                       ema=0.99, g_hidden=400, d_hidden=400, layers=4),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0, help="seeds FIRST .. FIRST + SEEDS - 1 (to split a run)")
    p.add_argument("--setups", default=",".join(SETUPS))
    p.add_argument("--mixtures", default="ring,grid")
    p.add_argument("--steps", type=int, default=None, help="override the training steps of every setup")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the markdown table here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    header = ("| mixture | configuration | steps | modes (mean) | modes per seed | HQ % (mean) | HQ % per seed | "
              "seeds at goal | s / seed |\n|---|---|---|---|---|---|---|---|---|")
    cmd = "python benchmarks/mode_collapse_2d.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def write():
        if a.out:
            with open(a.out, "w") as f:
                f.write(f"# Mode collapse on 2-D mixtures\n\nDate: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC  \n"
                        f"Machine: {machine()}  \nCommand: `{cmd}`\n\n" + header + "\n" + "\n".join(rows) + "\n")

    for kind in a.mixtures.split(","):
        n_modes = len(mixture(kind)[0])
        for key in a.setups.split(","):
            s = SETUPS[key] if a.steps is None else replace(SETUPS[key], steps=a.steps)
            results = []
            for seed in range(a.first_seed, a.first_seed + a.seeds):
                results.append(train_one(s, kind, seed))
                print(f"  {kind} {key} seed {seed}: {results[-1]}", file=sys.stderr, flush=True)
            modes = [r["modes"] for r in results]
            hq = [r["hq"] for r in results]
            ok = sum(m == n_modes and h >= 95 for m, h in zip(modes, hq))
            row = (f"| {kind} | {s.name} | {s.steps} | {sum(modes) / len(modes):.1f} / {n_modes} | "
                   f"{' '.join(map(str, modes))} | {sum(hq) / len(hq):.1f} | {' '.join(f'{h:.0f}' for h in hq)} | "
                   f"{ok}/{len(results)} | {sum(r['seconds'] for r in results) / len(results):.0f} |")
            print(row, flush=True)
            rows.append(row)
            write()
    return rows


if __name__ == "__main__":
    main()
