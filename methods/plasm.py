"""PLA-SM: Pair-wise Layer Attention with Spatial Masking (Li, Zhang, Yang, Xu, Song).

Spec: the paper, section III (/work/shared/papers/pla-sm.md). This harness follows the PAPER. The
authors' released code differs from it (it has no C x C masked attention in the SM module and a
different PLA gate) and cannot run its own pretrain -> train path, so it was not used as a reference.

Model (``x`` (B, T, C, H, W) -> (B, T', C, H, W)):

* Encoder (III-C): the B*T frames are encoded one by one by M blocks of 3x3 conv + GroupNorm +
  LeakyReLU, stride 2 at the 2nd, 4th... layer (strides [1, 2, 1, 2] for M=4, [1, 2, 1] for M=3),
  so H' = H / 2^floor(M/2) as the paper states. The features are then stacked along channels:
  S = reshape((B, T, C~, H', W') -> (B, T*C~, H', W')), channel index t*C~ + c (frame-major).
* Translator (III-D): N ConvNeXt blocks (eq. 2, 7x7 depth-wise conv, GN, 1x1 to 4C^, LeakyReLU,
  1x1 back to C^, residual) then N PLA blocks; PLA block j pairs with ConvNeXt block N-j+1; the
  first PLA block's previous output is Z-bar_0 = Z_N. In a PLA block Q = squeeze(Conv1x1(GAP(Z_i))),
  K = the same on the previous PLA output (own 1x1 conv), V = DWConv3x3(ConvNeXt(Z-bar)) (eq. 3),
  the "global (1x1)" score per head broadcast over V: Z-bar_next = a * V. Finally a 1x1 conv maps
  C^ -> T'*C~.
* Decoder (III-E): the translator output is reshaped to (B*T', C~, H', W') and decoded by M 3x3
  transposed convs + GN + LeakyReLU whose strides mirror the encoder's ([2, 1, 2, 1] for M=4),
  then a 1x1 readout C~ -> C.

Two-stage training (III-F, III-G, IV-B), implemented in :func:`pretrain_plasm` (the MethodSpec
``pretrain`` stage, run before the runner's training loop):

1. Pretraining: a freshly Kaiming-initialised encoder + SM module + decoder reconstructs the
   training input frames from pixel-masked frames (ratio ``r0``); loss MSE over all pixels of
   every input frame (eq. 4); Adam, ``pretrain_lr`` (0.01), ``pretrain_epochs`` (50), batch
   ``batch_size`` (16: IV-B gives B=16 for pretraining and no other batch size, so both stages use it).
2. Training: the model's encoder and decoder are loaded from pretraining, the encoder is frozen
   (requires_grad False), the translator is re-initialised with Kaiming init; the runner then trains
   the trainable parameters (translator + decoder) with MSE on the T' future frames (eq. 5).

Choices where the paper is ambiguous or silent (section in brackets):

* C~ vs C^ [III-C, III-D, Table I]: C~ (``enc_channels``) is the encoder/decoder width per frame,
  C^ (``hid_channels``) the translator width. The text types Z_i in R^{B x C~ x H' x W'} "where
  C~ = 512"; Table I and the inverted bottleneck "C^ -> 4C^ -> C^" show that is C^.
* Translator input [III-D]: the paper says Z_0 = S, but S has T*C~ channels (640 on Moving MNIST)
  and the ConvNeXt blocks C^ (512); a 1x1 conv T*C~ -> C^ is inserted before the first block. The
  output 1x1 conv C^ -> T'*C~ is the paper's "last PLA layer changed to T'*C~ by 1x1 convolution".
* PLA score normalisation [III-D]: the paper's A = Softmax(Q^T K / sqrt(C^)) is a single logit per
  head, and the softmax of one logit is identically 1 (the block would ignore Q, K and the
  pairing). We read it as the two-way softmax of the score against a zero "null" logit, i.e.
  sigmoid(s), which "makes the dot production value fall in between 0 and 1" and works for any head
  count (Table XI includes 1 head). ``pla_gate="head-softmax"`` gives the other reading: softmax of
  the per-head scores across heads (degenerate for 1 head). The per-head scaling is sqrt(C^/heads)
  (head dimension), the multi-head generalisation of sqrt(C^).
* Multi-head [III-D]: heads are contiguous channel groups of Q, K and V; one score per head.
* No residual around the PLA attention and none in the SM module: the paper gives the outputs as
  a * V and Softmax(A-hat) V.
* Sparse convolution [III-C]: no sparse-conv library; the encoder emulates it densely. The masked
  frame enters as zeros, and after every conv, norm and activation the features are multiplied by
  the layer's active-site mask, so a masked pixel never reaches any output. A stride-1 layer keeps
  the active set (submanifold conv); a stride-2 layer's output site is active iff its 3x3 receptive
  field holds an active site (max-pool 3/2/1 of the mask), which is what a strided sparse conv does.
  GroupNorm statistics use the active sites only (a sparse norm). Masked sites reach the SM module
  and decoder as zeros (no mask token: the paper mentions none). Outside pretraining the encoder
  is an ordinary dense conv stack with the same weights.
* Pixel masking [III-F, IV-B]: each frame independently, floor(r0*H*W) pixel locations masked
  (all channels of a location together), drawn uniformly; the draws are seeded by the run seed.
* SM [III-F]: Q, K come from separate GAP + 1x1 convs (with bias); the top floor(r*C~^2) entries of
  A (by value, ties broken by ``topk``) are set to -inf; Softmax is over each row of A-hat (the last
  axis), and a row whose entries are all masked outputs zeros instead of NaN. Applied per frame.
* Reconstruction loss [III-G eq. 4]: MSE over all pixels, masked and visible.
* "Mask" without SM [IV-E, Table VI row 2]: pretraining with masked inputs whose encoder features
  go straight to the decoder (the SM module removed, not replaced): a masked convolutional
  autoencoder. The other reading, SM attention without feature masking, is ``plasm:mask-sm:r=0``.
* Ablations without PLA [Table VI rows 1-3, Table X]: each PLA block is reduced to its Value path
  DWConv3x3(ConvNeXt(.)) with no Q, K, score or pairing, so the translator keeps its depth and
  nearly all its parameters and only the pair-wise attention is removed.
* No ConvNeXt [Table X]: every ConvNeXt block (also the one inside PLA's Value path) becomes a
  plain 7x7 conv (C^ -> C^) + GN + LeakyReLU without residual. Table X is "without pretraining",
  so ``no-convnext`` is its row 2 (PLA, no pretraining); row 1 is ``no-convnext-no-pla``.
* Variants without pretraining (``base``, ``pla``, ``no-convnext*``) train the whole model,
  encoder included, from Kaiming initialisation: freezing applies to a pretrained encoder (III-G).
* Norms and activations [III-C..E]: GroupNorm with ``groups`` = 2 groups everywhere (as in SimVP
  [10], which this design extends; ConvNeXt's LayerNorm is replaced by GN as the paper says);
  LeakyReLU slope ``slope`` = 0.2 (SimVP's); no layer scale in ConvNeXt blocks; linear 1x1
  readout (no output activation).
* Initialisation [IV-B]: Kaiming normal (fan-in, leaky-ReLU gain with the model's slope), zero
  biases, GN weight 1 / bias 0, for every conv of every model at build time.
* Pretraining optimiser [IV-B]: Adam (0.9, 0.999), constant lr (the paper gives no schedule for
  pretraining).
* Training [IV-B, Table I]: Adam, lr 0.01 on Moving MNIST and 0.001 elsewhere; one-cycle, cosine on
  TaxiBJ; 2 heads on Moving MNIST, Human3.6M, KTH, 8 on TaxiBJ and KITTI&Caltech. Batch 16
  (the only batch size in the paper).

Pretraining reuse: with ``ctx.cache_dir`` set, the pretrained encoder + decoder are stored under
``plasm-pretrain-<sha256[:16]>.pt`` of everything pretraining depends on (frame geometry, T,
dataset name, C~, M, groups, slope, sm, r0, r (only with SM), pretrain epochs and lr, batch size,
seed, ``ctx.extra["sizes"]``/``ctx.extra["data_seed"]``, a code version) and reused when present,
so e.g. ``plasm`` and ``plasm:mask-sm`` share one pretraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.methods.plasm_modules import Decoder, Encoder, SpatialMasking, Translator, kaiming_init
from bench.registry import DatasetSpec, register_method

CITATION = ("P. Li, C. Zhang, Z. Yang, X. Xu, M. Song, \"Pair-wise Layer Attention with Spatial Masking "
            "for Video Prediction\"")

#: Bump when a change to the code changes what pretraining produces (invalidates cached encoders).
PRETRAIN_VERSION = 1


class PLASM(nn.Module):
    """Encoder -> U-shaped ConvNeXt/PLA translator -> decoder (see the module docstring)."""

    def __init__(self, in_frames: int, out_frames: int, channels: int, enc_channels: int, hid_channels: int,
                 enc_layers: int, blocks: int, heads: int, groups: int, slope: float, pla: bool, convnext: bool,
                 pla_gate: str):
        super().__init__()
        self.in_frames, self.out_frames, self.enc_channels = in_frames, out_frames, enc_channels
        self.encoder = Encoder(channels, enc_channels, enc_layers, groups, slope)
        self.translator = Translator(in_frames * enc_channels, out_frames * enc_channels, hid_channels, blocks,
                                     heads, groups, slope, convnext=convnext, pla=pla, gate=pla_gate)
        self.decoder = Decoder(enc_channels, channels, enc_layers, groups, slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        feats = self.encoder(x.reshape(b * t, c, h, w))
        _, ce, hh, ww = feats.shape
        z = self.translator(feats.reshape(b, t * ce, hh, ww))
        y = self.decoder(z.reshape(b * self.out_frames, ce, hh, ww))
        return y.reshape(b, self.out_frames, c, h, w)


class PretrainNet(nn.Module):
    """Pretraining network (III-F): encoder with pixel masking -> SM (or nothing) -> decoder."""

    def __init__(self, channels: int, enc_channels: int, enc_layers: int, groups: int, slope: float, sm: bool,
                 r: float):
        super().__init__()
        self.encoder = Encoder(channels, enc_channels, enc_layers, groups, slope)
        self.sm = SpatialMasking(enc_channels, r) if sm else nn.Identity()
        self.decoder = Decoder(enc_channels, channels, enc_layers, groups, slope)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) frames and (N, 1, H, W) visibility mask -> reconstructed (N, C, H, W)."""
        return self.decoder(self.sm(self.encoder(frames, mask)))


