"""PredRNN++ baseline: Wang, Gao, Long, Wang, Yu, "PredRNN++: Towards A Resolution of the Deep-in-Time
Dilemma in Spatiotemporal Predictive Learning", ICML 2018.

Causal LSTM (section "Causal LSTM") of layer k at time t, ``*`` a convolution, ``o`` the Hadamard
product; C is the temporal memory of the layer, M the spatial memory that climbs the stack::

    i, f, g    = sigma, sigma, tanh (W_x * X_t + W_h * H^k_{t-1} + W_c * C^k_{t-1})     [+1 in f]
    C^k_t      = f o C^k_{t-1} + i o g
    i', f', g' = sigma, sigma, tanh (W'_x * X_t + W_cm * C^k_t + W_m * M^{k-1}_t)        [+1 in f'; no W_m in g']
    M^k_t      = f' o tanh(W_mm * M^{k-1}_t) + i' o g'
    o          = tanh (W_xo * X_t + W_ho * H^k_{t-1} + W_co * C^k_t + W_mo * M^k_t)
    H^k_t      = o o tanh(W_1x1 * [C^k_t, M^k_t])

The cascade is the point of the cell: the spatial memory's gates read the NEW temporal memory C^k_t.
Gradient Highway Unit (section "Gradient Highway"), between the first and the second layer::

    P_t = tanh (W_px * H^1_t + W_pz * Z_{t-1});  S_t = sigma(W_sx * H^1_t + W_sz * Z_{t-1})
    Z_t = S_t o P_t + (1 - S_t) o Z_{t-1}                                                (Z_0 = 0)

Layer 2 reads Z_t instead of H^1_t; layers k > 2 read H^{k-1}_t. M flows zig-zag as in PredRNN:
up the stack within a step and from the top layer at t - 1 into the bottom layer at t.

Choices (every open one, with its reason)
----------------------------------------
* **The temporal gates read C^k_{t-1}** (``c_gate_input="c"``): the paper's cell and the authors'
  TensorFlow release (Yunbo426/predrnn-pp ``layers/CausalLSTMCell.py``: ``c_cc = conv2d(c, ...)``),
  and OpenSTL's cell since commit 9da43f4 ("init lightning", 2023-12-08; OpenSTL issue #68).
  Up to v0.3.0 OpenSTL's cell applied W_c to the spatial memory M^{k-1}_t instead
  (``c_concat = self.conv_c(m_t)``); its released PredRNN++ weights and model-zoo numbers (e.g.
  Moving MNIST, 200 epochs: MSE 22.06) were trained with that cell, so the **variant
  ``openstl-v02``** (``c_gate_input="m"``) reproduces it, golden-tested against OpenSTL v0.2.0
  (41831fa; v0.3.0 0a0f36c has the same cell). Which printed numbers depend on which cell: the
  accuracy rows of TAU (Tables 2, 3, 5) and PLA-SM (Tables II, IV) are the literature's numbers,
  not OpenSTL's (Moving MNIST 46.5 MSE / 0.898 SSIM and KTH 28.47 / 0.865 are the PredRNN++
  paper's own; OpenSTL's zoo prints 22.06 on Moving MNIST and 33.48 MSE x 100 on TaxiBJ against the
  papers' 46.5 and 44.8), i.e. the authors' cell, which is the default here. The published cost
  (TAU Table 6: 171.73G; PLA-SM Table V: 171.7G / 38.6M) was counted on OpenSTL's old cell, which
  costs exactly the same as the fixed one (the same convolution, on another input).
* **Weights:** bias-free convolutions with PyTorch's default initialisation, the GHU's
  convolutions uniform in +-0.001 (OpenSTL, which the golden tests load one to one). The TF
  release gives every convolution a bias and initialises the cell's convolutions uniform in
  +-0.001 too; the authors' own PyTorch ports of this family (thuml/predrnn-pytorch: PredRNN,
  PredRNN-V2) drop both in the same way, and so does :mod:`bench.baselines.predrnn`, so that the
  PredRNN and PredRNN++ rows differ by the cell, not by the parameterisation. Gate orders are the
  reference's (a channel permutation of the TF one): conv_x (i, f, g, i', f', g', o); conv_h
  (i, f, g, o); conv_c (i, f, g); conv_m (i', f', M-candidate); conv_c2m (i', g', f', o).
* **No dead weights:** OpenSTL's cell also defines PredRNN's 5x5 output convolution ``conv_o``
  (2C -> C) and never calls it: 819,200 weights per cell, 3,276,800 of the published 38.6M at the
  Moving MNIST configuration (the TF cell has no such convolution). This model leaves them out
  (the audit explains the gap: :func:`explain_cost_difference`, tested against the reference's count).
* **Network:** 4 causal LSTMs x 128 channels, 5x5 filters, 4x4 patches (OpenSTL's configurations,
  whose cost the papers print; 2x2 patches on TaxiBJ and KTH), the GHU at 128 channels. The TF
  release's script used 128, 64, 64, 64 channels with layer norm; our stacks have one width, and
  layer norm is not offered: OpenSTL's ``layer_norm=1`` path fails in its GHU (a LayerNorm over C
  channels on a 2C-channel output), so no reference exists for it, and the published
  configurations use ``layer_norm = 0``. At least 2 layers (the GHU feeds layer 2).
* **Training:** the reference protocol of :mod:`bench.blocks.recurrent` (19 one-step predictions
  over the 20-frame sequence, scheduled sampling with eta -> 0 at ``ss_stop`` = 0.625 of
  training); Adam, lr 1e-3 (the TF release's ``train.py``; OpenSTL's configs use 1e-4 with a
  one-cycle schedule, ``:lr=1e-4:schedule=onecycle``), batch 16, constant learning rate, as
  :mod:`bench.baselines.predrnn`. The TF ``train.py`` also trains on the time-reversed sequence
  after every step (``reverse_input``); it is off by default so that PredRNN++ shares the protocol
  of the PredRNN and ConvLSTM rows (whose reference scripts have it too and which do not use it),
  and ``:reverse_input=true`` turns it on (:func:`bench.blocks.recurrent.time_reversed_passes`).

Cost at Moving MNIST (fvcore MACs over the 19 cell steps of a (1, 10, 1, 64, 64) input; h = w = 16,
k = 5, C = 128, 16 patch channels). Per step: layer 1 h*w*k^2*(16*7C + C*4C + 2*C*3C + C*4C + C*C)
+ h*w*2C*C = 1,673,003,008; layers 2-4 the same with 128 input channels, 2,315,255,808 each; GHU
h*w*k^2*4C^2 = 419,430,400; readout h*w*C*16 = 524,288; 9,038,725,120 per step, x 19 = 171.74G
(published 171.7G, TAU Table 6 171.73G). Parameters: 35,307,520 = the reference's 38,584,320
(published 38.6M) minus the 3,276,800 never-called ``conv_o`` weights.
"""

