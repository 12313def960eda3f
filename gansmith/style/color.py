"""Keeping the content's colours (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer"). Images here are float RGB tensors N x 3 x H x W in pixel units [0, 255].
"""
from __future__ import annotations

import torch

# RGB -> YIQ (NTSC); Y is the luminance, I and Q the chrominance.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _apply(torch.linalg.inv(_RGB_TO_YIQ), image)


def luminance_rgb(image: torch.Tensor) -> torch.Tensor:
    """The luminance as a grey RGB image (what the network sees in luminance-only transfer)."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style image whose luminance has the content's mean and standard deviation (paper, section 3),
    so that luminance-only transfer does not shift the overall brightness."""
    ys, yc = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    y = (ys - ys.mean()) / ys.std().clamp_min(1e-6) * yc.std() + yc.mean()
    return y.expand(-1, 3, -1, -1).contiguous()


def with_content_chrominance(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance combined with the content's I and Q channels."""
    yiq = torch.cat([rgb_to_yiq(result)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 255)


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolour the style image so its colour distribution has the content's mean and covariance (the
    paper's "colour histogram matching", section 2, with the symmetric matrix square root):
    x' = Cc^(1/2) Cs^(-1/2) (x - mu_s) + mu_c."""
    xs, xc = _pixels(style), _pixels(content)
    mu_s, mu_c = xs.mean(1, keepdim=True), xc.mean(1, keepdim=True)
    transform = _sqrtm(_cov(xc)) @ torch.linalg.inv(_sqrtm(_cov(xs)))
    out = transform @ (xs - mu_s) + mu_c
    return out.reshape(style.shape).clamp(0, 255).to(style.dtype)


def _pixels(image: torch.Tensor) -> torch.Tensor:
    return image[0].reshape(3, -1).double()


def _cov(x: torch.Tensor) -> torch.Tensor:
    # A little ridge keeps the inverse square root finite for flat (e.g. grey) images.
    return torch.cov(x) + 1e-3 * torch.eye(3, dtype=x.dtype)


def _sqrtm(c: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(c)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