def pixel_mask(n: int, h: int, w: int, r0: float, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 1, h, w) float mask, 1 = visible, with exactly floor(r0*h*w) masked pixels per frame."""
    if not 0.0 <= r0 <= 1.0:
        raise BenchError(f"pixel mask ratio r0={r0} is outside [0, 1]; set e.g. plasm:r0=0.96")
    k = int(math.floor(r0 * h * w + 1e-9))
    order = torch.rand(n, h * w, generator=generator).argsort(dim=1)
    mask = torch.ones(n, h * w)
    mask.scatter_(1, order[:, :k], 0.0)
    return mask.view(n, 1, h, w).to(device)


PRETRAIN_GEOMETRY_KEYS = ("enc_channels", "enc_layers", "groups", "slope")


def build_pretrain_net(data: DatasetSpec, hp: Mapping[str, Any]) -> PretrainNet:
    return PretrainNet(data.channels, hp["enc_channels"], hp["enc_layers"], hp["groups"], hp["slope"],
                       bool(hp["sm"]), hp["r"])


def pretrain_key(data: DatasetSpec, hp: Mapping[str, Any], seed: int, extra: Mapping[str, Any]) -> str:
    """Hash of everything the pretrained encoder/decoder depend on."""
    parts = {
        "version": PRETRAIN_VERSION,
        "dataset": data.name,
        "frame_shape": list(data.frame_shape),
        "in_frames": data.in_frames,
        **{k: hp[k] for k in PRETRAIN_GEOMETRY_KEYS},
        "sm": bool(hp["sm"]),
        "r": hp["r"] if hp["sm"] else None,
        "r0": hp["r0"],
        "pretrain_epochs": hp["pretrain_epochs"],
        "pretrain_lr": hp["pretrain_lr"],
        "batch_size": hp["batch_size"],
        "seed": seed,
        "sizes": dict(sorted((extra.get("sizes") or {}).items())),
        "data_seed": extra.get("data_seed"),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_pretraining(net: PretrainNet, ctx: Any) -> list[float]:
    """Masked reconstruction of the training input frames (eq. 4); returns the mean loss per epoch."""
    hp = ctx.hp
    opt = torch.optim.Adam(net.parameters(), lr=hp["pretrain_lr"], betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(int(ctx.seed) * 1_000_003 + 17)
    net.train()
    step, losses = 0, []
    for epoch in range(int(hp["pretrain_epochs"])):
        total, count = 0.0, 0
        for x, _ in ctx.splits.batches("train", int(hp["batch_size"]), epoch):
            b, t, c, h, w = x.shape
            frames = x.reshape(b * t, c, h, w).to(ctx.device)
            mask = pixel_mask(b * t, h, w, hp["r0"], gen, ctx.device)
            loss = F.mse_loss(net(frames, mask), frames)
            ctx.check_finite(loss, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b
            count += b
            step += 1
        if count == 0:
            raise BenchError("PLA-SM pretraining got an empty training split; give the dataset training sequences")
        losses.append(total / count)
        ctx.log(f"plasm pretrain epoch {epoch + 1}/{hp['pretrain_epochs']}: loss {losses[-1]:.6f}")
    return losses


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pretrain_plasm(model: PLASM, ctx: Any) -> dict:
    """Stage 1 (III-F/G): SM pretraining, then load encoder/decoder, freeze encoder, Kaiming translator."""
    hp = ctx.hp
    if not hp["pretrain"]:
        return {"pretrained": False, "reason": "variant without SM pretraining: encoder trained from scratch"}
    key = pretrain_key(ctx.data, hp, ctx.seed, ctx.extra)
    path = Path(ctx.cache_dir) / f"plasm-pretrain-{key}.pt" if ctx.cache_dir is not None else None
    start = time.perf_counter()
    state = None
    if path is not None and path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            ctx.log(f"plasm: reusing pretrained encoder/decoder {path}")
        except Exception as exc:  # a truncated or foreign file: pretrain again and overwrite it
            ctx.log(f"plasm: cannot read cached pretraining {path} ({exc}); pretraining again")
            state = None
    reused = state is not None
    if state is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.seed))
            net = build_pretrain_net(ctx.data, hp)
            kaiming_init(net, hp["slope"])
        net.to(ctx.device)
        losses = _run_pretraining(net, ctx)
        state = {
            "encoder": {k: v.detach().cpu() for k, v in net.encoder.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in net.decoder.state_dict().items()},
            "epoch_loss": losses,
            "seconds": time.perf_counter() - start,
        }
        if path is not None:
            _save_atomic(state, path)
    model.encoder.load_state_dict(state["encoder"])
    model.decoder.load_state_dict(state["decoder"])
    model.encoder.requires_grad_(False)
    device = next(model.translator.parameters()).device
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(int(ctx.seed) + 1)  # seeds (and fork_rng restores) the CPU and that GPU's RNG
        kaiming_init(model.translator, hp["slope"])
    return {
        "pretrained": True,
        "reused": reused,
        "cache_key": key,
        "cache_file": str(path) if path is not None else None,
        "sm": bool(hp["sm"]),
        "r0": hp["r0"],
        "r": hp["r"],
        "epochs": int(hp["pretrain_epochs"]),
        "epoch_loss": [float(v) for v in state["epoch_loss"]],
        "pretrain_seconds": float(state["seconds"]),
        "seconds": time.perf_counter() - start,
    }


_COMMON: dict[str, Any] = {
    # Ablation switches (Table VI, X); the full model has all on.
    "pretrain": True,  # stage-1 masked pretraining (then frozen encoder)
    "sm": True,  # SM module in pretraining (else encoder -> decoder directly)
    "pla": True,  # pair-wise layer attention in the translator
    "convnext": True,  # ConvNeXt blocks (else 7x7 vanilla conv)
    "pla_gate": "sigmoid",
    "r": 0.1,  # SM mask ratio (IV-B)
    "groups": 2,
    "slope": 0.2,
    "pretrain_epochs": 50,
    "pretrain_lr": 0.01,
    "optimizer": "adam",
    "batch_size": 16,
    "weight_decay": 0.0,
    "clip_grad": 0.0,
}

_MMNIST = {"r0": 0.96, "enc_channels": 64, "hid_channels": 512, "enc_layers": 4, "blocks": 4, "heads": 2,
           "epochs": 2000, "lr": 0.01, "schedule": "onecycle"}

HPARAMS: dict[str, dict[str, Any]] = {
    "*": {**_COMMON, **_MMNIST},
    "mmnist": dict(_MMNIST),
    "taxibj": {"r0": 0.97, "enc_channels": 32, "hid_channels": 256, "enc_layers": 2, "blocks": 4, "heads": 8,
               "epochs": 50, "lr": 0.001, "schedule": "cosine"},
    "human36m": {"r0": 0.95, "enc_channels": 64, "hid_channels": 128, "enc_layers": 2, "blocks": 3, "heads": 2,
                 "epochs": 50, "lr": 0.001, "schedule": "onecycle"},
    "kitti_caltech": {"r0": 0.95, "enc_channels": 64, "hid_channels": 256, "enc_layers": 2, "blocks": 3,
                      "heads": 8, "epochs": 50, "lr": 0.001, "schedule": "onecycle"},
    "kth": {"r0": 0.90, "enc_channels": 32, "hid_channels": 128, "enc_layers": 3, "blocks": 3, "heads": 2,
            "epochs": 100, "lr": 0.001, "schedule": "onecycle"},
}

VARIANTS: dict[str, dict[str, Any]] = {
    # Table VI (Mask / SM / PLA); the full model (all three) is plain ``plasm``.
    "base": {"pretrain": False, "pla": False},
    "mask": {"pretrain": True, "sm": False, "pla": False},
    "mask-sm": {"pretrain": True, "sm": True, "pla": False},
    "pla": {"pretrain": False, "pla": True},
    # Table X (without pretraining): 7x7 vanilla conv in place of ConvNeXt, with / without PLA.
    "no-convnext": {"pretrain": False, "convnext": False, "pla": True},
    "no-convnext-no-pla": {"pretrain": False, "convnext": False, "pla": False},
}

TINY: dict[str, Any] = {"enc_channels": 8, "hid_channels": 16, "enc_layers": 2, "blocks": 2, "heads": 2,
                        "pretrain_epochs": 1}


@register_method(
    "plasm",
    citation=CITATION,
    hparams=HPARAMS,
    variants=VARIANTS,
    tiny=TINY,
    pretrain=pretrain_plasm,
    description="PLA-SM: encoder / U-shaped ConvNeXt + pair-wise layer attention translator / decoder, "
                "with spatial-masking pretraining and a frozen encoder",
)
def build_plasm(data: DatasetSpec, enc_channels: int, hid_channels: int, enc_layers: int, blocks: int, heads: int,
                groups: int, slope: float, pla: bool, convnext: bool, pla_gate: str, r0: float, r: float,
                pretrain: bool, sm: bool, pretrain_epochs: int, pretrain_lr: float) -> PLASM:
    """Build PLA-SM for ``data``; r0, r, sm, pretrain* only steer the pretraining stage."""
    if not 0.0 <= r0 <= 1.0 or not 0.0 <= r <= 1.0:
        raise BenchError(f"PLA-SM mask ratios must lie in [0, 1] (got r0={r0}, r={r}); set e.g. plasm:r0=0.96")
    for name, value in (("enc_channels", enc_channels), ("hid_channels", hid_channels)):
        if value % groups:
            raise BenchError(f"PLA-SM {name}={value} is not divisible by groups={groups}; change one of them")
    if hid_channels % heads:
        raise BenchError(f"PLA-SM hid_channels={hid_channels} is not divisible by heads={heads}; pick a divisor")
    if pla_gate not in ("sigmoid", "head-softmax"):
        raise BenchError(f"PLA-SM pla_gate={pla_gate!r}; choose 'sigmoid' or 'head-softmax'")
    scale = 2 ** (enc_layers // 2)
    if data.height % scale or data.width % scale:
        raise BenchError(f"PLA-SM with enc_layers={enc_layers} needs H, W divisible by {scale}; "
                         f"{data.name} is {data.height}x{data.width}: lower enc_layers")
    model = PLASM(data.in_frames, data.out_frames, data.channels, enc_channels, hid_channels, enc_layers, blocks,
                  heads, groups, slope, bool(pla), bool(convnext), pla_gate)
    kaiming_init(model, slope)
    return model
