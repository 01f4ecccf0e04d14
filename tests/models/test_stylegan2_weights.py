"""Loading pretrained StyleGAN2 weights: rosinality .pt checkpoints, NVlabs network pickles (read by the restricted
unpickler, never executing anything) and this project's .safetensors; bad files fail with clear errors.

The NVlabs pickle is built the way stylegan2-ada-pytorch writes one: `pickle.dump({'G', 'D', 'G_ema', ...})` of
modules decorated by `torch_utils.persistence.persistent_class`, whose `__reduce__` emits
`_reconstruct_persistent_obj({type, version, module_src, class_name, state})`. The stub modules below mirror
stylegan2-ada-pytorch's `training/networks.py` (names, shapes, attributes such as the np.float64 gains); the fake
`torch_utils.persistence` and `dnnlib.util` modules exist in sys.modules only during these tests.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_faceinpaint import CheckpointError
from hf_faceinpaint.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from hf_faceinpaint.models.stylegan2_weights import (
    load_stylegan2,
    load_stylegan2_generator,
    read_nvlabs_pickle,
    save_stylegan2,
)


@pytest.fixture
def nvlabs_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Register fake `torch_utils.persistence` and `dnnlib.util`; returns a marker file that the pickled module
    source would create if anything executed it."""
    marker = tmp_path / "module_src_was_executed"
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> None:
        raise AssertionError("only the loader under test may unpickle these records")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    persistence.module_src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        def __getattr__(self, name: str):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return marker


def persistent_class(cls: type) -> type:
    """NVlabs' decorator: remember the init arguments and pickle as a persistence record carrying the source."""

    class Decorator(cls):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            persistence = sys.modules["torch_utils.persistence"]
            meta = dict(type="class", version=4, module_src=persistence.module_src, class_name=cls.__name__, state=fields[2])
            return persistence._reconstruct_persistent_obj, (meta,), None

    Decorator.__name__ = cls.__name__
    return Decorator


def setup_filter() -> torch.Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


@persistent_class
class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1, bias_init: float = 0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init)) + 0.1 * torch.randn(out_features))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier


@persistent_class
class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers, self.w_avg_beta = z_dim, c_dim, w_dim, num_ws, num_layers, 0.995
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(w_dim, w_dim, activation="lrelu", lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.randn([w_dim]))


@persistent_class
class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1, conv_clamp=None) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation, self.conv_clamp = resolution, up, True, "lrelu", conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.padding = 1
        self.act_gain = np.sqrt(2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.randn([]))
        self.bias = nn.Parameter(torch.randn([out_channels]))


@persistent_class
class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp=None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.randn([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels)


@persistent_class
class SynthesisBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, is_last: bool,
        architecture: str = "skip", conv_clamp=None,
    ) -> None:
        super().__init__()
        self.in_channels, self.w_dim, self.resolution, self.img_channels, self.is_last = in_channels, w_dim, resolution, 3, is_last
        self.architecture, self.use_fp16, self.channels_last = architecture, False, False
        self.register_buffer("resample_filter", setup_filter())
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, 3, w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1


@persistent_class
class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, channel_base: int, channel_max: int, **block_kwargs) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, 3
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, res == img_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)


@persistent_class
class Generator(nn.Module):
    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int, mapping_kwargs=None,
        synthesis_kwargs=None,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, c_dim, w_dim, img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)


@persistent_class
class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))


def nvlabs_generator(resolution: int = 16, conv_clamp=None, architecture: str = "skip") -> nn.Module:
    util = sys.modules["dnnlib.util"]
    return Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3, mapping_kwargs=util.EasyDict(num_layers=2),
        synthesis_kwargs=util.EasyDict(channel_base=128, channel_max=16, conv_clamp=conv_clamp, architecture=architecture),
    )


def write_network_pickle(path: Path, g_ema: nn.Module, protocol: int = 4) -> None:
    util = sys.modules["dnnlib.util"]
    data = {"G": nvlabs_generator(g_ema.img_resolution), "D": Discriminator(), "G_ema": g_ema, "augment_pipe": None,
            "training_set_kwargs": util.EasyDict(path="ffhq.zip", resolution=g_ema.img_resolution)}
    path.write_bytes(pickle.dumps(data, protocol=protocol))


# ---- NVlabs' forward pass, written out from stylegan2-ada-pytorch (networks.py, conv2d_resample.py) -------------


