"""Evaluation during training (--eval-every) and for sweeps: FID/KID of a generator against the data."""
from __future__ import annotations

import warnings

from ..generate import generate_images
from .checkpoint import save_checkpoint
from .run import RunFolder, log

EVAL_SEED = 2**31 - 1  # generated images for evaluation come from their own fixed seed


def evaluate_generator(G, data, n: int, device="cpu") -> dict:
    """FID and KID of n images from G (its own fixed seed) against n images of the data."""
    from ..metrics import evaluate  # the Inception network is heavy: imported when first evaluating
    was_training = G.training
    G.eval()
    fake = generate_images(G, n, seed=EVAL_SEED, device=device)
    G.train(was_training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-n FID warning is for one-off evaluations; KID is logged beside it
        return evaluate(data, fake, ("fid", "kid"), n=n)


def evaluate_during_training(trainer, data, run: RunFolder) -> dict:
    """FID/KID of the generator `gansmith eval` would load now; keeps checkpoints/best.pt by FID (DCGAN often
    gets worse late). Returns the numbers for the next log record."""
    from ..metrics.kid import kid_text
    result = evaluate_generator(trainer.evaluation_generator(), data, trainer.cfg.eval_n, trainer.device)
    log(f"step {trainer.step}: FID {result['fid']:.2f} (n={result['n_fake']}), "
        f"KID {kid_text(result['kid'], result['kid_std'], 4)}")
    if trainer.doctor.note_fid(result["fid"]):
        save_checkpoint(run.checkpoints / "best.pt", trainer.state_dict())
    return {k: result[k] for k in ("fid", "kid", "kid_std")}
