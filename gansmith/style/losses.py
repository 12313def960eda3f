"""The losses of neural style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using CNNs").

Normalization, chosen so that one set of weights works at every image size:
- Gram matrix: G = F F^T / (H W) for features F of shape C x (H W), i.e. the mean over positions of the
  product of two channels. It does not grow with the image, so a style image and a result of different
  sizes are comparable, and so are the pyramid levels of coarse-to-fine.
- Style loss of a layer: the mean over the C x C entries of (G - A)^2, A being the style's Gram matrix.
  (Gatys et al. use 1/(4 C^2 (HW)^2) times the sum of squares of unnormalized Grams, which is 1/4 of this.)
- Content loss of a layer: the mean over C x H x W of (F - P)^2, P being the content's features.
- Total variation: the mean squared difference between neighbouring pixels (pixel units 0-255), both axes.
Every term is a mean, so none of them scales with H x W.

On top of that, `Objective` divides each layer's style loss by mean(A^2) and each content loss by mean(P^2),
making them relative errors. The raw magnitudes differ by 10^5 between VGG layers (and between the Caffe and
torchvision weights); relative errors let equal per-layer weights mean equal importance, for any network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .vgg import VGG19Features


def gram(features: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C x C, normalized by H x W."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (features - target).pow(2).mean()


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    return (gram(features) - target_gram).pow(2).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


@dataclass
class Weights:
    """What the objective adds up: per-layer weights (already multiplied by the global content and style
    weights) and the total-variation weight."""
    content: dict[str, float]
    style: dict[str, float]
    tv: float


def style_targets(model: VGG19Features, styles: list[torch.Tensor], style_blend: list[float],
                  layers, pooling: str = "max", bf16: bool = False) -> dict[str, torch.Tensor]:
    """The blended Gram matrix of each style layer: computed once per size and reused for every evaluation.

    Several styles are blended by their weights (summing to 1) on the Gram targets: for a fixed G,
    sum_s w_s |G - A_s|^2 = |G - sum_s w_s A_s|^2 + a constant, so one blended target gives the same
    gradients at a fraction of the cost.
    """
    targets = {layer: 0.0 for layer in layers}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for style, share in zip(styles, style_blend):
            # one layer at a time: the activations of a print-size style image do not all fit at once
            for layer, f in model.features_of(style, layers, pooling):
                with torch.autocast("cpu", enabled=False):   # Gram sums over all positions: fp32
                    targets[layer] = targets[layer] + share * gram(f.float())
    return targets


def _features(model: VGG19Features, image: torch.Tensor, layers, pooling: str, bf16: bool):
    """VGG features in float32. With `bf16` the network runs under bfloat16 autocast, but the features are
    cast back before any Gram matrix or loss is formed: those sums over many positions need fp32."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = model(image, layers, pooling)
    return {k: v.float() for k, v in features.items()}


class Objective:
    """The weighted sum of content, style and TV losses for one content image and given style targets
    (`style_targets`)."""

    def __init__(self, model: VGG19Features, content: torch.Tensor, style_grams: dict[str, torch.Tensor],
                 weights: Weights, pooling: str = "max", bf16: bool = False):
        self.model, self.weights, self.pooling, self.bf16 = model, weights, pooling, bf16
        self.layers = sorted(set(weights.content) | set(weights.style))
        with torch.no_grad():
            self.content_targets = _features(model, content, weights.content, pooling, bf16)
        self.style_targets = {layer: style_grams[layer] for layer in weights.style}
        self.content_scale = {k: w / _mean_square(self.content_targets[k]) for k, w in weights.content.items()}
        self.style_scale = {k: w / _mean_square(self.style_targets[k]) for k, w in weights.style.items()}

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (differentiable) and each weighted term as a float, keyed 'content/relu4_2',
        'style/relu1_1', ..., 'tv'."""
        features = _features(self.model, image, self.layers, self.pooling, self.bf16)
        terms = {}
        for layer, w in self.content_scale.items():
            terms[f"content/{layer}"] = w * content_loss(features[layer], self.content_targets[layer])
        for layer, w in self.style_scale.items():
            terms[f"style/{layer}"] = w * style_loss(features[layer], self.style_targets[layer])
        terms["tv"] = self.weights.tv * tv_loss(image)
        total = torch.stack(list(terms.values())).sum()
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def evaluate(self, image: torch.Tensor) -> tuple[float, dict[str, float], torch.Tensor]:
        """Total loss, the terms, and the gradient of the total with respect to `image`."""
        x = image.detach().requires_grad_(True)
        total, terms = self(x)
        grad, = torch.autograd.grad(total, x)
        return float(total.detach()), terms, grad


def _mean_square(x: torch.Tensor) -> float:
    return max(float(x.pow(2).mean()), 1e-12)


def summarize(terms: dict[str, float]) -> dict[str, float]:
    """Per-layer terms -> {'content', 'style', 'tv', 'total'}."""
    out = {"content": 0.0, "style": 0.0, "tv": 0.0}
    for key, value in terms.items():
        out[key.split("/")[0]] += value
    out["total"] = sum(out.values())
    return out
