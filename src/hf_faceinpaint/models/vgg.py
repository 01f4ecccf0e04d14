"""VGG16 convolutional stack (Simonyan & Zisserman 2015) for perceptual losses and LPIPS, without torchvision.

`VGG16Features.features` has exactly the layout of `torchvision.models.vgg16().features`, so its state dict keys are
`features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}` and torchvision's `vgg16-397923af.pth` loads into it
(its `classifier.*` keys are ignored). Inputs are always RGB in [-1, 1]; the module converts them to the convention
the weights were trained with (`normalization`):

- ``"imagenet"``: torchvision's ImageNet weights, RGB in [0, 1] minus mean (0.485, 0.456, 0.406) over std
  (0.229, 0.224, 0.225).
- ``"lpips"``: LPIPS's own ScalingLayer on the [-1, 1] input, ``(x - shift) / scale`` with shift (-.030, -.088, -.188)
  and scale (.458, .448, .450). It is the ImageNet normalisation rewritten for [-1, 1] inputs (shift = 2 mean - 1,
  scale = 2 std) and is computed literally so that LPIPS matches `lpips.LPIPS(net="vgg")` operation for operation.
- ``"caffe"``: Caffe-trained weights such as the HED stand-in in ``../shared/weights/vgg16_hed``: BGR, 0-255, minus
  the mean (104.007, 116.669, 122.679) in B, G, R order.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

from ..hub import CheckpointError, load_state_dict_strict, read_state_dict

Normalization = Literal["imagenet", "lpips", "caffe"]

TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision names its weight files after the first hex digits of the file's sha256.
_TORCHVISION_VGG16_SHA256_PREFIX = "397923af"

# torchvision's VGG16 configuration "D": output channels of each conv, "M" = 2x2 max-pool with stride 2.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# Index into `features` of the module whose output each tap is.
TAPS: dict[str, int] = {
    "relu1_2": 3,
    "pool1": 4,
    "relu2_2": 8,
    "pool2": 9,
    "relu3_3": 15,
    "pool3": 16,
    "relu4_3": 22,
    "pool4": 23,
    "relu5_3": 29,
    "pool5": 30,
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (104.007, 116.669, 122.679)

# Every normalisation is `(x[:, order] - shift) / scale` on the RGB input x in [-1, 1].
_PREPROCESS: dict[str, tuple[tuple[int, int, int], tuple[float, ...], tuple[float, ...]]] = {
    # u = (x + 1) / 2; (u - mean) / std = (x - (2 mean - 1)) / (2 std)
    "imagenet": ((0, 1, 2), tuple(2 * m - 1 for m in _IMAGENET_MEAN), tuple(2 * s for s in _IMAGENET_STD)),
    # lpips.pretrained ScalingLayer (lpips/lpips.py), applied to the [-1, 1] input
    "lpips": ((0, 1, 2), (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)),
    # (x + 1) * 127.5 - mean = (x - (mean / 127.5 - 1)) / (1 / 127.5), channels reordered to BGR
    "caffe": ((2, 1, 0), tuple(m / 127.5 - 1 for m in _CAFFE_MEAN_BGR), (1 / 127.5,) * 3),
}


class VGG16Features(nn.Module):
    """The 13 conv3x3 + ReLU layers and 5 max-pools of VGG16, frozen, returning activations at named taps.

    Args:
        normalization: Input convention of the weights: "imagenet", "lpips" or "caffe" (see the module docstring).
        imagenet_weights: Whether the weights are torchvision's ImageNet VGG16 (set by the loaders; used to label
            metrics computed with a stand-in backbone).
    """

    def __init__(self, normalization: Normalization = "imagenet", imagenet_weights: bool = False) -> None:
        super().__init__()
        if normalization not in _PREPROCESS:
            raise ValueError(f"normalization must be one of {get_args(Normalization)}, got {normalization!r}")
        self.normalization = normalization
        self.imagenet_weights = imagenet_weights
        layers: list[nn.Module] = []
        channels = 3
        for item in _CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        order, shift, scale = _PREPROCESS[normalization]
        # Not persistent: the state dict holds exactly torchvision's `features.*` keys.
        self.register_buffer("order", torch.tensor(order), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Convert RGB images in [-1, 1] to the weights' input convention.

        Args:
            x: Images, (B, 3, H, W), RGB in [-1, 1].

        Returns:
            The network input, (B, 3, H, W).
        """
        return (x[:, self.order] - self.shift) / self.scale

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] | list[str] = ("pool1", "pool2", "pool3")) -> list[torch.Tensor]:
        """Run the stack up to the deepest requested tap.

        Args:
            x: Images, (B, 3, H, W), RGB in [-1, 1].
            taps: Names from `TAPS` (relu1_2 ... relu5_3, pool1 ... pool5), in the order the outputs should come.

        Returns:
            One activation per tap, in the order of `taps`; e.g. relu3_3 is (B, 256, H/4, W/4).
        """
        unknown = [name for name in taps if name not in TAPS]
        if unknown or not taps:
            raise ValueError(f"unknown VGG16 taps {unknown}; choose from {list(TAPS)}")
        wanted = {TAPS[name] for name in taps}
        if max(wanted) >= len(self.features):
            deepest = max((name for name, index in TAPS.items() if index < len(self.features)), key=TAPS.get)
            raise ValueError(f"these VGG16 weights stop at {deepest}; taps {list(taps)} need deeper layers")
        out: dict[int, torch.Tensor] = {}
        h = self.preprocess(x)  # (B, 3, H, W)
        for index, layer in enumerate(self.features[: max(wanted) + 1]):
            h = layer(h)
            if index in wanted:
                out[index] = h
        return [out[TAPS[name]] for name in taps]

    @classmethod
    def from_state_dict(
        cls, state_dict: dict[str, torch.Tensor], normalization: Normalization, source: str, imagenet_weights: bool = False
    ) -> VGG16Features:
        """Build the stack from a torchvision-layout state dict (`classifier.*` keys are ignored).

        Args:
            state_dict: Tensors under `features.N.weight` / `features.N.bias`; float16 is cast to float32.
            normalization: Input convention of the weights.
            source: Where the weights came from, named in errors.
            imagenet_weights: Whether these are torchvision's ImageNet VGG16 weights.

        Returns:
            The frozen module in eval mode.

        Raises:
            CheckpointError: A `features` key is missing, mis-shaped or unexpected (naming the keys).
        """
        model = cls(normalization, imagenet_weights=imagenet_weights)
        features = {key: value for key, value in state_dict.items() if not key.startswith("classifier.")}
        indices = [int(key.split(".")[1]) for key in features if key.startswith("features.")]
        if indices and max(indices) < len(model.features) - 2:
            # a truncated stack (e.g. the first 7 convs, all that taps up to pool3 need): keep the layers it covers
            # and the ReLU / max-pool that follow its last conv, so those taps still work and deeper ones fail clearly
            keep = max(indices) + 2
            keep += isinstance(model.features[keep], nn.MaxPool2d)
            model.features = model.features[:keep]
        load_state_dict_strict(model, features, source)
        return model

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, normalization: Normalization, imagenet_weights: bool | None = None
    ) -> VGG16Features:
        """Load weights from a `.safetensors` file or a torch `.pth`/`.pt` state dict (read with weights_only=True).

        Args:
            path: The weights file, in torchvision's key layout.
            normalization: Input convention of the weights ("caffe" for ../shared/weights/vgg16_hed).
            imagenet_weights: Whether the file holds torchvision's ImageNet VGG16; None recognises torchvision's
                `vgg16-397923af.pth` by its sha256.

        Returns:
            The frozen module in eval mode.

        Raises:
            CheckpointError: The file cannot be read or its keys do not match.
        """
        path = Path(path)
        state_dict = read_state_dict(path, "VGG16 weights")
        if imagenet_weights is None:
            imagenet_weights = _sha256(path).startswith(_TORCHVISION_VGG16_SHA256_PREFIX)
        return cls.from_state_dict(state_dict, normalization, str(path), imagenet_weights=imagenet_weights)

    @classmethod
    def from_url(cls, url: str = TORCHVISION_VGG16_URL, normalization: Normalization = "imagenet") -> VGG16Features:
        """Download (or reuse from the torch hub cache) a torchvision-layout state dict.

        Args:
            url: The weights' address; the default is torchvision's ImageNet VGG16, whose hash is checked.
            normalization: Input convention of the weights ("imagenet" or "lpips" for torchvision's).

        Returns:
            The frozen module in eval mode.
        """
        state_dict = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, check_hash=url == TORCHVISION_VGG16_URL, weights_only=True
        )
        return cls.from_state_dict(state_dict, normalization, url, imagenet_weights=url == TORCHVISION_VGG16_URL)