from __future__ import annotations


import torch
from torch import nn

from bench.blocks.recurrent import (
    RecurrentPredictor,
    conv,
    recurrent_flops_inputs,
    recurrent_predict,
    recurrent_train_step,
    time_reversed_passes,
    check_filter_size,
)
from bench.blocks.schedules import DEFAULT_SS_STOP, recurrent_schedule
from bench.spec.hparams import Bool, Choice, Float, Int
from bench.spec.method import CostQuestion, PublishedCost
from bench.spec.registry import DatasetSpec, register_method

#: The constant added inside both forget gates (the reference's ``_forget_bias``).
FORGET_BIAS = 1.0
#: Half-width of the uniform initialisation of the GHU's convolutions (TF release and OpenSTL).
GHU_INIT = 1e-3


def dead_conv_o_params(num_hidden: int, filter_size: int) -> int:
    """Weights per cell of OpenSTL's never-called ``conv_o`` (2C -> C, k x k), counted in its published size."""
    return 2 * num_hidden * num_hidden * filter_size * filter_size


class CausalLSTMCell(nn.Module):
    """Causal LSTM (see the module docstring); ``forward(x, h, c, m) -> (h, c, m)``, ``m`` M^{k-1}_t in, M^k_t out.

    ``c_gate_input`` is the state ``conv_c`` reads: ``"c"`` (C^k_{t-1}, the paper) or ``"m"``
    (M^{k-1}_t, OpenSTL up to v0.3.0).
    """

    def __init__(self, in_channels: int, hidden: int, filter_size: int, c_gate_input: str = "c"):
        super().__init__()
        self.hidden = hidden
        self.c_gate_input = c_gate_input
        self.conv_x = conv(in_channels, 7 * hidden, filter_size)
        self.conv_h = conv(hidden, 4 * hidden, filter_size)
        self.conv_c = conv(hidden, 3 * hidden, filter_size)
        self.conv_m = conv(hidden, 3 * hidden, filter_size)
        self.conv_c2m = conv(hidden, 4 * hidden, filter_size)
        self.conv_om = conv(hidden, hidden, filter_size)
        self.conv_fuse = nn.Conv2d(2 * hidden, hidden, kernel_size=1, bias=False)  # W_1x1 * [C, M]

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor):
        ix, fx, gx, ipx, fpx, gpx, ox = torch.split(self.conv_x(x), self.hidden, dim=1)
        ih, fh, gh, oh = torch.split(self.conv_h(h), self.hidden, dim=1)
        ic, fc, gc = torch.split(self.conv_c(c if self.c_gate_input == "c" else m), self.hidden, dim=1)
        ipm, fpm, mm = torch.split(self.conv_m(m), self.hidden, dim=1)

        c_new = torch.sigmoid(fx + fh + fc + FORGET_BIAS) * c + torch.sigmoid(ix + ih + ic) * torch.tanh(gx + gh + gc)
        ipc, gpc, fpc, oc = torch.split(self.conv_c2m(c_new), self.hidden, dim=1)
        m_new = (torch.sigmoid(fpx + fpm + fpc + FORGET_BIAS) * torch.tanh(mm)
                 + torch.sigmoid(ipx + ipm + ipc) * torch.tanh(gpx + gpc))
        o = torch.tanh(ox + oh + oc + self.conv_om(m_new))
        h_new = o * torch.tanh(self.conv_fuse(torch.cat([c_new, m_new], dim=1)))
        return h_new, c_new, m_new


