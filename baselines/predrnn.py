"""PredRNN baseline: Wang et al., "PredRNN: Recurrent Neural Networks for Predictive Learning using
Spatiotemporal LSTMs", NeurIPS 2017.

Spatiotemporal LSTM cell (Sec. 3.2, Eq. 4) of layer l at time t, ``*`` a convolution::

    g_t  = tanh (W_xg * X_t + W_hg * H^l_{t-1} + b_g)
    i_t  = sigma(W_xi * X_t + W_hi * H^l_{t-1} + b_i)
    f_t  = sigma(W_xf * X_t + W_hf * H^l_{t-1} + b_f)
    C^l_t = f_t o C^l_{t-1} + i_t o g_t                         (temporal memory, per layer)
    g'_t = tanh (W'_xg * X_t + W_mg * M^{l-1}_t + b'_g)
    i'_t = sigma(W'_xi * X_t + W_mi * M^{l-1}_t + b'_i)
    f'_t = sigma(W'_xf * X_t + W_mf * M^{l-1}_t + b'_f)
    M^l_t = f'_t o M^{l-1}_t + i'_t o g'_t                       (spatiotemporal memory)
    o_t  = sigma(W_xo * X_t + W_ho * H^l_{t-1} + W_co * C^l_t + W_mo * M^l_t + b_o)
    H^l_t = o_t o tanh(W_1x1 * [C^l_t, M^l_t])

X_t is the (patchified) frame for l = 1 and H^{l-1}_t above. The spatiotemporal memory flows
zig-zag (Sec. 3.2, Fig. 2): upwards through the layers within a time step, and from the top layer
at t - 1 into the bottom layer at t (M^0_t = M^L_{t-1}; zeros at t = 0).

Choices. The implementation behind the published PredRNN rows (TAU Table 6, OpenSTL model zoo) is
OpenSTL's ``PredRNN_Model`` (the cell of the authors' PredRNN PyTorch code);
``tests/test_reference_match.py`` loads its weights (OpenSTL commit c74deb5) into this model and
checks equal outputs (test-time rollout, layer norm on and off), losses and three Adam steps, with
a 2-channel input to pin the patch layout:

* Network: 4 ST-LSTM layers x 128 hidden channels, 5x5 filters, 4x4 patches (64x64x1 ->
  16x16x16, Sec. 4.1), a bias-free 1x1 readout of the next patch frame from the top H at every step.
  ``W_co * C + W_mo * M`` is one 5x5 convolution of the concatenation [C, M] (the same weights).
* This is PredRNN (2017), not PredRNN-V2 (Wang et al., TPAMI 2022): no memory-decoupling loss and
  no reverse scheduled sampling.
* Layer norm: off by default (``layer_norm=False``). The 2017 paper does not mention normalisation;
  the released Moving MNIST configurations (PredRNN's PyTorch scripts, OpenSTL's
  ``configs/mmnist/PredRNN.py``) set ``layer_norm = 0``, and the published 23.8M parameters exclude
  norm weights. The ``ln`` variant is the reference's ``nn.LayerNorm([C, h, w])`` after each of the
  four convolutions (see :func:`bench.blocks.recurrent.make_norm`).
* Biases: the reference's. Its convolutions are bias-free and it adds a *constant* forget bias of
  1.0 inside both forget gates, sigma(. + 1.0); Eq. 4's other b terms are absent. (An earlier
  version of this model had learnable gate biases with the forget biases initialised to 1: equal at
  initialisation, but 3,584 parameters the reference does not train.)
* Training: the reference protocol of :mod:`bench.blocks.recurrent` (19 one-step predictions
  over the 20-frame sequence, scheduled sampling with eta -> 0 at ``ss_stop`` = 0.625 of training,
  50k of 80k iterations in the reference scripts); Adam, lr 1e-3 (PredRNN's TensorFlow code; its
  later PyTorch script uses 3e-4), batch 16 (the TAU protocol; the reference code uses 8),
  constant learning rate (``:schedule=onecycle`` gives OpenSTL's). The reference scripts'
  ``reverse_input`` (also training on time-reversed sequences) is a data augmentation of the later
  PyTorch code and is not used.

At the Moving MNIST configuration this model has 23,838,720 parameters, all convolution weights,
exactly the reference's count (stored in the golden fixture and tested; published 23.8M), and
fvcore counts 115.95G FLOPs over 19 steps (published 115.94G in TAU Table 6, 116.0G in the OpenSTL
zoo).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.blocks.st_lstm import FORGET_BIAS, STLSTMCell  # noqa: F401 - FORGET_BIAS: documented here
from bench.blocks.recurrent import (
    RecurrentPredictor,
    recurrent_flops_inputs,
    recurrent_predict,
    recurrent_train_step,
    check_filter_size,
)
from bench.blocks.schedules import DEFAULT_SS_STOP, recurrent_schedule
from bench.spec.hparams import Bool, Float, Int
from bench.spec.method import PublishedCost
from bench.spec.registry import DatasetSpec, register_method


class PredRNN(RecurrentPredictor):
    """Stack of ST-LSTM layers with the zig-zag spatiotemporal memory (see the module docstring)."""

    def __init__(self, data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int,
                 patch_size: int, layer_norm: bool):
        super().__init__(data, patch_size, num_hidden)
        self.num_layers = int(num_layers)
        self.num_hidden = int(num_hidden)
        self.cells = nn.ModuleList(
            STLSTMCell(self.patch_channels if k == 0 else self.num_hidden, self.num_hidden, int(filter_size),
                       self.grid, bool(layer_norm))
            for k in range(self.num_layers)
        )

    def init_state(self, batch: int, like: torch.Tensor):
        zeros = like.new_zeros(batch, self.num_hidden, *self.grid)
        return [zeros] * self.num_layers, [zeros] * self.num_layers, zeros

    def step(self, frame: torch.Tensor, state):
        hs, cs, m = state  # m: M^L_{t-1}, the top layer's memory of the previous step
        new_h, new_c = [], []
        inp = frame
        for cell, h, c in zip(self.cells, hs, cs):
            h, c, m = cell(inp, h, c, m)  # M climbs the stack within the step
            new_h.append(h)
            new_c.append(c)
            inp = h
        return inp, (new_h, new_c, m)  # the top M goes to the bottom layer at the next step


#: The published cost of this method's keys (``bench audit`` compares its own count with it).
PUBLISHED_COSTS = (
    PublishedCost("predrnn", "mmnist", 23.8e6, 116e9,
                  'OpenSTL model zoo (PredRNN, MMNIST); TAU Table 6: 115.94G'),
)


@register_method(
    "predrnn",
    published_costs=PUBLISHED_COSTS,
    citation="Wang et al., PredRNN: Recurrent Neural Networks for Predictive Learning using Spatiotemporal "
             "LSTMs, NeurIPS 2017",
    description="PredRNN: 4x128 ST-LSTM stack with zig-zag spatiotemporal memory, 5x5 filters, 4x4 patches; "
                "next-frame rollout with scheduled sampling",
    hparams={"*": {"num_layers": 4, "num_hidden": 128, "filter_size": 5, "patch_size": 4,
                   "layer_norm": False, "ss_stop": DEFAULT_SS_STOP,
                   "optimizer": "adam", "lr": 1e-3, "batch_size": 16, "schedule": "none"}},
    variants={"ln": {"layer_norm": True}, "no-ss": {"ss_stop": 0.0}},
    tiny={"num_layers": 2, "num_hidden": 8, "filter_size": 3},
    train_step=recurrent_train_step,
    schedule=recurrent_schedule,
    predict=recurrent_predict,
    flops_inputs=recurrent_flops_inputs,
    recurrent=True,
    params={"num_layers": Int(min=1), "num_hidden": Int(min=1), "filter_size": Int(min=1), "patch_size": Int(min=1),
            "layer_norm": Bool(), "ss_stop": Float(min=0.0, max=1.0, doc="fraction of training after which "
                                                                     "scheduled sampling feeds predictions only")},
)
def build_predrnn(data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int, patch_size: int,
                  layer_norm: bool, ss_stop: float) -> PredRNN:
    """Build PredRNN for ``data`` (``ss_stop`` is read by the train step)."""
    check_filter_size(filter_size)
    return PredRNN(data, num_layers, num_hidden, filter_size, patch_size, layer_norm)
