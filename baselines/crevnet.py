"""CrevNet baseline: Yu, Lu, Easterbrook, Fidler, "Efficient and Information-Preserving Future Frame
Prediction and Beyond", ICLR 2020.

Architecture (Sec. 3: the bijective two-way autoencoder and the reversible predictive module)
---------------------------------------------------------------------------------------------
CrevNet works on 3-frame stacks: stack j = frames j, j+1, j+2 as a (C, 3, H, W) volume; every
convolution is 3-D with temporal depth 3.

* Two-way autoencoder, an i-RevNet (Jacobsen et al., ICLR 2018) with 3-D convolutions. A
  space-to-depth squeeze S (2x2 blocks; channel order (row, column, c), c fastest) turns the
  stack into 4C channels at H/2 x W/2, split into halves (x1, x2) of 2C channels. ``n_blocks``
  (4, 5, 3) reversible blocks in stages of widths 2C, 8C, 32C; the first block of stages 2 and 3
  has stride 2. A block maps (x1, x2) -> (x2, F(x2) + x1), and a stride-2 block
  (x1, x2) -> (S x2, F(x2) + S x1), with the bottleneck F = [BN, ReLU,] conv3 (to w/2, spatial
  stride 1 or 2), BN, ReLU, conv3 (w/2), BN, ReLU, conv3 (to w), w the stage width, bias-free
  3x3x3 convolutions, BatchNorm3d (only the very first block starts at its first conv). Encoding
  ends at two 32C-channel volumes at H/8 x W/8 (Moving MNIST: 2 x 32 x 3 x 8 x 8 = 64 x 64 x 3
  values: nothing is lost). Decoding runs the blocks backwards with the SAME weights,
  (x2', y1) -> (y1 - F(x2'), x2') (stride 2: x2 = S^-1 x2', x1 = S^-1(y1 - F(x2))), then un-squeezes.
* Reversible predictor: ``predictor_layers`` (8) spatiotemporal ConvLSTM cells (3x3x3 convs with
  bias) at the latent width w_l = 32C. Layer k reads the first latent half a, its (h, c) and the
  memory m coming up from the layer below (zig-zag through the layers, carried across steps)::

      i, f, g = sigma, sigma, tanh(conv([a, h, c]));      c' = f o c + i o g
      i', f', g' = sigma, sigma, tanh(conv([a, m, c']));  m' = f' o m + i' o g'
      h' = sigma(conv([a, h, c', m'])) o tanh(conv1x1([c', m']))

  then mixes h' into the other half with an attention gate and swaps the halves::

      g = sigma(conv1x1(h'));  b <- (1 - g) o b + g o h';  (a, b) <- (b, a)

  The predictor's width is therefore the latent's, 2C * 4^(stages - 1) (the reference's
  ``rnn_size`` = 32 is this number for one channel and three stages, and nothing else runs there),
  so it is derived, not a hyperparameter.
* Step: latent of stack j -> predictor -> decoded prediction of stack j + 1.

Protocol (the authors' ``model_mnist.py``; its modules are also OpenSTL v0.3.0's)
-------------------------------------------------------------------------------
* Training is pure teacher forcing: the S = T_in + T_out - 2 true stacks (18 on Moving MNIST) give
  S - 1 steps; the loss is the SUM over the steps of each step's MSE between the predicted and the
  true stack (:func:`crevnet_loss`; a frame is in up to three stacks, so it counts up to three
  times). Predictor states and the memory start at zero for every sequence.
* Test time (the authors' ``plot``): the predictor is WARMED UP on stacks 0 .. T_in - 4 (outputs
  discarded, nothing decoded), then reads stack T_in - 3 (the last context stack) and rolls out.
  The first prediction is stack T_in - 2 with its first two slices replaced by the true frames
  T_in - 2, T_in - 1; the second keeps the true frame T_in - 1 in its first slice; later stacks are
  all predicted. Each step's output frame is the stack's last slice: frames T_in .. T_in + n - 1.

Departures from the references, and why
---------------------------------------
* OpenSTL's test loop (v0.3.0 ``CrevNet_Model.forward``) resets the predictor and starts from the
  last context stack WITHOUT the warm-up, i.e. it conditions on 3 of the 10 context frames. We
  follow the authors. No published number the bench reports depends on OpenSTL's loop (the TAU and
  PLA-SM accuracy rows, 22.3 / 0.949, are the CrevNet paper's; the cost rows do not depend on it),
  so it is not a variant.
* Hard-coded sizes: the reference sizes the predictor state by the CONFIGURED batch size and an
  8 x 8 latent (so only 64 x 64 frames and full batches run; hence OpenSTL's ``batch_size ==
  val_batch_size`` note) and calls ``.cuda()``. Ours sizes states from the input (batch, H/2^k,
  W/2^k) on the input's device: identical values wherever the reference runs.
* OpenSTL's output reads channel 0 only (``x_in[:, 0, 2]``); ours returns every channel (the same
  for Moving MNIST's one channel).
* Two optimisers: the authors (and OpenSTL) build one Adam for the predictor and one for the
  autoencoder with identical settings (lr, betas (0.9, 0.999), eps, no weight decay; the same
  StepLR / OneCycle schedule) and step both after one backward pass. Adam's state is per
  parameter and both groups' hyperparameters are equal at every step, so the harness's single
  Adam over all parameters takes exactly the same steps; the golden test checks it in float64
  (three steps against the authors' two optimisers: losses, every parameter, running statistics).
* BatchNorm is the authors': batch statistics and running-statistic updates (momentum 0.1) in
  training mode, running statistics in evaluation mode; the decoder runs the encoder's bottlenecks,
  BN layers included, so each BN layer is updated at every encode and every decode (34 times per
  Moving MNIST training step), as in the reference (the golden test compares the statistics).
  Under data parallelism, statistics are per process (as TAU's BatchNorm); the authors used one GPU.
* Dropout(p=0) in the reference bottleneck is the identity and is left out.
* Hyperparameters (Moving MNIST) are OpenSTL v0.3.0's config (``configs/mmnist/CrevNet.py``):
  Adam lr 5e-3, one-cycle, batch 16, 200 epochs (its model-zoo run). The authors trained with Adam
  lr 5e-4, StepLR(50 epochs, x0.2) over 60 x 5,000 iterations at batch 16 (4.8M generated
  sequences, 480 of bench's 10,000-sequence epochs); the step decay is not a harness schedule
  (``crevnet:lr=0.0005:schedule=none:epochs=480`` comes closest).
* Datasets: the papers report CrevNet on Moving MNIST (TAU Table 2; PLA-SM Tables II and V) and on
  Caltech Pedestrian (TAU Table 4, PLA-SM Table III). Only Moving MNIST is configured and its rows
  are ours: no released code or configuration exists for the Caltech model (the authors' release
  is Moving MNIST only; OpenSTL v0.3.0 has no kitticaltech config), and the reference modules
  cannot run RGB frames as configured (the latent is 96 channels wide for C = 3, the predictor 32)
  nor read more than channel 0. Other datasets fall back to the Moving MNIST configuration with the
  generalised sizes above, which no paper reports (on Caltech's 3 x 128 x 160 frames: a 96-channel
  predictor, 44,960,100 parameters).

Golden tests (``tests/test_reference_crevnet.py``, fixtures by ``tools/reference_crevnet.py``): the
authors' ``layers_3d.py`` and ``model_mnist.py``'s own ``train`` (two Adam optimisers) and ``plot``
(the warm-up test loop) at reduced depth on 16 x 16 frames, with seeded weights and perturbed
running statistics; OpenSTL v0.3.0's model (its hard-coded 8 x 8 latent neutralised) pins a
2-channel, non-square geometry. Outputs, losses, Adam steps and BatchNorm statistics agree to
float64 rounding.

Cost (Moving MNIST; ``bench audit``): 4,997,444 parameters, the reference's count (published 5.0M):
autoencoder 104,516, predictor 8 x (610,560 cell + 1,056 attention). FLOPs as OpenSTL counts them
(fvcore on the TRAINING forward over the 20-frame sequence: 17 teacher-forced steps, each encoding
a stack, one predictor step and decoding; :func:`crevnet_flops_inputs`). Per step (fvcore
multiply-adds, 3x3x3 convs over the 3 x 8 x 8 = 192 latent sites): predictor 8 x 117.37M (fused
gate convs 96 -> 96 twice: 2 x 47.78M; output gate 128 -> 32: 21.23M; the 1x1 convs 64 -> 32:
0.39M and attention 32 -> 32: 0.20M), autoencoder 55.31M (encode and decode, each through every
bottleneck, BatchNorm included): 994.31M x 17 = 16.903G per sequence, with BatchNorm traced in
evaluation mode (2 FLOPs per element, 4.80M elements per sequence). OpenSTL's trace ran in
training mode, where fvcore counts 5 per element: 16.918G. PLA-SM Table V's 270.7G (also
OpenSTL's model zoo) is that count over OpenSTL's configured batch of 16 sequences (its
``display_method_info`` builds CrevNet's dummy input with the batch size, "crevnet must use the
batchsize rather than 1"): 16 x 16.918G = 270.68G; :func:`explain_cost` measures this for the audit.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from bench.errors import BenchError
from bench.spec.hparams import Int, IntTuple
from bench.spec.method import CostQuestion, PublishedCost
from bench.spec.registry import DatasetSpec, register_method

#: Temporal depth of a stack (every convolution is 3-D over it).
STACK = 3


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """Space-to-depth by 2: (B, C, T, H, W) -> (B, 4C, T, H/2, W/2), channel = (row * 2 + col) * C + c."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // 2, 2, w // 2, 2).permute(0, 4, 6, 1, 2, 3, 5)
    return x.reshape(b, 4 * c, t, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`squeeze`."""
    b, c4, t, h, w = x.shape
    x = x.reshape(b, 2, 2, c4 // 4, t, h, w).permute(0, 3, 4, 5, 1, 6, 2)
    return x.reshape(b, c4 // 4, t, 2 * h, 2 * w)


class RevBlock(nn.Module):
    """One i-RevNet block: (x1, x2) -> (S^s x2, F(x2) + S^s x1) and its inverse (module docstring)."""

    def __init__(self, in_width: int, width: int, stride: int, first: bool):
        super().__init__()
        half, mid = in_width // 2, max(width // 2, 1)
        layers: list[nn.Module] = [] if first else [nn.BatchNorm3d(half), nn.ReLU()]
        layers += [nn.Conv3d(half, mid, 3, stride=(1, stride, stride), padding=1, bias=False),
                   nn.BatchNorm3d(mid), nn.ReLU(), nn.Conv3d(mid, mid, 3, padding=1, bias=False),
                   nn.BatchNorm3d(mid), nn.ReLU(), nn.Conv3d(mid, width, 3, padding=1, bias=False)]
        self.bottleneck = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residual = self.bottleneck(x2)
        if self.stride == 2:
            x1, x2 = squeeze(x1), squeeze(x2)
        return x2, residual + x1

    def inverse(self, x2: torch.Tensor, y1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride == 2:
            x2 = unsqueeze(x2)
        x1 = y1 - self.bottleneck(x2)
        if self.stride == 2:
            x1 = unsqueeze(x1)
        return x1, x2


class RevAutoencoder(nn.Module):
    """Squeeze, then reversible stages (stride 1, then 2, 2, ...); ``decode`` is the exact inverse map."""

    def __init__(self, channels: int, n_blocks: tuple[int, ...]):
        super().__init__()
        self.half = 2 * channels
        blocks, in_width = [], 4 * channels
        for stage, depth in enumerate(n_blocks):
            width = self.half * 4 ** stage
            for k in range(depth):
                blocks.append(RevBlock(in_width, width, 2 if stage and not k else 1, first=not blocks))
                in_width = 2 * width
        self.blocks = nn.ModuleList(blocks)
        self.width = in_width // 2  # of each latent half

    def encode(self, stack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = squeeze(stack)
        x1, x2 = x[:, :self.half], x[:, self.half:]
        for block in self.blocks:
            x1, x2 = block(x1, x2)
        return x1, x2

    def decode(self, latent: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x1, x2 = latent
        for block in reversed(self.blocks):
            x1, x2 = block.inverse(x1, x2)
        return unsqueeze(torch.cat([x1, x2], dim=1))


class STConvLSTMCell(nn.Module):
    """The reference's spatiotemporal ConvLSTM cell (module docstring); gate convs fused per input."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.conv_c = nn.Conv3d(3 * width, 3 * width, 3, padding=1)  # i, f, g from [a, h, c]
        self.conv_m = nn.Conv3d(3 * width, 3 * width, 3, padding=1)  # i', f', g' from [a, m, c']
        self.conv_o = nn.Conv3d(4 * width, width, 3, padding=1)      # o from [a, h, c', m']
        self.conv_h = nn.Conv3d(2 * width, width, 1)                 # [c', m'] -> h'

    def forward(self, a, memo, h, c):
        i, f, g = torch.split(self.conv_c(torch.cat([a, h, c], dim=1)), self.width, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        i, f, g = torch.split(self.conv_m(torch.cat([a, memo, c], dim=1)), self.width, dim=1)
        memo = torch.sigmoid(f) * memo + torch.sigmoid(i) * torch.tanh(g)
        o = torch.sigmoid(self.conv_o(torch.cat([a, h, c, memo], dim=1)))
        return o * torch.tanh(self.conv_h(torch.cat([c, memo], dim=1))), c, memo


class ZigRevPredictor(nn.Module):
    """``step(latent, memo, state) -> (latent', memo', state')``: the cells with attention mixing and swaps."""

    def __init__(self, width: int, n_layers: int):
        super().__init__()
        self.cells = nn.ModuleList(STConvLSTMCell(width) for _ in range(n_layers))
        self.att = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(n_layers))

    def step(self, latent, memo, state):
        a, b = latent
        new_state = []
        for cell, att, (h, c) in zip(self.cells, self.att, state):
            h, c, memo = cell(a, memo, h, c)
            gate = torch.sigmoid(att(h))
            b = (1 - gate) * b + gate * h
            a, b = b, a
            new_state.append((h, c))
        return (a, b), memo, new_state


def stacks(seq: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T - 2, C, 3, H, W): stack j holds frames j, j+1, j+2."""
    return seq.unfold(1, STACK, 1).permute(0, 1, 2, 5, 3, 4)


class CrevNet(nn.Module):
    """``forward(x)``: the authors' test rollout from the context (B, T_in, C, H, W) to ``pred_len``
    frames; ``forward(x, y)``: the teacher-forced training pass over cat(x, y), returning the
    predicted stacks 1 .. S-1 (B, S - 1, C, 3, H, W) (compare with ``stacks(cat(x, y))[:, 1:]``)."""

    def __init__(self, data: DatasetSpec, n_blocks: tuple[int, ...], predictor_layers: int):
        super().__init__()
        self.frame_shape, self.out_frames = tuple(data.frame_shape), data.out_frames
        self.autoencoder = RevAutoencoder(data.channels, tuple(n_blocks))
        self.predictor = ZigRevPredictor(self.autoencoder.width, predictor_layers)
        self.grid = (data.height // 2 ** len(n_blocks), data.width // 2 ** len(n_blocks))

    def initial_state(self, like: torch.Tensor):
        zeros = like.new_zeros(like.shape[0], self.autoencoder.width, STACK, *self.grid)
        return zeros, [(zeros, zeros) for _ in self.predictor.cells]

    def step(self, stack: torch.Tensor, memo, state, decode: bool = True):
        latent, memo, state = self.predictor.step(self.autoencoder.encode(stack), memo, state)
        return (self.autoencoder.decode(latent) if decode else None), memo, state

    def teacher_forced(self, seq: torch.Tensor) -> torch.Tensor:
        true = stacks(seq)
        memo, state = self.initial_state(seq)
        preds = []
        for j in range(true.shape[1] - 1):
            pred, memo, state = self.step(true[:, j], memo, state)
            preds.append(pred)
        return torch.stack(preds, dim=1)

    def rollout(self, x: torch.Tensor, n_out: int) -> torch.Tensor:
        context = stacks(x)
        memo, state = self.initial_state(x)
        for j in range(context.shape[1] - 1):  # warm-up on the earlier context stacks
            _, memo, state = self.step(context[:, j], memo, state, decode=False)
        current, outs = context[:, -1], []
        for k in range(n_out):
            pred, memo, state = self.step(current, memo, state)
            if k == 0:  # stack T_in - 2: the two true frames T_in - 2, T_in - 1, then the prediction
                pred = torch.stack([x[:, -2], x[:, -1], pred[:, :, 2]], dim=2)
            elif k == 1:  # stack T_in - 1: the true frame T_in - 1 first
                pred = torch.stack([x[:, -1], pred[:, :, 1], pred[:, :, 2]], dim=2)
            outs.append(pred[:, :, 2])
            current = pred
        return torch.stack(outs, dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, pred_len: int | None = None) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != self.frame_shape or x.shape[1] < STACK:
            raise BenchError(f"CrevNet expects frames of shape (B, T>={STACK}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(x.shape)}")
        if y is not None:
            return self.teacher_forced(torch.cat([x, y], dim=1))
        n_out = self.out_frames if pred_len is None else int(pred_len)
        if n_out < 1:
            raise BenchError(f"pred_len must be at least 1, got {pred_len!r}")
        return self.rollout(x, n_out)


def crevnet_loss(pred: torch.Tensor, target: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """The authors' objective: the sum over the steps (dim 1) of each step's MSE."""
    return ((pred - target) ** 2).mean(dim=(0, *range(2, pred.dim()))).sum()


def crevnet_train_step(model: CrevNet, x: torch.Tensor, y: torch.Tensor, hp: Mapping[str, Any], progress: float):
    """(predicted stacks 1 .. S-1, true stacks 1 .. S-1), teacher-forced as the authors train."""
    return model(x, y), stacks(torch.cat([x, y], dim=1))[:, 1:]


def crevnet_predict(model: CrevNet, x: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    return model(x, pred_len=hp.get("pred_len"))


def crevnet_flops_inputs(data: DatasetSpec) -> tuple[torch.Tensor, ...]:
    """The training forward OpenSTL counts: the (1, T_in + T_out) sequence, every step decoded."""
    return torch.zeros(1, data.in_frames, *data.frame_shape), torch.zeros(1, data.out_frames, *data.frame_shape)


def batchnorm_elements(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Elements normalised by BatchNorm layers in one forward of ``inputs`` (evaluation mode)."""
    total = [0]

    def count(module, args, out):
        total[0] += out.numel()

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total[0]


#: OpenSTL v0.3.0's Moving MNIST batch size, which its FLOPs count of CrevNet used as the dummy batch.
OPENSTL_COUNT_BATCH = 16


def explain_cost(q: CostQuestion) -> list[str]:
    """``bench audit``: the published FLOPs are OpenSTL's count over a batch of 16 (BN in training mode)."""
    key, data, hp, figures, ref = q.key, q.data, q.hp, q.figures, q.published
    with torch.random.fork_rng(devices=[]):
        model = key.spec.create_model(data, hp)
    bn = batchnorm_elements(model, crevnet_flops_inputs(data))
    per_seq, batch = figures["flops"] + 3 * bn, OPENSTL_COUNT_BATCH
    frames = data.in_frames + data.out_frames
    return [f"FLOPs counted as the reference counts them (OpenSTL v0.3.0: fvcore on the TRAINING forward over the "
            f"{frames}-frame sequence, {frames - 3} teacher-forced steps): {figures['flops'] / 1e9:.3f}G per sequence "
            f"with BatchNorm traced in evaluation mode (2 FLOPs per element); OpenSTL's trace ran in training mode, "
            f"where fvcore counts 5 per element: +3 x {bn / 1e6:.2f}M = {per_seq / 1e9:.3f}G per sequence",
            f"the published {ref.flops / 1e9:.1f}G is OpenSTL's count over its configured batch of {batch} sequences "
            f"(its display_method_info builds CrevNet's dummy input with the batch size): {batch} x "
            f"{per_seq / 1e9:.3f}G = {batch * per_seq / 1e9:.2f}G ({batch * per_seq / ref.flops - 1:+.2%})",
            f"params {figures['params']:,}: the reference's count (4,997,444 on Moving MNIST; published "
            f"{ref.params / 1e6:.1f}M)"]


#: The published cost of this method's keys (``bench audit`` compares its own count with it).
PUBLISHED_COSTS = (
    PublishedCost("crevnet", "mmnist", 5e6, 270.7e9,
                  'PLA-SM Table V: 270.7G, 5.0M; OpenSTL model zoo (CrevNet, MMNIST): 5.0M, 270.7G, counted '
                  'over a batch of 16 sequences (see the explanation)'),
)


@register_method(
    "crevnet",
    published_costs=PUBLISHED_COSTS,
    explain_cost=explain_cost,
    citation="Yu, Lu, Easterbrook, Fidler. Efficient and Information-Preserving Future Frame Prediction and Beyond. "
             "ICLR 2020.",
    description="CrevNet: invertible 3-D i-RevNet two-way autoencoder on 3-frame stacks around a reversible "
                "ConvLSTM predictor; teacher-forced training, warmed-up autoregressive test",
    # the base is the Moving MNIST configuration (the only dataset with one)
    hparams={"*": {"n_blocks": (4, 5, 3), "predictor_layers": 8, "optimizer": "adam", "weight_decay": 0.0,
                   "lr": 5e-3, "schedule": "onecycle", "batch_size": 16, "epochs": 200}},
    tiny={"n_blocks": (1, 1), "predictor_layers": 2},
    loss=crevnet_loss,
    train_step=crevnet_train_step,
    predict=crevnet_predict,
    flops_inputs=crevnet_flops_inputs,
    recurrent=True,
    params={"n_blocks": IntTuple(min=1, doc="reversible blocks per autoencoder stage (stage 1 stride 1, later "
                                            "stages stride 2); the latent is 2C*4^(stages-1) wide at H/2^stages"),
            "predictor_layers": Int(min=1, doc="spatiotemporal ConvLSTM layers of the reversible predictor")},
)
def build_crevnet(data: DatasetSpec, n_blocks: tuple[int, ...], predictor_layers: int) -> CrevNet:
    """Build CrevNet for ``data`` (frames divisible by 2^stages, at least 3 context frames)."""
    scale = 2 ** len(n_blocks)
    if data.height % scale or data.width % scale:
        raise BenchError(f"dataset {data.name!r} has {data.height}x{data.width} frames; CrevNet with "
                         f"{len(n_blocks)} stages needs both divisible by {scale}: set crevnet:n_blocks with fewer "
                         f"stages, e.g. crevnet:n_blocks=(4,5)")
    if data.in_frames < STACK:
        raise BenchError(f"dataset {data.name!r} gives {data.in_frames} context frames; CrevNet reads 3-frame "
                         f"stacks and needs at least {STACK}")
    return CrevNet(data, n_blocks, predictor_layers)