class GradientHighwayUnit(nn.Module):
    """GHU: ``forward(x, z) -> z'`` with the switch gate S and the candidate P (module docstring)."""

    def __init__(self, channels: int, filter_size: int):
        super().__init__()
        self.channels = channels
        self.conv_z = conv(channels, 2 * channels, filter_size)  # (P, S) from Z_{t-1}
        self.conv_x = conv(channels, 2 * channels, filter_size)  # (P, S) from the input
        for layer in (self.conv_z, self.conv_x):
            nn.init.uniform_(layer.weight, -GHU_INIT, GHU_INIT)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        p, s = torch.split(self.conv_x(x) + self.conv_z(z), self.channels, dim=1)
        s = torch.sigmoid(s)
        return s * torch.tanh(p) + (1 - s) * z


class PredRNNpp(RecurrentPredictor):
    """Causal-LSTM stack with a GHU between layers 1 and 2 and the zig-zag spatial memory."""

    def __init__(self, data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int, patch_size: int,
                 c_gate_input: str):
        super().__init__(data, patch_size, num_hidden)
        self.num_layers = int(num_layers)
        self.num_hidden = int(num_hidden)
        self.cells = nn.ModuleList(
            CausalLSTMCell(self.patch_channels if k == 0 else self.num_hidden, self.num_hidden, int(filter_size),
                           c_gate_input)
            for k in range(self.num_layers)
        )
        self.ghu = GradientHighwayUnit(self.num_hidden, int(filter_size))

    def init_state(self, batch: int, like: torch.Tensor):
        zeros = like.new_zeros(batch, self.num_hidden, *self.grid)
        return [zeros] * self.num_layers, [zeros] * self.num_layers, zeros, zeros  # H, C, M, Z

    def step(self, frame: torch.Tensor, state):
        hs, cs, m, z = state  # m: M of the top layer at t - 1
        new_h, new_c = [], []
        inp = frame
        for k, (cell, h, c) in enumerate(zip(self.cells, hs, cs)):
            h, c, m = cell(inp, h, c, m)
            new_h.append(h)
            new_c.append(c)
            if k == 0:
                z = self.ghu(h, z)
                inp = z  # layer 2 reads the highway
            else:
                inp = h
        return inp, (new_h, new_c, m, z)


