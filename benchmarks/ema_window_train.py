"""The EMA's averaging window: train once with gansmith's defaults while tracking extra averages of G's weights
whose warm-up constant K differs (decay min(cap, (1 + step) / (K + step)); the package uses K = 10), so every K
sees the same trajectory. Saves OUT/extra-K{K}.pt, the run's last checkpoint with that average as G_ema; score
them with benchmarks/ema_window_score.py. The extra updates cost about 13 % of the steps.

    python benchmarks/ema_window_train.py DATA OUT MINUTES K1,K2 [FIELD=VALUE ...]   (TrainConfig fields)
"""
import sys
import time
from pathlib import Path

import gansmith.training.trainer as trainer_module
from gansmith.training import TrainConfig, train
from gansmith.training.checkpoint import load_checkpoint, save_checkpoint
from gansmith.training.ema import make_ema


def number_or_text(v: str):
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def main():
    data, out, minutes = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    ks = [int(k) for k in sys.argv[4].split(",")]
    extra = {k: number_or_text(v) for k, v in (a.split("=", 1) for a in sys.argv[5:])}
    averages, cap, steps = {}, [None], [0]
    package_update, package_decay = trainer_module.update_ema, trainer_module.ema_decay

    def decay_remembering_the_cap(decay, step):
        cap[0] = decay
        return package_decay(decay, step)

    def update_with_extra_averages(ema, G, decay):  # wraps the loop's EMA update: the same G after every step
        package_update(ema, G, decay)
        s = steps[0]
        steps[0] += 1
        for K in ks:
            if K not in averages:
                averages[K] = make_ema(G)
            package_update(averages[K], G, min(cap[0], (1 + s) / (K + s)))

    trainer_module.update_ema, trainer_module.ema_decay = update_with_extra_averages, decay_remembering_the_cap
    t0 = time.time()
    result = train(TrainConfig(data=data, out=str(out), minutes=minutes, report=False, seed=0, **extra), progress=False)
    print("trained", steps[0], "steps in", round(time.time() - t0), "s; cap", cap[0], flush=True)
    ckpt = load_checkpoint(result.checkpoint)
    for K, ema in averages.items():
        ckpt["G_ema"] = {k: v.contiguous() for k, v in ema.state_dict().items()}
        save_checkpoint(out / f"extra-K{K}.pt", dict(ckpt))
    print("saved", list(averages), flush=True)


if __name__ == "__main__":
    main()
