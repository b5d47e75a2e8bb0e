"""Golden fixtures of the reference implementations and the map from their weights to our models.

The fixtures (``tests/fixtures/reference/*.pt``) are written by ``tools/make_reference_fixtures.py``
from OpenSTL (commit c74deb5) and the original SimVP release (A4Bio/SimVP, commit 4dcd445); see that
script for what each holds. This module is the single place that knows the reference's parameter
names: :func:`reference_to_ours` renames (and, for TAU's layer scales, reshapes) a reference state
dict into ours, and lists the reference parameters that have no counterpart because the reference
never uses them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.spec.registry import DatasetSpec, get_method
from toy_data import toy_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


def load_fixture(name: str) -> dict[str, Any]:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


# --------------------------------------------------------------------------------------------
# Name maps: reference -> ours
# --------------------------------------------------------------------------------------------

# SimVP's encoder/decoder (A4Bio names), shared by SimVP and TAU.
_FRAME = [
    (r"^enc\.enc\.(\d+)\.conv\.conv\.", r"enc.layers.\1.conv."),
    (r"^enc\.enc\.(\d+)\.conv\.norm\.", r"enc.layers.\1.norm."),
    (r"^dec\.dec\.(\d+)\.conv\.conv\.", r"dec.layers.\1.conv."),
    (r"^dec\.dec\.(\d+)\.conv\.norm\.", r"dec.layers.\1.norm."),
    (r"^dec\.readout\.", r"dec.readout."),
]
# SimVP's Inception-UNet (A4Bio Mid_Xnet / OpenSTL MidIncepNet).
_INCEPTION = [
    (r"^hid\.(enc|dec)\.(\d+)\.conv1\.", r"hid.\1.\2.reduce."),
    (r"^hid\.(enc|dec)\.(\d+)\.layers\.(\d+)\.(conv|norm)\.", r"hid.\1.\2.branches.\3.\4."),
]
# One TAU block (OpenSTL TAUSubBlock) -> ours (TAUBlock), relative to the block.
_TAU_BLOCK = {
    "norm1": "norm1",
    "attn.proj_1": "proj_in",
    "attn.spatial_gating_unit.conv0": "tau.sa.dw",
    "attn.spatial_gating_unit.conv_spatial": "tau.sa.dwd",
    "attn.spatial_gating_unit.conv1": "tau.sa.pw",
    "attn.spatial_gating_unit.fc.0": "tau.da.fc1",
    "attn.spatial_gating_unit.fc.2": "tau.da.fc2",
    "attn.proj_2": "proj_out",
    "norm2": "norm2",
    "mlp.fc1": "mlp_in",
    "mlp.dwconv.dwconv": "mlp_dw",
    "mlp.fc2": "mlp_out",
    "layer_scale_1": "scale1",
    "layer_scale_2": "scale2",
}
# Recurrent cells (OpenSTL ConvLSTMCell / SpatioTemporalLSTMCell): conv_*.0 is the convolution,
# conv_*.1 its LayerNorm.
_CELL = [
    (r"^cell_list\.(\d+)\.conv_(x|h|m)\.0\.", r"cells.\1.conv_\2."),
    (r"^cell_list\.(\d+)\.conv_(x|h|m)\.1\.", r"cells.\1.norm_\2."),
    (r"^conv_last\.", r"readout."),
]
_PREDRNN_CELL = [
    (r"^cell_list\.(\d+)\.conv_o\.0\.", r"cells.\1.conv_o."),
    (r"^cell_list\.(\d+)\.conv_o\.1\.", r"cells.\1.norm_o."),
    (r"^cell_list\.(\d+)\.conv_last\.", r"cells.\1.conv_fuse."),
]
#: Reference ConvLSTM parameters its forward never calls (PredRNN's output-gate and fusion convs).
CONVLSTM_UNUSED = r"^cell_list\.\d+\.(conv_o|conv_last)\."


def _tau_translator_map(names: list[str]) -> dict[str, str]:
    """OpenSTL ``hid.enc.{i}.block.*`` / ``hid.enc.{i}.reduction.*`` -> our ``hid.layers.{k}.*``.

    Our translator is one Sequential: block i, followed by its 1x1 reduction where the width changes.
    """
    blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"^hid\.enc\.(\d+)\.", n))})
    has_reduction = {i for i in blocks if any(n.startswith(f"hid.enc.{i}.reduction.") for n in names)}
    out, k = {}, 0
    for i in blocks:
        for ref, ours in _TAU_BLOCK.items():
            out[f"hid.enc.{i}.block.{ref}"] = f"hid.layers.{k}.{ours}"
        k += 1
        if i in has_reduction:
            out[f"hid.enc.{i}.reduction"] = f"hid.layers.{k}"
            k += 1
    return out


def _rename(name: str, rules: list[tuple[str, str]], prefixes: dict[str, str]) -> str | None:
    for pattern, repl in rules:
        if re.match(pattern, name):
            return re.sub(pattern, repl, name)
    for ref, ours in prefixes.items():
        if name == ref or name.startswith(ref + "."):
            return ours + name[len(ref):]
    return None


def reference_names_to_ours(model: str, names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map reference parameter/buffer names to ours. Returns ``(mapping, unused)``.

    ``unused`` are the reference names deliberately left out (ConvLSTM's never-called convolutions);
    any other name without a counterpart raises.
    """
    prefixes: dict[str, str] = {}
    if model == "simvp":
        rules = _FRAME + _INCEPTION
    elif model == "tau":
        rules, prefixes = _FRAME, _tau_translator_map(names)
    elif model == "convlstm":
        rules = _CELL
    elif model == "predrnn":
        rules = _CELL + _PREDRNN_CELL
    else:
        raise KeyError(model)
    mapping, unused = {}, []
    for name in names:
        if model == "convlstm" and re.match(CONVLSTM_UNUSED, name):
            unused.append(name)
            continue
        ours = _rename(name, rules, prefixes)
        if ours is None:
            raise KeyError(f"reference {model} parameter {name!r} has no counterpart in our model")
        mapping[name] = ours
    return mapping, unused