def explain_cost(q: CostQuestion) -> list[str]:
    """Why ``bench audit`` finds fewer parameters than published (the FLOPs agree): OpenSTL's dead ``conv_o``."""
    hp, figures, ref = q.hp, q.figures, q.published
    dead = int(hp["num_layers"]) * dead_conv_o_params(int(hp["num_hidden"]), int(hp["filter_size"]))
    total = int(figures["params"]) + dead
    lines = [f"the reference cell (OpenSTL) also defines PredRNN's output convolution conv_o (2C -> C, "
             f"{hp['filter_size']}x{hp['filter_size']}) in each of the {hp['num_layers']} cells and never calls it: "
             f"{dead:,} params; ours {int(figures['params']):,} + {dead:,} = {total:,}"
             + (f" ({total / ref.params - 1:+.2%} against the published {ref.params / 1e6:.1f}M)" if ref.params else "")
             + "; FLOPs count only what runs and agree"]
    if hp.get("c_gate_input") == "m":
        lines.append("variant openstl-v02: OpenSTL <= v0.3.0's cell (W_c reads M, not C); same cost as the fixed cell")
    return lines


#: The published cost of this method's keys (``bench audit`` compares its own count with it).
PUBLISHED_COSTS = (
    PublishedCost("predrnnpp", "mmnist", 38.6e6, 171.7e9,
                  'OpenSTL model zoo (PredRNN++, MMNIST: 38.6M, 171.7G); TAU Table 6: 171.73G; PLA-SM Table '
                  'V: 171.7G, 38.6M'),
    PublishedCost("predrnnpp:openstl-v02", "mmnist", 38.6e6, 171.7e9,
                  'OpenSTL model zoo (PredRNN++, MMNIST; counted on this cell): 38.6M, 171.7G; TAU Table 6: '
                  '171.73G'),
)


@register_method(
    "predrnnpp",
    published_costs=PUBLISHED_COSTS,
    explain_cost=explain_cost,
    citation="Wang, Gao, Long, Wang, Yu, PredRNN++: Towards A Resolution of the Deep-in-Time Dilemma in "
             "Spatiotemporal Predictive Learning, ICML 2018",
    description="PredRNN++: 4x128 causal LSTMs (cascaded temporal/spatial memories) with a gradient highway unit, "
                "5x5 filters, 4x4 patches; next-frame rollout with scheduled sampling",
    hparams={"*": {"num_layers": 4, "num_hidden": 128, "filter_size": 5, "patch_size": 4, "c_gate_input": "c",
                   "ss_stop": DEFAULT_SS_STOP, "reverse_input": False,
                   "optimizer": "adam", "lr": 1e-3, "batch_size": 16, "schedule": "none"},
             "taxibj": {"patch_size": 2},  # OpenSTL configs/taxibj/PredRNNpp.py
             "kth": {"patch_size": 2}},  # OpenSTL configs/kth/PredRNNpp.py
    variants={"openstl-v02": {"c_gate_input": "m"}},
    tiny={"num_layers": 2, "num_hidden": 8, "filter_size": 3},
    train_step=recurrent_train_step,
    train_passes=time_reversed_passes,
    schedule=recurrent_schedule,
    predict=recurrent_predict,
    flops_inputs=recurrent_flops_inputs,
    recurrent=True,
    params={"num_layers": Int(min=2, doc="causal LSTM layers (the GHU sits between layers 1 and 2)"),
            "num_hidden": Int(min=1), "filter_size": Int(min=1), "patch_size": Int(min=1),
            "c_gate_input": Choice("c", "m", doc="state W_c reads in the temporal gates: c (the paper) or m "
                                                 "(OpenSTL <= v0.3.0)"),
            "ss_stop": Float(min=0.0, max=1.0, doc="fraction of training after which scheduled sampling feeds "
                                                   "predictions only"),
            "reverse_input": Bool(doc="also train on the time-reversed sequence after every step")},
)
def build_predrnnpp(data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int, patch_size: int,
                    c_gate_input: str, ss_stop: float, reverse_input: bool) -> PredRNNpp:
    """Build PredRNN++ for ``data`` (``ss_stop``/``reverse_input`` are read by the training hooks)."""
    check_filter_size(filter_size)
    return PredRNNpp(data, num_layers, num_hidden, filter_size, patch_size, c_gate_input)


