"""Name maps from OpenSTL's MIM and E3D-LSTM weights to ours, and the shared golden-test helpers.

The fixtures (``tests/fixtures/reference/{mim,e3dlstm}.pt``) are written by
``tools/reference_mim_e3dlstm.py`` from OpenSTL commit c74deb5 (see that script for what each holds
and how the reference is patched to the authors' semantics).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from reference_helpers import dataset
from torch import nn

from bench.spec.registry import get_method

#: float64 on both sides; the issue's bound for test-time outputs.
ATOL = 1e-10
RTOL_LOSS = 1e-9

# OpenSTL MIM_Model -> bench.baselines.mim.MIM (layer 0 is PredRNN's cell; conv_*.0 convs, conv_*.1 norms)
MIM_RULES = [
    (r"^stlstm_layer\.0\.conv_(x|h|m|o)\.0\.", r"cells.0.conv_\1."),
    (r"^stlstm_layer\.0\.conv_(x|h|m|o)\.1\.", r"cells.0.norm_\1."),
    (r"^stlstm_layer\.0\.conv_last\.", r"cells.0.conv_fuse."),
    (r"^stlstm_layer\.(\d+)\.conv_x_cc\.0\.", r"cells.\1.conv_x."),
    (r"^stlstm_layer\.(\d+)\.conv_x_cc\.1\.", r"cells.\1.norm_x."),
    (r"^stlstm_layer\.(\d+)\.conv_t_cc\.0\.", r"cells.\1.conv_h."),
    (r"^stlstm_layer\.(\d+)\.conv_t_cc\.1\.", r"cells.\1.norm_h."),
    (r"^stlstm_layer\.(\d+)\.conv_s_cc\.0\.", r"cells.\1.conv_m."),
    (r"^stlstm_layer\.(\d+)\.conv_s_cc\.1\.", r"cells.\1.norm_m."),
    (r"^stlstm_layer\.(\d+)\.conv_(h|x)_concat\.0\.", r"cells.\1.mims.conv_\2."),
    (r"^stlstm_layer\.(\d+)\.conv_(h|x)_concat\.1\.", r"cells.\1.mims.norm_\2."),
    (r"^stlstm_layer\.(\d+)\.ct_weight$", r"cells.\1.mims.peep_if"),
    (r"^stlstm_layer\.(\d+)\.oc_weight$", r"cells.\1.mims.peep_o"),
    (r"^stlstm_layer\.(\d+)\.conv_last\.", r"cells.\1.conv_fuse."),
    (r"^stlstm_layer_diff\.(\d+)\.conv_(h|x)_concat\.0\.", r"diff_cells.\1.conv_\2."),
    (r"^stlstm_layer_diff\.(\d+)\.conv_(h|x)_concat\.1\.", r"diff_cells.\1.norm_\2."),
    (r"^stlstm_layer_diff\.(\d+)\.ct_weight$", r"diff_cells.\1.peep_if"),
    (r"^stlstm_layer_diff\.(\d+)\.oc_weight$", r"diff_cells.\1.peep_o"),
    (r"^conv_last\.", r"readout."),
]
#: The 1x1 convolution of each OpenSTL MIM-N cell that its forward never calls.
MIM_UNUSED = r"^stlstm_layer_diff\.\d+\.conv_last\."

# OpenSTL E3DLSTM_Model -> bench.baselines.e3dlstm.E3DLSTM
_E3D_CONVS = {"x": "x", "h": "h", "gm": "m", "new_cell": "oc", "new_gm": "om"}
E3D_RULES = [
    *[(rf"^cell_list\.(\d+)\.conv_{ref}\.0\.conv3d\.", rf"cells.\1.conv_{ours}.conv.") for ref, ours in _E3D_CONVS.items()],
    *[(rf"^cell_list\.(\d+)\.conv_{ref}\.1\.", rf"cells.\1.norm_{ours}.") for ref, ours in _E3D_CONVS.items()],
    (r"^cell_list\.(\d+)\.conv_last\.conv3d\.", r"cells.\1.conv_fuse."),
    (r"^cell_list\.(\d+)\._norm_c_t\.", r"cells.\1.norm_c."),
    (r"^conv_last\.", r"readout."),
]


def rename(names: list[str], rules: list[tuple[str, str]], unused: str | None = None) -> tuple[dict[str, str], list[str]]:
    """Reference name -> ours; ``unused`` (a pattern) names the reference weights deliberately left out."""
    mapping, left_out = {}, []
    for name in names:
        if unused and re.match(unused, name):
            left_out.append(name)
            continue
        for pattern, repl in rules:
            if re.match(pattern, name):
                mapping[name] = re.sub(pattern, repl, name)
                break
        else:
            raise KeyError(f"reference parameter {name!r} has no counterpart in our model")
    return mapping, left_out


def load_renamed(ours: nn.Module, state: dict[str, torch.Tensor], rules, unused: str | None = None) -> list[str]:
    """Load reference weights into ``ours`` in float64 (strict: every one of our tensors must be covered)."""
    mapping, left_out = rename(list(state), rules, unused)
    ours.load_state_dict({mine: state[ref].double() for ref, mine in mapping.items()}, strict=True)
    return left_out


def build(name: str, cfg: dict[str, Any], variant: str | None = None, **extra: Any):
    """Our model at a fixture's reference ``config`` in float64. Returns ``(model, hp, data)``."""
    data = dataset(cfg["pre"], cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    widths = set(cfg["num_hidden"])
    assert len(widths) == 1, "our recurrent stacks have one width"
    over = {"num_layers": len(cfg["num_hidden"]), "num_hidden": widths.pop(), "filter_size": cfg["filter_size"],
            "patch_size": cfg["patch_size"], **extra}
    hp = get_method(name).resolve_hparams(data.name, variant=variant, overrides=over)
    torch.manual_seed(0)
    return get_method(name).create_model(data, hp).double(), hp, data


def assert_close(ours: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    diff = (ours.double() - ref.double()).abs().max().item()
    assert diff <= atol, f"max |ours - reference| = {diff:.3g} > {atol:g}"


def assert_losses(ours: list[float], ref: list[float], rtol: float = RTOL_LOSS) -> None:
    assert len(ours) == len(ref)
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=1e-15), f"loss {step}: ours {a!r} vs reference {b!r}"


def adam_losses(model: nn.Module, adam: dict, step_loss) -> list[float]:
    """Three Adam steps on the fixture's batches, each with the mask the reference drew."""
    opt = torch.optim.Adam(model.parameters(), lr=adam["lr"])
    losses = []
    for k, (x, y) in enumerate(adam["batches"]):
        opt.zero_grad()
        loss = step_loss(x.double(), y.double(), adam["masks"][k])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