def fir(x: torch.Tensor, f: torch.Tensor, up: int, pad: tuple[int, int], gain: float) -> torch.Tensor:
    """upfirdn2d: zero insertion, padding, then convolution with the filter (flip_filter=False)."""
    if up > 1:
        zeros = x.new_zeros(*x.shape[:2], x.shape[2] * up, x.shape[3] * up)
        zeros[..., ::up, ::up] = x
        x = zeros
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    kernel = (f * gain).flip(0, 1)[None, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(x, kernel, groups=x.shape[1])


def fully_connected(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x @ (layer.weight * layer.weight_gain).t() + layer.bias * layer.bias_gain
    return F.leaky_relu(x, 0.2) * np.sqrt(2) if layer.activation == "lrelu" else x


def modulated_conv(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool, up: int, f: torch.Tensor) -> torch.Tensor:
    """modulated_conv2d with fused_modconv, one sample at a time; conv2d_resample's up=2 path for up=2."""
    w = weight[None] * styles[:, None, :, None, None]  # [NOIkk]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    out = []
    for sample, kernel in zip(x, w):
        if up == 1:
            out.append(F.conv2d(sample[None], kernel, padding=kernel.shape[-1] // 2))
        else:  # px0 = 1 + (4 + 2 - 1) // 2 - (3 - 1) = 1, px1 = 1 + (4 - 2) // 2 - (3 - 2) = 1
            y = F.conv_transpose2d(sample[None], kernel.transpose(0, 1), stride=2)
            out.append(fir(y, f, up=1, pad=(1, 1), gain=4))
    return torch.cat(out)


def nvlabs_synthesis(synthesis: nn.Module, ws: torch.Tensor) -> torch.Tensor:
    w_idx, x, img = 0, None, None
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        w_iter = iter(ws.narrow(1, w_idx, block.num_conv + block.num_torgb).unbind(dim=1))
        w_idx += block.num_conv
        layers = [block.conv1] if block.in_channels == 0 else [block.conv0, block.conv1]
        if block.in_channels == 0:
            x = block.const[None].repeat(ws.shape[0], 1, 1, 1)
        for layer in layers:
            styles = fully_connected(layer.affine, next(w_iter))
            x = modulated_conv(x, layer.weight, styles, True, layer.up, layer.resample_filter)
            x = x + layer.noise_const * layer.noise_strength  # noise_mode="const"
            x = F.leaky_relu(x + layer.bias[None, :, None, None], 0.2) * layer.act_gain
            if layer.conv_clamp is not None:
                x = x.clamp(-layer.conv_clamp, layer.conv_clamp)
        if img is not None:  # upsample2d: padding (4 + 2 - 1) // 2 = 2 and (4 - 2) // 2 = 1, gain 4
            img = fir(img, block.resample_filter, up=2, pad=(2, 1), gain=4)
        rgb = block.torgb
        y = modulated_conv(x, rgb.weight, fully_connected(rgb.affine, next(w_iter)) * rgb.weight_gain, False, 1, None)
        y = y + rgb.bias[None, :, None, None]
        if rgb.conv_clamp is not None:
            y = y.clamp(-rgb.conv_clamp, rgb.conv_clamp)
        img = y if img is None else img + y
    return img


# ---- NVlabs pickles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_nvlabs_pickle_matches_nvlabs_forward(nvlabs_modules: Path, tmp_path: Path, protocol: int, conv_clamp) -> None:
    g_ema = nvlabs_generator(conv_clamp=conv_clamp)
    write_network_pickle(tmp_path / "network.pkl", g_ema, protocol)
    config, state = load_stylegan2(tmp_path / "network.pkl")
    assert config == StyleGAN2Config(resolution=16, style_dim=8, n_mlp=2, channel_base=128, channel_max=16, conv_clamp=conv_clamp)
    generator = load_stylegan2_generator(tmp_path / "network.pkl")  # strict: every key present and used
    assert torch.equal(state["convs.0.conv.weight"][0], g_ema.synthesis.b8.conv0.weight.detach())
    assert torch.equal(generator.latent_avg, g_ema.mapping.w_avg)
    ws = torch.randn(2, g_ema.num_ws, 8)
    with torch.no_grad():
        torch.testing.assert_close(generator(ws), nvlabs_synthesis(g_ema.synthesis, ws), rtol=1e-4, atol=1e-4)
        z = torch.randn(3, 8)
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for index in range(2):
            x = fully_connected(getattr(g_ema.mapping, f"fc{index}"), x)
        torch.testing.assert_close(generator.mapping(z), x)
    assert not nvlabs_modules.exists(), "the pickled module source was executed"


def test_pickle_is_read_without_nvlabs_modules(nvlabs_modules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_network_pickle(tmp_path / "network.pkl", nvlabs_generator())
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        monkeypatch.delitem(sys.modules, name)  # a user's machine has no NVlabs code
    networks = read_nvlabs_pickle(tmp_path / "network.pkl")
    assert {networks["G_ema"].class_name, networks["D"].class_name} == {"Generator", "Discriminator"}
    assert networks["training_set_kwargs"]["resolution"] == 16
    assert load_stylegan2_generator(tmp_path / "network.pkl").config.resolution == 16
    assert not nvlabs_modules.exists()


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",)


def test_pickle_with_other_globals_is_refused(nvlabs_modules: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    g_ema = nvlabs_generator()
    g_ema.synthesis.b4.conv1.extra = Payload(marker)  # smuggled into a module's state
    write_network_pickle(tmp_path / "network.pkl", g_ema)
    with pytest.raises(CheckpointError, match=r"refusing to load global builtins\.exec"):
        load_stylegan2(tmp_path / "network.pkl")
    (tmp_path / "top.pkl").write_bytes(pickle.dumps({"G_ema": Payload(marker)}))
    with pytest.raises(CheckpointError, match="refusing to load global builtins.exec"):
        load_stylegan2(tmp_path / "top.pkl")
    (tmp_path / "module.pkl").write_bytes(pickle.dumps({"G_ema": torch.nn.Linear(2, 2)}))
    with pytest.raises(CheckpointError, match="refusing to load global torch.nn.modules.linear.Linear"):
        load_stylegan2(tmp_path / "module.pkl")
    assert not marker.exists()


def test_unsupported_nvlabs_architectures(nvlabs_modules: Path, tmp_path: Path) -> None:
    write_network_pickle(tmp_path / "orig.pkl", nvlabs_generator(architecture="orig"))
    with pytest.raises(CheckpointError, match="only the 'skip' synthesis architecture"):
        load_stylegan2(tmp_path / "orig.pkl")
    (tmp_path / "d-only.pkl").write_bytes(pickle.dumps({"D": Discriminator()}))
    with pytest.raises(CheckpointError, match="no NVlabs 'G_ema' network"):
        load_stylegan2(tmp_path / "d-only.pkl")


# ---- rosinality .pt and this project's .safetensors ----------------------------------------------------------------


def small_generator() -> StyleGAN2Generator:
    generator = StyleGAN2Generator(StyleGAN2Config(resolution=16, style_dim=8, n_mlp=2, channel_base=128, channel_max=16))
    with torch.no_grad():
        generator.latent_avg.normal_()
    return generator


def test_rosinality_checkpoint_round_trip(tmp_path: Path) -> None:
    generator = small_generator()
    g_ema = {k: v for k, v in generator.state_dict().items() if k != "latent_avg"}
    args = argparse.Namespace(size=16, latent=8, n_mlp=2, channel_multiplier=2)  # rosinality's train.py saves these
    torch.save({"g": g_ema, "d": {}, "g_ema": g_ema, "args": args, "latent_avg": generator.latent_avg}, tmp_path / "ckpt.pt")
    loaded = load_stylegan2_generator(tmp_path / "ckpt.pt")
    assert loaded.config == generator.config
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_rosinality_checkpoint_without_latent_avg(tmp_path: Path) -> None:
    generator = small_generator()
    torch.save({"g_ema": {k: v for k, v in generator.state_dict().items() if k != "latent_avg"}}, tmp_path / "ckpt.pt")
    loaded = load_stylegan2_generator(tmp_path / "ckpt.pt")
    torch.testing.assert_close(loaded.latent_avg, generator.mean_latent())  # estimated from the mapping network


def test_safetensors_conversion_round_trip(tmp_path: Path) -> None:
    generator = small_generator()
    save_stylegan2(generator, tmp_path / "g.safetensors")
    loaded = load_stylegan2_generator(tmp_path / "g.safetensors")
    assert loaded.config == generator.config
    styles = torch.randn(1, generator.n_styles, 8)
    with torch.no_grad():
        assert torch.equal(loaded(styles), generator(styles))


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_stylegan2(tmp_path / "missing.pt")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown StyleGAN2 weights format weights.bin"):
        load_stylegan2(tmp_path / "weights.bin")
    torch.save({"state_dict": {}}, tmp_path / "psp.pt")
    with pytest.raises(CheckpointError, match=r"no 'g_ema' state dict \(found \['state_dict'\]\)"):
        load_stylegan2(tmp_path / "psp.pt")
    generator = small_generator()
    torch.save({"g_ema": generator.state_dict()}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read StyleGAN2 checkpoint"):
        load_stylegan2(tmp_path / "truncated.pt")
    state = {k: v for k, v in generator.state_dict().items() if k not in ("latent_avg", "conv1.noise.weight")}
    torch.save({"g_ema": state, "latent_avg": generator.latent_avg}, tmp_path / "missing-key.pt")
    with pytest.raises(CheckpointError, match="missing keys: conv1.noise.weight"):
        load_stylegan2_generator(tmp_path / "missing-key.pt")
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read StyleGAN2 pickle"):
        load_stylegan2(tmp_path / "garbage.pkl")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not written by save_stylegan2"):
        load_stylegan2(tmp_path / "other.safetensors")
