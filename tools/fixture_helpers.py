"""What the reference-fixture scripts share (``tools/make_reference_fixtures.py`` and the
``tools/reference_*.py`` scripts): the pinned OpenSTL commit, the Adam settings of the three-step
checks, importing reference packages without their ``__init__`` files (a torchvision placeholder),
perturbing normalisation layers off their constant initial values, OpenSTL's recurrent
hyperparameter namespace, the scheduled-sampling mask recorder and the float64 default dtype.

Nothing here is reference code; every script imports the references from local checkouts (see
each script's docstring for the commits and how to run it).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
import types
from types import SimpleNamespace

import torch
from torch import nn

OPENSTL_COMMIT = "c74deb5d4c3da585291f9f18281f3fefdbba3a54"
ADAM_LR = 1e-2
ADAM_STEPS = 3


def stub_torchvision() -> None:
    """Let ``import torchvision...`` succeed with inert placeholders (timm imports it eagerly)."""

    class _Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            child = _Meta(name, (cls,), {})
            setattr(cls, name, child)
            return child

    class _Placeholder(metaclass=_Meta):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchvision is a placeholder in the reference-fixture script")

    class _Module(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            child = _Meta(name, (_Placeholder,), {})
            setattr(self, name, child)
            return child

    class _Loader:
        def create_module(self, spec):
            module = _Module(spec.name)
            module.__path__ = []
            module.__version__ = "0.0.0"
            return module

        def exec_module(self, module):
            pass

    class _Finder:
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "torchvision":
                return importlib.machinery.ModuleSpec(name, _Loader(), is_package=True)
            return None

    sys.meta_path.insert(0, _Finder())


def expose(package: str, *modules: types.ModuleType) -> None:
    """Copy the public names of ``modules`` into the (placeholder) package ``package``."""
    target = sys.modules[package]
    for module in modules:
        for key, value in vars(module).items():
            if not key.startswith("_"):
                setattr(target, key, value)


def perturb_norms(model: nn.Module, gen: torch.Generator) -> None:
    """Move norm affines, BN running stats and layer scales off their constant initial values."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d)):
                if module.weight is not None:
                    module.weight.copy_(1 + 0.5 * (torch.rand(module.weight.shape, generator=gen) - 0.5))
                    module.bias.copy_(0.2 * (torch.rand(module.bias.shape, generator=gen) - 0.5))
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))
        for name, param in model.named_parameters():
            if "layer_scale" in name:
                param.copy_(0.5 + torch.rand(param.shape, generator=gen))


def cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
            for k, v in model.state_dict().items()}


def rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Float32 values (stored compactly), used in float64 by both sides."""
    return torch.rand(*shape, generator=gen)


def init_stats(model: nn.Module) -> dict:
    """Per parameter: numel, mean, std, min, max -- the initialisation's distribution."""
    out = {}
    for name, p in model.named_parameters():
        v = p.detach().double().flatten()
        out[name] = [v.numel(), v.mean().item(), v.std().item() if v.numel() > 1 else 0.0,
                     v.min().item(), v.max().item()]
    return out


def recurrent_hparams(cfg, layer_norm: int, rss: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        in_shape=(cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), patch_size=cfg["patch_size"],
        filter_size=cfg["filter_size"], stride=1, layer_norm=layer_norm, pre_seq_length=cfg["pre"],
        aft_seq_length=cfg["aft"], total_length=cfg["pre"] + cfg["aft"], reverse_scheduled_sampling=rss,
        scheduled_sampling=1, sampling_stop_iter=50000, sampling_changing_rate=0.25, device="cpu",
        r_sampling_step_1=25000, r_sampling_step_2=50000, r_exp_alpha=5000,
    )


class MaskRecorder(nn.Module):
    """Wraps the reference model to keep the scheduled-sampling mask its training_step draws."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.masks = []

    def forward(self, frames, mask, **kwargs):
        self.masks.append(mask.detach().clone())
        return self.inner(frames, mask, **kwargs)


def per_step_mask(flag: torch.Tensor) -> torch.Tensor:
    """(B, S, h, w, c) all-ones/all-zeros slices -> (B, S) float mask."""
    flat = flag.flatten(2)
    assert bool(((flat == flat[..., :1]).all())), "mask is not constant per (sample, step)"
    return flat[..., 0].double()


@contextlib.contextmanager
def float64_default():
    """The reference creates its zero states with ``torch.zeros``: it runs in float64 only under a
    float64 default dtype (the weights are still created in float32, outside this context)."""
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)
