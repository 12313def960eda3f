"""FID/KID (n = 2,000, latents at seed 7) of checkpoints' EMA generators with copied and with standing batch-norm
statistics (MODES=copied,standing selects), and of G's own weights with --own.

    [MODES=standing] python benchmarks/ema_window_score.py DATA CHECKPOINT [CHECKPOINT ...] [--own]
"""
import os
import sys

from gansmith.data import load_images
from gansmith.generate import generate_images, load_generator
from gansmith.metrics import evaluate


def main():
    data, own = sys.argv[1], "--own" in sys.argv
    modes = os.environ.get("MODES", "copied,standing").split(",")
    real = None
    for ckpt in [a for a in sys.argv[2:] if a != "--own"]:
        rows = [("copied", dict(standing=False)), ("standing", dict(standing=True))]
        rows = [r for r in rows if r[0] in modes] + ([("own", dict(ema=False))] if own else [])
        for name, kwargs in rows:
            G, cfg = load_generator(ckpt, **kwargs)
            if real is None:
                real = load_images(data, res=cfg.res, channels=cfg.channels, fit=cfg.fit, progress=False)
            m = evaluate(real, generate_images(G, 2000, seed=7), metrics="fid,kid", n=2000)
            print(f"{ckpt} {name}: FID {m['fid']:.2f} KID {m['kid']:.4f}", flush=True)


if __name__ == "__main__":
    main()