def load_vgg16(weights: str | os.PathLike | None = None, normalization: Normalization = "imagenet") -> VGG16Features:
    """Load VGG16 weights from a file, or torchvision's ImageNet weights from the internet; never random weights.

    Args:
        weights: A weights file (`.safetensors`, `.pth`, `.pt`) in torchvision's layout; None downloads
            `TORCHVISION_VGG16_URL` (or takes it from the torch hub cache).
        normalization: Input convention of the weights ("caffe" for the HED stand-in).

    Returns:
        The frozen module in eval mode.

    Raises:
        CheckpointError: The file does not match, or no file was given and the download failed (e.g. offline).
    """
    if weights is not None:
        return VGG16Features.from_file(weights, normalization)
    try:
        return VGG16Features.from_url(TORCHVISION_VGG16_URL, normalization)
    except CheckpointError:
        raise
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a failed hash check is a RuntimeError
        raise CheckpointError(
            f"could not get torchvision's VGG16 weights from {TORCHVISION_VGG16_URL} ({type(err).__name__}: {err}). "
            "Offline, pass a weights file instead, e.g. --vgg-weights ../shared/weights/vgg16_hed/vgg16_features.safetensors "
            "(a stand-in with Caffe input convention: normalization='caffe'), or a local copy of vgg16-397923af.pth."
        ) from err


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