def reference_to_ours(model: str, state: dict[str, torch.Tensor], ours: nn.Module) -> tuple[dict, list[str]]:
    """Rename a reference state dict for our ``ours`` model (float64). Returns ``(state, unused)``."""
    mapping, unused = reference_names_to_ours(model, list(state))
    target = ours.state_dict()
    out = {}
    for ref_name, name in mapping.items():
        if name not in target:
            raise KeyError(f"{ref_name!r} maps to {name!r}, which our {model} model does not have")
        value = state[ref_name]
        if value.is_floating_point():
            value = value.double()
        if value.shape != target[name].shape:
            if value.numel() != target[name].numel() or not name.split(".")[-1].startswith("scale"):
                raise ValueError(f"{ref_name} {tuple(value.shape)} vs our {name} {tuple(target[name].shape)}")
            value = value.reshape(target[name].shape)  # TAU layer scale: (d,) -> (d, 1, 1)
        out[name] = value
    return out, unused


def load_reference(model: str, ours: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load reference weights into ``ours`` (strict: every one of our tensors must be covered)."""
    mapped, unused = reference_to_ours(model, state, ours)
    ours.load_state_dict(mapped, strict=True)
    return unused


# --------------------------------------------------------------------------------------------
# Our models at the fixtures' configurations, built through the registry
# --------------------------------------------------------------------------------------------


def dataset(t_in: int, t_out: int, c: int, h: int, w: int, name: str = "golden") -> DatasetSpec:
    """The fixtures' geometry (``golden``: no per-dataset hyperparameters apply)."""
    return toy_dataset(t_in, t_out, c, h, w, name)


def ours_for(model: str, cfg: dict[str, Any], dataset_name: str = "golden",
             **extra: Any) -> tuple[dict[str, Any], DatasetSpec]:
    """Our hyperparameters and dataset geometry for a fixture's reference ``config`` (``extra``: more overrides)."""
    if model in ("simvp", "tau"):
        data = dataset(cfg["T"], cfg["T"], cfg["C"], cfg["H"], cfg["W"], dataset_name)
        over: dict[str, Any] = {k: cfg[k] for k in ("hid_S", "hid_T", "N_S", "N_T")}
        if model == "simvp":
            over.update(incep_ker=tuple(cfg["incep_ker"]), groups=cfg["groups"])
        else:
            over.update(mlp_ratio=float(cfg["mlp_ratio"]), drop_path=float(cfg["drop_path"]))
            if "alpha" in cfg:
                over["ddr_weight"] = float(cfg["alpha"])
    else:
        widths = set(cfg["num_hidden"])
        assert len(widths) == 1, "our recurrent stacks have one width"
        data = dataset(cfg["pre"], cfg["aft"], cfg["C"], cfg["H"], cfg["W"], dataset_name)
        over = {"num_layers": len(cfg["num_hidden"]), "num_hidden": widths.pop(),
                "filter_size": cfg["filter_size"], "patch_size": cfg["patch_size"]}
    return get_method(model).resolve_hparams(data.name, overrides={**over, **extra}), data


def build_ours(model: str, cfg: dict[str, Any], **extra: Any) -> tuple[nn.Module, dict[str, Any], DatasetSpec]:
    """Our ``model`` at a fixture's ``config`` in float64 (``extra``: further overrides). Returns ``(model, hp, data)``."""
    hp, data = ours_for(model, cfg, **extra)
    torch.manual_seed(0)
    return get_method(model).create_model(data, hp).double(), hp, data


def param_count(model: str, cfg: dict[str, Any]) -> int:
    """Our model's parameter count at a (full-size) reference configuration, built on the meta device."""
    hp, data = ours_for(model, cfg, "mmnist")
    with torch.device("meta"):
        built = get_method(model).create_model(data, hp)
    return sum(p.numel() for p in built.parameters())
