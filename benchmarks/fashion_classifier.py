"""A Fréchet distance that an ImageNet-feature discriminator cannot game: features of a Fashion-MNIST classifier.

    python benchmarks/fashion_classifier.py --generated DIR_OR_NPZ [--n 10000] [--work DIR]
    python benchmarks/fashion_classifier.py --real-train     # the reference point: real train vs real test

FID measures with an ImageNet network; a discriminator built on ImageNet features can move FID without
making the images better (Kynkäänniemi et al. 2023, "The Role of ImageNet Classes in Fréchet Inception
Distance"). This script trains (once; cached in --work, default $GANSMITH_CACHE/fashion-classifier) a small CNN
on the 60,000 Fashion-MNIST training images, reports its test accuracy, and gives the Fréchet distance between
its penultimate features of the 10,000 real test images and of a set of generated 28 px grayscale images
(gansmith.metrics' `fid_from_features` on these features). Data: `apt-get install dataset-fashion-mnist`.

As a module: `fashion_fd(images_uint8_nhwc)` -> {"fd", "accuracy", "n"}.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gansmith.data import load_images
from gansmith.data.arrays import read_idx_images, read_idx_labels
from gansmith.errors import UserError
from gansmith.fileio import atomic_write_bytes, cache_root
from gansmith.images import uint8_to_float
from gansmith.metrics import fid_from_features

DATA = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
EPOCHS, BATCH, LR, SEED = 3, 128, 3e-3, 0
FEATURE_DIM = 256
BATCH_EVAL = 500


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x 28 x 28 x 1 images and uint8 N labels of the "train" or "test" split."""
    images, labels = (DATA / name for name in FILES[split])
    if not images.is_file():
        raise UserError(f"{images} not found: `apt-get install dataset-fashion-mnist`")
    return read_idx_images(images, 2**31), read_idx_labels(labels)


class Classifier(nn.Module):
    """Two conv stages (16 and 32 channels, two 3x3 convs each, max pool) and a 256-d hidden layer."""

    def __init__(self):
        super().__init__()

        def stage(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2)]

        self.body = nn.Sequential(*stage(1, 16), *stage(16, 32), nn.Flatten(),
                                  nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 N x 28 x 28 x 1 -> float N x 1 x 28 x 28 in [-1, 1]."""
    return uint8_to_float(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2))  # a writable copy


def train_classifier(progress: bool = True) -> Classifier:
    """Adam with a cosine schedule; random horizontal flips (clothes are left-right symmetric)."""
    images, labels = fashion_mnist("train")
    x, y = to_input(images), torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(SEED)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), LR)
    steps = EPOCHS * (len(x) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=steps)
    with tqdm(total=steps, desc="training the Fashion-MNIST classifier", disable=not progress) as bar:
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(x)).split(BATCH)[:len(x) // BATCH]:
                xb = x[idx]
                flip = torch.rand(len(xb)) < 0.5
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


def classifier_path(work: Path) -> Path:
    """The cache file, named by the training recipe (architecture and settings), so a changed recipe trains
    afresh."""
    recipe = f"{Classifier()!r} {EPOCHS} {BATCH} {LR} {SEED}"
    return work / f"classifier-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.pt"


def load_classifier(work: Path | None = None, progress: bool = True) -> Classifier:
    path = classifier_path(work or cache_root() / "fashion-classifier")
    model = Classifier()
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    model = train_classifier(progress)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())
    return model


@torch.inference_mode()
def predict(model: Classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x 28 x 28 x 1 -> (float64 N x 256 penultimate features, N predicted classes)."""
    feats, classes = [], []
    for start in range(0, len(images), BATCH_EVAL):
        f = model.features(to_input(images[start:start + BATCH_EVAL]))
        feats.append(f.double().numpy())
        classes.append(model.out(f).argmax(1).numpy())
    return np.concatenate(feats), np.concatenate(classes)


def fashion_fd(generated: np.ndarray, work: Path | None = None, progress: bool = True) -> dict:
    """Fréchet distance between the classifier's features of the real test set and of `generated`
    (uint8 N x 28 x 28 x 1), with the classifier's test accuracy."""
    if generated.shape[1:] != (28, 28, 1):
        raise UserError(f"expected 28 x 28 grayscale images, got shape {generated.shape[1:]}")
    model = load_classifier(work, progress)
    test_images, test_labels = fashion_mnist("test")
    real_feats, predicted = predict(model, test_images)
    fake_feats, _ = predict(model, generated)
    return {"fd": fid_from_features(real_feats, fake_feats), "accuracy": float((predicted == test_labels).mean()),
            "n_real": len(real_feats), "n": len(fake_feats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--generated", help="a folder of images or an .npz (array x), 28 px grayscale")
    source.add_argument("--real-train", action="store_true", help="use real training images (a reference point)")
    parser.add_argument("--n", type=int, default=10000, help="use at most this many images")
    parser.add_argument("--work", type=Path, help="where the trained classifier is cached")
    args = parser.parse_args()
    try:
        if args.real_train:
            images = fashion_mnist("train")[0]
            images = images[np.random.default_rng(SEED).permutation(len(images))[:args.n]]
        else:
            images = load_images(args.generated, res=28, channels=1, max_images=args.n, progress=False).numpy()
        result = fashion_fd(images, args.work)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"classifier test accuracy {result['accuracy']:.4f}; Fréchet distance {result['fd']:.3f} "
          f"({result['n']} images vs {result['n_real']} real test images)")


if __name__ == "__main__":
    main()
