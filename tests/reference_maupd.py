"""Shared by the PhyDNet/MAU golden tests and their fixture script (``tools/reference_maupd.py``):
seeded weights and the map from the references' parameter names to ours. Plain torch, no bench.

Seeded weights: the authors' PhyDNet cannot be built narrower than 0.27M parameters (GroupNorm(16)
layers, 49 PhyCell filters of 7x7, a 32-channel latent at least): over 1 MB per fixture. So the
fixtures store no weights but the recipe: a seed and, per reference parameter in order, its name,
shape and range; :func:`seeded_tensors` makes the same float64 values on both sides, and the
stored per-tensor sums catch any drift of the generator.
"""

from __future__ import annotations

import math
import re

import torch

#: Reference (authors' or OpenSTL's) PhyDNet names -> ours; OpenSTL's ``encoder.`` prefix is dropped first.
PHYDNET_RULES = [
    (r"^encoder_E\.c(\d)\.main\.0\.", lambda m: f"encoder.layers.{int(m.group(1)) - 1}.conv."),
    (r"^encoder_E\.c(\d)\.main\.1\.", lambda m: f"encoder.layers.{int(m.group(1)) - 1}.norm."),
    (r"^encoder_E([pr])\.c(\d)\.main\.0\.", lambda m: f"encoder_{_branch(m)}.{int(m.group(2)) - 1}.conv."),
    (r"^encoder_E([pr])\.c(\d)\.main\.1\.", lambda m: f"encoder_{_branch(m)}.{int(m.group(2)) - 1}.norm."),
    (r"^decoder_D([pr])\.upc(\d)\.main\.0\.", lambda m: f"decoder_{_branch(m)}.{int(m.group(2)) - 1}.conv."),
    (r"^decoder_D([pr])\.upc(\d)\.main\.1\.", lambda m: f"decoder_{_branch(m)}.{int(m.group(2)) - 1}.norm."),
    (r"^decoder_D\.upc([12])\.main\.0\.", lambda m: f"decoder.layers.{int(m.group(1)) - 1}.conv."),
    (r"^decoder_D\.upc([12])\.main\.1\.", lambda m: f"decoder.layers.{int(m.group(1)) - 1}.norm."),
    (r"^decoder_D\.upc3\.", lambda m: "decoder.out."),
    (r"^phycell\.cell_list\.0\.F\.conv1\.", lambda m: "phycell.conv1."),
    (r"^phycell\.cell_list\.0\.F\.bn1\.", lambda m: "phycell.norm."),
    (r"^phycell\.cell_list\.0\.F\.conv2\.", lambda m: "phycell.conv2."),
    (r"^phycell\.cell_list\.0\.convgate\.", lambda m: "phycell.gate."),
    (r"^convcell\.cell_list\.(\d+)\.conv\.", lambda m: f"convlstm.{m.group(1)}.conv."),
]

#: Reference MAU names (authors' ``RNN``, OpenSTL's ``MAU_Model``) -> ours.
MAU_RULES = [
    (r"^cell_list\.(\d+)\.", lambda m: f"cells.{m.group(1)}."),
    (r"^encoders\.0\.encoder_t_conv-1\.", lambda m: "encoder.layers.0.conv."),
    (r"^encoders\.(\d+)\.encoder_t\d+\.", lambda m: f"encoder.layers.{m.group(1)}.conv."),
    (r"^decoders\.(\d+)\.c_decoder\d+\.", lambda m: f"decoder.layers.{m.group(1)}.conv."),
    (r"^srcnn\.0\.", lambda m: "decoder.readout."),
]
#: Reference MAU parameters its forward never calls.
MAU_UNUSED = r"^(merge|conv_last_sr)\."


def _branch(m: re.Match) -> str:
    return "phys" if m.group(1) == "p" else "res"


def rename(name: str, model: str) -> str | None:
    """Our name for a reference parameter name (None: unused by the reference's forward)."""
    if model == "mau" and re.match(MAU_UNUSED, name):
        return None
    name = re.sub(r"^encoder\.(?=(encoder_|decoder_))", "", name) if model == "phydnet" else name
    for pattern, repl in PHYDNET_RULES if model == "phydnet" else MAU_RULES:
        match = re.match(pattern, name)
        if match:
            return repl(match) + name[match.end():]
    raise KeyError(f"reference {model} parameter {name!r} has no counterpart in our model")


def value_range(name: str, shape: tuple[int, ...], is_norm: bool) -> tuple[float, float]:
    """Uniform range of a seeded tensor: norm affines near (1, 0), conv weights +-1/sqrt(fan_in), biases +-0.1."""
    if is_norm:
        return (0.75, 1.25) if name.endswith("weight") else (-0.1, 0.1)
    if name.endswith("bias") or len(shape) < 2:
        return (-0.1, 0.1)
    bound = 1.0 / math.sqrt(math.prod(shape[1:]))
    return (-bound, bound)


def seeded_tensors(recipe: dict) -> dict[str, torch.Tensor]:
    """Reference name -> float64 tensor, from ``{"seed", "tensors": [(name, shape, lo, hi, sum)]}``."""
    gen = torch.Generator().manual_seed(int(recipe["seed"]))
    out = {}
    for name, shape, lo, hi, _ in recipe["tensors"]:
        out[name] = torch.rand(tuple(shape), generator=gen, dtype=torch.float64) * (hi - lo) + lo
    return out


def make_recipe(model: torch.nn.Module, seed: int) -> dict:
    """The recipe for ``model``'s parameters in ``named_parameters`` order (the fixture script's side)."""
    norms = {id(p) for m in model.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm))
             for p in m.parameters(recurse=False)}
    entries = [(n, tuple(p.shape), *value_range(n, tuple(p.shape), id(p) in norms), 0.0)
               for n, p in model.named_parameters()]
    values = seeded_tensors({"seed": seed, "tensors": entries})
    return {"seed": seed, "tensors": [(n, s, lo, hi, float(values[n].sum())) for n, s, lo, hi, _ in entries]}


def load_seeded(model: torch.nn.Module, recipe: dict, names: dict[str, str] | None = None) -> None:
    """Copy the seeded values into ``model`` (``names``: reference name -> this model's name)."""
    values = seeded_tensors(recipe)
    for name, _, _, _, total in recipe["tensors"]:
        assert abs(float(values[name].sum()) - total) < 1e-9 * max(1.0, abs(total)), f"generator drift at {name}"
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            target = (names or {}).get(name, name)
            if target is not None:
                params[target].copy_(value)
