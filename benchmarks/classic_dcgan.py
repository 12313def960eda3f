"""The classic DCGAN recipe, written small and independent of gansmith: the baseline of
time_to_quality.py. BCE loss, Adam(2e-4, beta1 0.5), batch norm in G and D, batch 64, the
pytorch/examples architecture (transposed convolutions from a 1x1 latent) adapted to the resolution.

    python benchmarks/classic_dcgan.py DATA.npz --minutes 10 --out classic.pt [--snapshots 2,5]
DATA.npz holds uint8 images x (N,H,W) or (N,H,W,C); writes G's state dict (+ one per snapshot minute)
and OUT.json with the steps done (in all and at each snapshot).
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

NZ, NGF, NDF = 100, 64, 64


def generator(res: int, nc: int) -> nn.Sequential:
    base = 7 if res % 7 == 0 else 4
    n_up = int(math.log2(res // base))
    ch = [NGF * 2 ** (n_up - 1 - i) for i in range(n_up)]
    layers = [nn.ConvTranspose2d(NZ, ch[0], base, 1, 0, bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU(True)]
    for a, b in zip(ch, ch[1:]):
        layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.ConvTranspose2d(ch[-1], nc, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(res: int, nc: int) -> nn.Sequential:
    base = 7 if res % 7 == 0 else 4
    n_down = int(math.log2(res // base))
    ch = [NDF * 2 ** i for i in range(n_down)]
    layers = [nn.Conv2d(nc, ch[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for a, b in zip(ch, ch[1:]):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers, nn.Conv2d(ch[-1], 1, base, 1, 0, bias=False), nn.Flatten())


def weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def load(path: str) -> torch.Tensor:
    x = np.load(path)["x"]
    x = x[..., None] if x.ndim == 3 else x
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--snapshots", default="", help="comma-separated minutes at which to also save G")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    x = load(a.data)
    res, nc = x.shape[-1], x.shape[1]
    G, D = generator(res, nc), discriminator(res, nc)
    G.apply(weights_init)
    D.apply(weights_init)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    snapshots = sorted(float(s) for s in a.snapshots.split(",") if s)
    start, steps, snapshot_steps = time.monotonic(), 0, {}
    while time.monotonic() - start < a.minutes * 60:
        real = x[torch.randint(0, len(x), (64,))]
        fake = G(torch.randn(64, NZ, 1, 1))
        opt_d.zero_grad()
        loss_d = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(D(fake), torch.ones(64, 1)).backward()
        opt_g.step()
        steps += 1
        while snapshots and time.monotonic() - start >= snapshots[0] * 60:
            snapshot_steps[f"{snapshots[0]:g}"] = steps
            torch.save(G.state_dict(), f"{a.out}.{snapshots.pop(0):g}min")
    torch.save(G.state_dict(), a.out)
    Path(f"{a.out}.json").write_text(json.dumps({"steps": steps, "kimg": steps * 64 / 1000, "minutes": a.minutes,
                                                 "snapshot_steps": snapshot_steps}))
    print(f"{steps} steps in {a.minutes} minutes")


if __name__ == "__main__":
    main()
