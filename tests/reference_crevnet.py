"""Shared by the CrevNet golden tests and their fixture script (``tools/reference_crevnet.py``):
seeded weights and running statistics, and the map from the reference's names to ours. Plain
torch, no bench.

The reference's predictor alone is 0.6M parameters per layer at one input channel (its width is
the latent's, 32 channels): the fixtures store a recipe (a seed and, per tensor, its name, shape,
range and sum; :func:`reference_maupd.seeded_tensors` makes the values on both sides), not the
weights. Unlike PhyDNet/MAU's recipe it covers the BatchNorm running statistics too, perturbed away
from (0, 1) so that a swapped mean/variance or a batch statistic used at test time changes outputs.

Names: the reference is ``encoder`` (the authors' ``autoencoder``) and ``frame_predictor`` (their
``zig_rev_predictor``): the authors' script holds them as two objects, OpenSTL v0.3.0's
``CrevNet_Model`` as two attributes with these names. Ours fuses each cell's three gate
convolutions over the same input into one (rows in the reference's order i, f, g), and has no
Dropout(p=0) in the bottleneck (its index shifts the later layers by one).
"""

from __future__ import annotations

import math
import re

import torch
from reference_maupd import seeded_tensors

#: A cell's gate convolutions -> (our fused convolution, block of rows).
GATES = {"in_gate": ("conv_c", 0), "remember_gate": ("conv_c", 1), "cell_gate": ("conv_c", 2),
         "in_gate1": ("conv_m", 0), "remember_gate1": ("conv_m", 1), "cell_gate1": ("conv_m", 2),
         "out_gate": ("conv_o", None), "w1": ("conv_h", None)}


def our_name(name: str) -> tuple[str, int | None]:
    """(our name, row block of a fused gate conv or None) for a reference parameter/buffer name.

    Only the reference's block 0 is built with ``first=True`` (no leading BN/ReLU): its Dropout
    sits at index 4 of the bottleneck, the other blocks' at 6."""
    m = re.match(r"^encoder\.stack\.(\d+)\.bottleneck_block\.(\d+)\.(.+)$", name)
    if m:
        block, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        dropout = 4 if block == 0 else 6
        assert idx != dropout, name
        return f"autoencoder.blocks.{block}.bottleneck.{idx - (idx > dropout)}.{rest}", None
    m = re.match(r"^frame_predictor\.convlstm\.(\d+)\.(\w+)\.(weight|bias)$", name)
    if m:
        conv, part = GATES[m.group(2)]
        return f"predictor.cells.{m.group(1)}.{conv}.{m.group(3)}", part
    m = re.match(r"^frame_predictor\.att\.(\d+)\.0\.(weight|bias)$", name)
    if m:
        return f"predictor.att.{m.group(1)}.{m.group(2)}", None
    raise KeyError(f"reference CrevNet tensor {name!r} has no counterpart in our model")


def value_range(name: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """BN weight near 1, BN bias/mean near 0, variance in (0.5, 1.5); conv weights +-1/sqrt(fan_in), biases +-0.1."""
    if name.endswith("running_var"):
        return (0.5, 1.5)
    if name.endswith("running_mean") or name.endswith("bias"):
        return (-0.1, 0.1)
    if len(shape) == 1:  # BatchNorm weight (every conv weight is 5-D)
        return (0.75, 1.25)
    bound = 1.0 / math.sqrt(math.prod(shape[1:]))
    return (-bound, bound)


def seeded_entries(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The tensors a recipe covers: every parameter and floating buffer (running statistics), in order."""
    return [*model.named_parameters(), *((n, b) for n, b in model.named_buffers() if b.is_floating_point())]


def make_recipe(model: torch.nn.Module, seed: int) -> dict:
    """The recipe for the reference ``model`` (the fixture script's side)."""
    entries = [(n, tuple(t.shape), *value_range(n, tuple(t.shape)), 0.0) for n, t in seeded_entries(model)]
    values = seeded_tensors({"seed": seed, "tensors": entries})
    return {"seed": seed, "tensors": [(n, s, lo, hi, float(values[n].sum())) for n, s, lo, hi, _ in entries]}


def load_reference_values(model: torch.nn.Module, recipe: dict) -> None:
    """Copy the seeded values into the reference model (same names)."""
    values = seeded_tensors(recipe)
    tensors = dict(seeded_entries(model))
    with torch.no_grad():
        for name, value in values.items():
            tensors[name].copy_(value)


def load_into_ours(model: torch.nn.Module, recipe: dict) -> None:
    """Copy the seeded reference values into OUR model (every one of our tensors must be covered once)."""
    values = seeded_tensors(recipe)
    for name, _, _, _, total in recipe["tensors"]:
        assert abs(float(values[name].sum()) - total) < 1e-9 * max(1.0, abs(total)), f"generator drift at {name}"
    ours = dict(seeded_entries(model))
    filled = {n: torch.zeros(t.shape[0], dtype=torch.bool) for n, t in ours.items()}
    with torch.no_grad():
        for name, value in values.items():
            target, part = our_name(name)
            rows = slice(None) if part is None else slice(part * value.shape[0], (part + 1) * value.shape[0])
            assert ours[target][rows].shape == value.shape, (name, target)
            ours[target][rows].copy_(value)
            assert not filled[target][rows].any(), f"{target} filled twice"
            filled[target][rows] = True
    missing = [n for n, f in filled.items() if not f.all()]
    assert not missing, f"not covered by the reference: {missing}"

