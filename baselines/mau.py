"""MAU baseline: Chang, Zhang, Wang, Ma, Wang, Gao. "MAU: A Motion-Aware Unit for Video Prediction
and Beyond", NeurIPS 2021.

Architecture (Sec. 3: attention and fusion modules; the authors' release, which OpenSTL copies)
-----------------------------------------------------------------------------------------------
* Encoder, per frame: 1x1 conv C -> hidden + LeakyReLU(0.2), then log2(sr_size) x (3x3 conv,
  stride 2, + LeakyReLU): 64 x 16 x 16 on Moving MNIST (sr_size 4). No normalisation, no patching.
* ``num_layers`` Motion-Aware Units. Unit l at step t receives the spatial state S (the encoder
  output for l = 1, the unit below's S otherwise) and its own temporal state T, plus the last
  ``att_window`` (the paper's tau) temporal states T_{t-tau..t-1} and spatial INPUTS S_{t-tau..t-1}
  of this unit (zeros before the sequence starts). Every conv has a bias and is followed by a
  LayerNorm over (C, H, W) with per-element affine::

      s' = LN(conv(S)),  t' = LN(conv(T))                       (conv_s_next, conv_t_next)
      a_i = softmax_i(<S_{t-i}, s'> / sqrt(C H W))               attention module: weights over the window
      T_f = sigma(t') o T + (1 - sigma(t')) o sum_i a_i T_{t-i}  (fusion of T and the motion trend)
      [t_g, t_t, t_s] = LN(conv(T_f)),  [s_g, s_t, s_s] = LN(conv(S))
      T_new = sigma(t_g) o t_t + (1 - sigma(t_g)) o s_t          fusion module: the update
      S_new = sigma(s_g) o s_s + (1 - sigma(s_g)) o t_s

* Decoder: log2(sr_size) 3x3 transposed convs, stride 2 (LeakyReLU after all but the last), then
  a 1x1 conv to C channels; the output is not squashed (no sigmoid).

Protocol: the recurrent reference protocol of :mod:`bench.blocks.recurrent` (19 one-step
predictions over the 20-frame sequence, MSE over all of them, scheduled sampling per (sequence,
step) with eta decaying linearly from 1 to 0 at ``ss_stop`` = 0.625 of training: the authors'
2e-5 per iteration, 0 at iteration 50,000 of 80,000); test time: 9 teacher-forced steps then
autoregressive decoding to any horizon (the decoder is skipped on context steps, whose output
nobody reads).

Departures and choices
----------------------
* OpenSTL's MAU (HEAD c74deb5) never stores the eta its ``schedule_sampling`` returns, so every
  iteration before 50,000 draws with eta = 0.99998 and eta then jumps to 0. The authors
  (``MAU_run.py``) and OpenSTL v0.3.0 thread eta: the linear decay above, which we follow.
* The reference builds ``merge`` (1x1 conv 2*hidden -> hidden) and ``conv_last_sr`` (1x1 conv 2C ->
  C) and never calls them: 8,259 parameters on Moving MNIST that are counted in the published 4.5M
  (4,483,588) but are not part of this model (4,475,329); the audit says so. FLOPs are unaffected.
* ``model_mode='recall'`` (encoder features added in the decoder) and ``cell_mode='residual'``
  are not implemented: every released configuration uses 'normal'. Hidden widths are one number
  (the reference requires equal widths anyway), ``patch_size`` is 1 as in every configuration.
* Configuration: the base is Moving MNIST's (OpenSTL's config: lr 1e-3, one-cycle, ``sr_size`` 4,
  batch 16; epochs 2000, the bench's long protocol; the authors ran 80,000 iterations with a
  constant lr then x0.9 every 2,000 iterations, a schedule the harness does not have). Every other
  dataset trains with the same values but its r0 (PLA-SM Table I). OpenSTL's own per-dataset configs
  (TaxiBJ: sr_size 2, lr 1e-3, cosine, 50 epochs; Human3.6M: sr_size 4, lr 1e-4, cosine, 50; KTH:
  sr_size 2, lr 5e-4, one-cycle, 100; KITTI/Caltech: sr_size 2, lr 1e-3, one-cycle, 100) were
  written into an earlier version of the table but never took effect (each dataset's r0 entry
  replaced its whole entry); applying them changes those runs' spec hashes, a deliberate change
  left to its own commit.
* The hyperparameter is ``att_window``, not ``tau``, so that it cannot be confused with TAU.

Golden tests (``tests/test_reference_mau.py``, fixtures by ``tools/reference_maupd.py``): the
authors' ``RNN`` gives the test-time outputs; the training loss (the authors' MSE over 19 frames,
computed by OpenSTL's identical model) under the masks the authors' ``schedule_sampling`` draws,
and three Adam steps with eta threaded as the authors thread it. All agree to float64 rounding.

Cost (Moving MNIST): 4,475,329 parameters (published 4.5M, reference 4,483,588 with the dead
weights); FLOPs counted as OpenSTL counts them, fvcore on the training forward over the 20-frame
sequence with its mask (:func:`mau_flops_inputs`), 19 decoded steps: 17.791G (published 17.8G,
the reference's count is the same 17.7912G). The test-time rollout, which skips the 9 context
decodes, is 17.36G. Per step (fvcore MACs; transposed convs counted per input site; LayerNorm 5 per
element): encoder 47.4M (1x1 1 -> 64 at 64x64: 0.26M; 3x3 s2 64 -> 64 to 32x32: 37.7M, to 16x16:
9.4M), 4 units x 210.4M (5x5 convs 64 -> 192, 64, 192, 64 at 16x16: 78.6M + 26.2M + 78.6M + 26.2M,
LayerNorms 0.66M), decoder 47.4M (9.4M + 37.7M + 0.26M): 936.4M x 19 steps = 17.79G.

SM pretraining (``mau:sm``, PLA-SM Table VII; the paper gives no setup for MAU)
-------------------------------------------------------------------------------
:mod:`bench.blocks.masked_pretrain`'s stage with: encoder = the per-frame encoder above (conv + LeakyReLU
layers without normalisation, emulated as sparse convolutions by :func:`sparse_conv_act`),
decoder = the decoder above, the SM module between them on the hidden x H/sr x W/sr latent (64 x
16 x 16 on Moving MNIST, PLA-SM's C~ and resolution). Reason: these are the only parts that map
frames to the latent space and back; the MAU stack acts on latents, the role of the translator that
SM replaces during pretraining (PLA-SM III-B). Then, as PLA-SM III-G and ``simvp:sm``: the
encoder is frozen, the decoder and the units are trained with the usual protocol. r0 per dataset
from PLA-SM Table I, r = 0.1, 50 epochs, lr 0.01, batch 16 (IV-B); the cache key holds
``num_hidden`` and ``sr_size`` (what the encoder and decoder depend on) besides the stage's own
hyperparameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.blocks.recurrent import recurrent_predict, recurrent_train_step
from bench.blocks.schedules import DEFAULT_SS_STOP
from bench.errors import BenchError
from bench.spec.hparams import Float, Int
from bench.blocks.masked_pretrain import SM_HPARAMS, SM_PARAMS, SMRecipe, r0_per_dataset, sm_pretrain_stage
from bench.spec.method import CostQuestion, PublishedCost
from bench.spec.registry import DatasetSpec, register_method


class ConvAct(nn.Module):
    """conv (or transposed conv) + optional LeakyReLU(0.2)."""

    def __init__(self, conv: nn.Module, act: bool = True):
        super().__init__()
        self.conv = conv
        self.act = nn.LeakyReLU(0.2) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class MAUEncoder(nn.Module):
    """1x1 conv C -> hidden, then ``n_down`` stride-2 3x3 convs, each followed by LeakyReLU(0.2)."""

    def __init__(self, channels: int, hidden: int, n_down: int):
        super().__init__()
        self.layers = nn.ModuleList([ConvAct(nn.Conv2d(channels, hidden, 1))] + [
            ConvAct(nn.Conv2d(hidden, hidden, 3, stride=2, padding=1)) for _ in range(n_down)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MAUDecoder(nn.Module):
    """``n_up`` stride-2 3x3 transposed convs (LeakyReLU after all but the last), then 1x1 conv to C."""

    def __init__(self, channels: int, hidden: int, n_up: int):
        super().__init__()
        self.layers = nn.ModuleList(
            ConvAct(nn.ConvTranspose2d(hidden, hidden, 3, stride=2, padding=1, output_padding=1), act=i < n_up - 1)
            for i in range(n_up))
        self.readout = nn.Conv2d(hidden, channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            z = layer(z)
        return self.readout(z)


class MAUCell(nn.Module):
    """One Motion-Aware Unit (see the module docstring): ``(T, S, T window, S window) -> (T', S')``."""

    def __init__(self, hidden: int, grid: tuple[int, int], filter_size: int):
        super().__init__()
        self.hidden = hidden
        self.scale = math.sqrt(hidden * grid[0] * grid[1])

        def conv_ln(cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(hidden, cout, filter_size, padding=filter_size // 2),
                                 nn.LayerNorm([cout, *grid]))

        self.conv_t, self.conv_t_next = conv_ln(3 * hidden), conv_ln(hidden)
        self.conv_s, self.conv_s_next = conv_ln(3 * hidden), conv_ln(hidden)

    def forward(self, t: torch.Tensor, s: torch.Tensor, t_window: torch.Tensor, s_window: torch.Tensor):
        s_next, t_next = self.conv_s_next(s), self.conv_t_next(t)
        weights = torch.softmax((s_window * s_next).sum(dim=(2, 3, 4)) / self.scale, dim=0)  # (window, B)
        trend = (t_window * weights[:, :, None, None, None]).sum(dim=0)
        gate = torch.sigmoid(t_next)
        fused = t * gate + (1 - gate) * trend
        t_g, t_t, t_s = torch.split(self.conv_t(fused), self.hidden, dim=1)
        s_g, s_t, s_s = torch.split(self.conv_s(s), self.hidden, dim=1)
        t_gate, s_gate = torch.sigmoid(t_g), torch.sigmoid(s_g)
        return t_gate * t_t + (1 - t_gate) * s_t, s_gate * s_s + (1 - s_gate) * t_s


class MAU(nn.Module):
    """Encoder -> MAU stack -> decoder per step. ``forward(x)``: test-time rollout from the context;
    ``forward(seq, true_mask)``: the training pass (one-step predictions of ``seq[:, 1:]``, the future
    steps after the first reading ``m * true + (1 - m) * own``), as :mod:`bench.blocks.recurrent`."""

    def __init__(self, data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int, sr_size: int,
                 att_window: int):
        super().__init__()
        n = int(math.log2(sr_size))
        self.in_frames, self.out_frames, self.frame_shape = data.in_frames, data.out_frames, data.frame_shape
        self.grid = (data.height // sr_size, data.width // sr_size)
        self.hidden, self.window = num_hidden, att_window
        self.encoder = MAUEncoder(data.channels, num_hidden, n)
        self.cells = nn.ModuleList(MAUCell(num_hidden, self.grid, filter_size) for _ in range(num_layers))
        self.decoder = MAUDecoder(data.channels, num_hidden, n)

    def rollout(self, seq: torch.Tensor, n_steps: int, context: int, true_mask: torch.Tensor | None,
                first_kept: int) -> torch.Tensor:
        zeros = seq.new_zeros(seq.shape[0], self.hidden, *self.grid)
        temporal = [zeros] * len(self.cells)
        t_hist = [[zeros] * self.window for _ in self.cells]  # last `window` T and S inputs per unit
        s_hist = [[zeros] * self.window for _ in self.cells]
        pred, preds = None, []
        for t in range(n_steps):
            if t < context:
                frame = seq[:, t]
            elif true_mask is None:
                frame = pred
            else:
                m = true_mask[:, t - context].to(seq.dtype).view(-1, 1, 1, 1)
                frame = m * seq[:, t] + (1 - m) * pred
            s = self.encoder(frame)
            for k, cell in enumerate(self.cells):
                t_window, s_window = torch.stack(t_hist[k]), torch.stack(s_hist[k])
                s_hist[k] = s_hist[k][1:] + [s]
                temporal[k], s = cell(temporal[k], s, t_window, s_window)
                t_hist[k] = t_hist[k][1:] + [temporal[k]]
            if t >= first_kept:  # later steps read this prediction
                pred = self.decoder(s)
                preds.append(pred)
        return torch.stack(preds, dim=1)

    def forward(self, x: torch.Tensor, true_mask: torch.Tensor | None = None,
                pred_len: int | None = None) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != tuple(self.frame_shape):
            raise BenchError(f"expected frames of shape (B, T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {tuple(x.shape)}")
        if true_mask is not None:
            context = x.shape[1] - 1 - true_mask.shape[1]
            if context < 1:
                raise BenchError(f"true_mask covers {true_mask.shape[1]} steps of a {x.shape[1]}-frame sequence")
            return self.rollout(x, x.shape[1] - 1, context, true_mask, 0)
        n_out = self.out_frames if pred_len is None else int(pred_len)
        if n_out < 1:
            raise BenchError(f"pred_len must be at least 1, got {pred_len!r}")
        t_in = x.shape[1]
        return self.rollout(x, t_in - 1 + n_out, t_in, None, t_in - 1)


def mau_flops_inputs(data: DatasetSpec) -> tuple[torch.Tensor, ...]:
    """The training forward OpenSTL counts: the (1, T_in + T_out) sequence and its mask, 19 decoded steps."""
    return torch.zeros(1, data.in_frames + data.out_frames, *data.frame_shape), torch.ones(1, data.out_frames - 1)


def explain_cost(q: CostQuestion) -> list[str]:
    """``bench audit``: the reference's dead weights and how the FLOPs are counted (test-time figure measured)."""
    key, data, hp, figures, ref = q.key, q.data, q.hp, q.figures, q.published
    with torch.random.fork_rng(devices=[]):
        model = key.spec.create_model(data, hp)
    test = q.count_flops(model, (torch.zeros(1, data.in_frames, *data.frame_shape),))
    h, c = int(hp["num_hidden"]), data.channels
    dead = 2 * h * h + h + 2 * c * c + c  # merge (1x1, 2h -> h) and conv_last_sr (1x1, 2C -> C), with biases
    return [f"params: the reference's MAU_Model also builds `merge` and `conv_last_sr`, never called by its forward: "
            f"{dead:,} params; {figures['params']:,} + {dead:,} = {figures['params'] + dead:,} (the reference's total, "
            f"published {ref.params / 1e6:.1f}M)",
            f"FLOPs counted as the reference counts them (OpenSTL: fvcore on the TRAINING forward over the "
            f"{data.in_frames + data.out_frames}-frame sequence with its mask, every step decoded): "
            f"{figures['flops'] / 1e9:.3f}G; the test-time rollout (context steps not decoded) is {test / 1e9:.3f}G"]


# ------------------------------------------------------------------------------- SM pretraining


def sparse_conv_act(conv: nn.Conv2d, act: nn.Module, x: torch.Tensor,
                    mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv + activation layer on the active set ``mask`` only (no norm; cf. sparse_conv_norm_act)."""
    if tuple(conv.stride) != (1, 1):
        mask = F.max_pool2d(mask, conv.kernel_size, stride=conv.stride, padding=conv.padding)
    return act(conv(x) * mask) * mask, mask


def _sm_parts(data: DatasetSpec, hp) -> tuple[nn.Module, nn.Module, int]:
    n, hidden = int(math.log2(hp["sr_size"])), int(hp["num_hidden"])
    return MAUEncoder(data.channels, hidden, n), MAUDecoder(data.channels, hidden, n), hidden


def _sm_encode(enc: MAUEncoder, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, None]:
    mask = mask.to(frames.dtype)
    z = frames * mask
    for layer in enc.layers:
        z, mask = sparse_conv_act(layer.conv, layer.act, z, mask)
    return z, None


MAU_SM = SMRecipe(name="mau", build_parts=_sm_parts, encode=_sm_encode, decode=lambda dec, z, side: dec(z),
                  key_hparams=("num_hidden", "sr_size"), encoder="encoder", decoder="decoder")

#: The base configuration (Moving MNIST's; see the module docstring) with SM pretraining off (``mau:sm`` on).
BASE = {"num_layers": 4, "num_hidden": 64, "filter_size": 5, "att_window": 5, "ss_stop": DEFAULT_SS_STOP,
        "optimizer": "adam", "batch_size": 16, "weight_decay": 0.0, "sr_size": 4, "lr": 1e-3, "schedule": "onecycle",
        "epochs": 2000, **SM_HPARAMS, "pretrain": False}


#: The published cost of this method's keys (``bench audit`` compares its own count with it).
PUBLISHED_COSTS = (
    PublishedCost("mau", "mmnist", 4.5e6, 17.8e9,
                  'OpenSTL model zoo (MAU, MMNIST; fvcore on the training forward); PLA-SM Table V: 17.8G, '
                  '4.5M'),
)


@register_method(
    "mau",
    published_costs=PUBLISHED_COSTS,
    explain_cost=explain_cost,
    citation="Chang, Zhang, Wang, Ma, Wang, Gao. MAU: A Motion-Aware Unit for Video Prediction and Beyond. "
             "NeurIPS 2021.",
    description="MAU: conv encoder/decoder around a stack of motion-aware units (attention over the last "
                "temporal states); next-frame rollout with scheduled sampling",
    hparams={"*": BASE, **r0_per_dataset(BASE["r0"])},
    variants={"sm": {"pretrain": True}},  # PLA-SM Table VII: MAU + spatial-masking pretraining
    tiny={"num_layers": 2, "num_hidden": 8, "filter_size": 3, "pretrain_epochs": 1},
    train_step=recurrent_train_step,
    predict=recurrent_predict,
    flops_inputs=mau_flops_inputs,
    recurrent=True,
    pretrain=sm_pretrain_stage(MAU_SM),
    params={**SM_PARAMS, "num_layers": Int(min=1), "num_hidden": Int(min=1), "filter_size": Int(min=1, doc="odd"),
            "sr_size": Int(min=1, doc="spatial reduction of the encoder, a power of 2"),
            "att_window": Int(min=1, doc="MAU's tau: previous steps the attention covers"),
            "ss_stop": Float(min=0.0, max=1.0, doc="fraction of training after which scheduled sampling feeds "
                                                   "predictions only")},
)
def build_mau(data: DatasetSpec, num_layers: int, num_hidden: int, filter_size: int, sr_size: int, att_window: int,
              ss_stop: float, pretrain: bool, sm: bool, r0: float, r: float, pretrain_epochs: int,
              pretrain_lr: float) -> MAU:
    """Build MAU for ``data``; ss_stop is read by the train step, pretrain/sm/r0/r/pretrain_* by the SM stage."""
    if filter_size % 2 == 0:
        raise BenchError(f"MAU filter_size={filter_size} must be odd (same padding); set e.g. mau:filter_size=5")
    if sr_size & (sr_size - 1):
        raise BenchError(f"MAU sr_size={sr_size} must be a power of 2 (stride-2 encoder layers); set e.g. mau:sr_size=4")
    if data.height % sr_size or data.width % sr_size:
        raise BenchError(f"dataset {data.name!r} has {data.height}x{data.width} frames, which MAU's encoder cannot "
                         f"reduce by sr_size={sr_size}; set mau:sr_size to a power of 2 dividing both")
    return MAU(data, num_layers, num_hidden, filter_size, sr_size, att_window)
