"""PLA-SM: Pair-wise Layer Attention with Spatial Masking (Li, Zhang, Yang, Xu, Song).

Spec: the paper, section III (/work/shared/papers/pla-sm.md). ``plasm`` and its ablations follow
the PAPER TEXT. The authors' released code (mlvccn/PLA_SM_VideoPred) differs from the text in
several places; it was read (never copied) for one purpose only: the ``plasm:released`` variant,
which takes the released code's LAYOUT -- the three choices that decide its cost -- and keeps the
paper's semantics everywhere else, so that the efficiency of Table V can be reproduced (see
"Released layout" and "Cost against Table V" below).

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

Two-stage training (III-F, III-G, IV-B): the MethodSpec ``pretrain`` stage, run before the runner's
training loop, is the shared spatial-masking pretraining of :mod:`bench.blocks.masked_pretrain` with
PLA-SM's encoder and decoder (:data:`PLASM_SM`):

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
  The released code's answer, a first ConvNeXt block at T*C~ reducing to C^, is
  ``translator_in="wide-block"`` (see "Released layout").
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

Released layout (``plasm:released``; hyperparameters ``translator_in``, ``qk``, ``upsample``)
-------------------------------------------------------------------------------------------
Read from the released ``models/simvp_model.py`` (the translator type the release trains for
PLA-SM, its layer-attention module and its decoder), described in words:

* ``translator_in="wide-block"``: the release has no separate input projection; its first
  translator block is a ConvNeXt block at the input width T*C~ (residual at T*C~) that ends in a
  1x1 reduction to C^. Here: our eq.-(2) block at T*C~ (inverted bottleneck 4*T*C~, as eq. 2's
  text) followed by a 1x1 conv T*C~ -> C^, in place of the paper-text 1x1 projection + first block
  at C^ (III-D says Z_0 = S and is silent on the width change). Z_1 is the reduced output. The
  release's last block reduces back to T'*C~, which is our out-projection (same cost).
* ``qk="eca"``: the release pools the feature globally and forms Q and K with a bias-free 1-D
  convolution of 3 taps ALONG THE CHANNEL AXIS of the pooled vector (as in ECA-Net), not with the
  C^ x C^ 1x1 convolutions of III-D. Here: one such conv for Q and one for K in every PLA block
  (``eca_kernel`` = 3 taps, zero padding); Q still comes from Z_i and K from Z-bar (III-D).
* ``upsample="pixelshuffle"``: the release's decoder upsamples with a 3x3 conv C~ -> 4*C~ at the
  input resolution followed by PixelShuffle(2) instead of III-E's stride-2 transposed conv; its
  stride-1 layers are plain 3x3 convs. The pretraining network uses the same decoder, so
  ``plasm:released`` has its own pretraining cache entry.
* Counted densely: the release's encoder is a sparse (MinkowskiEngine) conv stack, which fvcore
  cannot trace; ours is the dense stack of III-C (sparse emulation only while pretraining), and
  Table V's cost is matched with dense counting.

Not taken from the release (the paper text wins; none of them closes the gap below): Q and K
both computed from the paired skip feature, the attention output added to its input and passed
through a GroupNorm + residual, and one attention module shared by all steps (III-D: Q from Z_i,
K from Z-bar, output a*V, one PLA block per step); 32 heads of 16 channels (IV-B: 2 heads on
Moving MNIST); ConvNeXt blocks with LayerNorm, GELU, layer scale and an 8x inverted bottleneck
(eq. 2: GN, LReLU, 4x; with 8x the model would have about 37.3M parameters, far from Table V);
SiLU activations; an additive skip from the first encoder layer to the last decoder layer (III-E
has none); the configuration file shipped with the release (C^=128, N=2, M=2) instead of Table I.

Cost against Table V (fvcore, one (1, 10, 1, 64, 64) sample, multiply-add = 1 FLOP; Moving MNIST
configuration of Table I: C~=64, C^=512, M=4, N=4, T=T'=10, so S has T*C~ = 640 channels at 16x16)
------------------------------------------------------------------------------------------------
Table V: 19.3M parameters, 9.6G FLOPs.

* ``plasm`` (paper text): 20,049,153 params (+3.9%), 7.815G FLOPs (-18.6%).
* ``plasm:released``: 19,356,441 params (+0.29%), 9.533G FLOPs (-0.70%).

The three layout choices account exactly for the difference between the two (each measured on
its own from ``plasm``; they add up):

* Q/K projections: N=4 PLA blocks x 2 x (512*512 + 512) = 2,101,248 params of 1x1 convs replaced
  by 4 x 2 x 3 = 24 ECA taps: -2,101,224 params. FLOPs: the 1x1 convs act on the pooled 1x1
  vector, 4 x 2 x 512*512 = 2.097M MACs, replaced by 4 x 2 x 3*512 = 0.012M: -0.002G.
* Translator input: 1x1 projection 640 -> 512 (328,192) + a block at 512 (dw 25,600, GN 1,024,
  expand 1,050,624, reduce 1,049,088) = 2,454,528 params, replaced by a block at 640 (dw 32,000,
  GN 1,280, expand 640*2560+2560 = 1,640,960, reduce 1,639,040) + 1x1 reduction 640 -> 512
  (328,192) = 3,641,472: +1,186,944 params. FLOPs at 16*16 = 256 sites: (640*49 + 2*640*2560 +
  640*512)*256 - (640*512 + 512*49 + 2*512*2048)*256 = +303.6M MACs, plus fvcore's 5 FLOPs per
  element of the wider GroupNorm (+0.16M): +0.304G.
* Decoder upsampling: fvcore counts a transposed conv at its TRUE multiply-add count,
  C_in*C_out*k^2 per input site (each input pixel scatters a k x k x C_out patch), so a stride-2
  3x3 transposed conv 64 -> 64 on 16x16 costs 64*64*9*256 = 9.44M and on 32x32 37.75M MACs per
  frame. The PixelShuffle layer is a 3x3 conv 64 -> 256 at the same input resolution: 4x as much,
  37.75M and 151.0M. Over the two upsampling layers and T' = 10 frames: +1.416G; params
  2 x (64*256*9+256 - (64*64*9+64)) = +221,568.

The remaining +0.29% / -0.70% of ``plasm:released`` is not attributed: the release's other
differences listed above change the count by about -11k parameters (-0.06%: layer scale +4.2k,
one shared attention module -14.9k, bias-free sparse encoder convs -0.3k) and by less than 0.01G
FLOPs (one attention step fewer), so they do not explain it either.
(An earlier explanation of the paper-text gap -- a 640 -> 512 projection and fvcore counting
transposed convs "at input resolution" -- was wrong: the count is exact, and without the
projections the paper-text model would still have +2.2% params.)

Pretraining reuse: with ``ctx.cache_dir`` set, the pretrained encoder + decoder are stored under
``plasm-pretrain-<sha256[:16]>.pt`` of everything pretraining depends on (frame geometry, T,
dataset name, C~, M, groups, slope, upsample, sm, r0, r (only with SM), pretrain epochs and lr,
batch size, seed, ``ctx.extra["sizes"]``/``ctx.extra["data_seed"]``, a code version) and reused
when present, so e.g. ``plasm`` and ``plasm:mask-sm`` share one pretraining.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from bench.errors import BenchError
from bench.blocks.masked_layers import kaiming_init, pixel_mask
from bench.spec.config import per_dataset
from bench.spec.hparams import Bool, Choice, Float, Int
from bench.blocks.masked_pretrain import SM_HPARAMS, SM_PARAMS, MaskedAutoencoder, SMRecipe, r0_per_dataset, sm_pretrain
from bench.blocks.masked_pretrain import build_pretrain_net as _build_net
from bench.blocks.masked_pretrain import pretrain_key as _pretrain_key
from bench.methods.plasm.cost import PUBLISHED_COSTS, RELEASED_LAYOUT, explain_cost
from bench.methods.plasm.modules import QK, TRANSLATOR_IN, UPSAMPLE, Decoder, Encoder, Translator
from bench.spec.registry import DatasetSpec, register_method

__all__ = ["PLASM", "PLASM_SM", "build_plasm", "build_pretrain_net", "pixel_mask", "pretrain_key", "pretrain_plasm"]

CITATION = ("P. Li, C. Zhang, Z. Yang, X. Xu, M. Song, \"Pair-wise Layer Attention with Spatial Masking "
            "for Video Prediction\"")


class PLASM(nn.Module):
    """Encoder -> U-shaped ConvNeXt/PLA translator -> decoder (see the module docstring)."""

    def __init__(self, in_frames: int, out_frames: int, channels: int, enc_channels: int, hid_channels: int,
                 enc_layers: int, blocks: int, heads: int, groups: int, slope: float, pla: bool, convnext: bool,
                 pla_gate: str, upsample: str, translator_in: str, qk: str, eca_kernel: int):
        super().__init__()
        self.in_frames, self.out_frames, self.enc_channels = in_frames, out_frames, enc_channels
        self.encoder = Encoder(channels, enc_channels, enc_layers, groups, slope)
        self.translator = Translator(in_frames * enc_channels, out_frames * enc_channels, hid_channels, blocks,
                                     heads, groups, slope, convnext=convnext, pla=pla, gate=pla_gate,
                                     translator_in=translator_in, qk=qk, eca_kernel=eca_kernel)
        self.decoder = Decoder(enc_channels, channels, enc_layers, groups, slope, upsample=upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        feats = self.encoder(x.reshape(b * t, c, h, w))
        _, ce, hh, ww = feats.shape
        z = self.translator(feats.reshape(b, t * ce, hh, ww))
        y = self.decoder(z.reshape(b * self.out_frames, ce, hh, ww))
        return y.reshape(b, self.out_frames, c, h, w)


# ---------------------------------------------------------------------------- pretraining (III-F, G)


def _parts(data: DatasetSpec, hp: Mapping[str, Any]) -> tuple[nn.Module, nn.Module, int]:
    encoder = Encoder(data.channels, hp["enc_channels"], hp["enc_layers"], hp["groups"], hp["slope"])
    decoder = Decoder(hp["enc_channels"], data.channels, hp["enc_layers"], hp["groups"], hp["slope"],
                      upsample=hp["upsample"])
    return encoder, decoder, hp["enc_channels"]


def _reinit_translator(model: PLASM, ctx: Any) -> None:
    """Training stage (IV-B): the translator starts from Kaiming initialisation, seeded by the run seed."""
    device = next(model.translator.parameters()).device
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(int(ctx.seed) + 1)  # seeds (and fork_rng restores) the CPU and that GPU's RNG
        kaiming_init(model.translator, ctx.hp["slope"])


#: PLA-SM's part in the shared spatial-masking pretraining: its own encoder (sparse-conv emulation
#: built in) and decoder, Kaiming initialisation of the whole pretraining network (IV-B).
PLASM_SM = SMRecipe(
    name="plasm",
    build_parts=_parts,
    encode=lambda encoder, frames, mask: (encoder(frames, mask), None),
    decode=lambda decoder, feats, side: decoder(feats),
    key_hparams=("enc_channels", "enc_layers", "groups", "slope", "upsample"),
    init=lambda net, hp: kaiming_init(net, hp["slope"]),
    after_load=_reinit_translator,
)


def build_pretrain_net(data: DatasetSpec, hp: Mapping[str, Any]) -> MaskedAutoencoder:
    """PLA-SM's pretraining network: encoder with pixel masking -> SM (or nothing) -> decoder."""
    return _build_net(PLASM_SM, data, hp)


def pretrain_key(data: DatasetSpec, hp: Mapping[str, Any], seed: int, extra: Mapping[str, Any]) -> str:
    """Hash of everything PLA-SM's pretrained encoder/decoder depend on (the cache key)."""
    return _pretrain_key(PLASM_SM, data, hp, seed, extra)


def pretrain_plasm(model: PLASM, ctx: Any) -> dict:
    """Stage 1 (III-F/G): SM pretraining, then load encoder/decoder, freeze encoder, Kaiming translator."""
    return sm_pretrain(PLASM_SM, model, ctx)


# ---------------------------------------------------------------------------- registration

#: The base configuration: Moving MNIST's (Table I, IV-B), every switch of the full model on.
BASE: dict[str, Any] = {
    **SM_HPARAMS,  # pretrain, sm, r0 (Moving MNIST's), r, pretrain_epochs, pretrain_lr (IV-B)
    # Ablation switches (Table VI, X); the full model has all on.
    "pla": True,  # pair-wise layer attention in the translator
    "convnext": True,  # ConvNeXt blocks (else 7x7 vanilla conv)
    "pla_gate": "sigmoid",
    # Layout (paper text by default; ``released`` gives the authors' released layout).
    "upsample": "transposed",  # decoder upsampling: transposed | pixelshuffle
    "translator_in": "projection",  # how S enters the translator: projection | wide-block
    "qk": "conv1x1",  # PLA query/key projection after GAP: conv1x1 | eca
    "eca_kernel": 3,  # taps of the ECA 1-D conv (qk="eca" only); positive odd integer
    "groups": 2,
    "slope": 0.2,
    "optimizer": "adam",
    "batch_size": 16,
    "weight_decay": 0.0,
    "clip_grad": 0.0,
    "enc_channels": 64, "hid_channels": 512, "enc_layers": 4, "blocks": 4, "heads": 2,  # C~, C^, M, N, heads
    "epochs": 2000, "lr": 0.01, "schedule": "onecycle",
}

#: Table I's other datasets: what each changes in the base (their r0, also Table I's: r0_per_dataset).
TABLE_I: dict[str, dict[str, Any]] = {
    "taxibj": {"enc_channels": 32, "hid_channels": 256, "enc_layers": 2, "heads": 8, "epochs": 50, "lr": 0.001,
               "schedule": "cosine"},
    "human36m": {"hid_channels": 128, "enc_layers": 2, "blocks": 3, "epochs": 50, "lr": 0.001},
    "kitti_caltech": {"hid_channels": 256, "enc_layers": 2, "blocks": 3, "heads": 8, "epochs": 50, "lr": 0.001},
    "kth": {"enc_channels": 32, "hid_channels": 128, "enc_layers": 3, "blocks": 3, "epochs": 100, "lr": 0.001},
}

HPARAMS: dict[str, dict[str, Any]] = {"*": BASE, **per_dataset(TABLE_I, r0_per_dataset(BASE["r0"]))}

VARIANTS: dict[str, dict[str, Any]] = {
    # Table VI (Mask / SM / PLA); the full model (all three) is plain ``plasm``.
    "base": {"pretrain": False, "pla": False},
    "mask": {"pretrain": True, "sm": False, "pla": False},
    "mask-sm": {"pretrain": True, "sm": True, "pla": False},
    "pla": {"pretrain": False, "pla": True},
    # Table X (without pretraining): 7x7 vanilla conv in place of ConvNeXt, with / without PLA.
    "no-convnext": {"pretrain": False, "convnext": False, "pla": True},
    "no-convnext-no-pla": {"pretrain": False, "convnext": False, "pla": False},
    # Table V's cost: the full model in the authors' released layout, same two-stage training.
    "released": dict(RELEASED_LAYOUT),
}

TINY: dict[str, Any] = {"enc_channels": 8, "hid_channels": 16, "enc_layers": 2, "blocks": 2, "heads": 2,
                        "pretrain_epochs": 1}


@register_method(
    "plasm",
    published_costs=PUBLISHED_COSTS,
    explain_cost=explain_cost,
    citation=CITATION,
    hparams=HPARAMS,
    variants=VARIANTS,
    tiny=TINY,
    pretrain=pretrain_plasm,
    description="PLA-SM: encoder / U-shaped ConvNeXt + pair-wise layer attention translator / decoder, "
                "with spatial-masking pretraining and a frozen encoder",
    params={**SM_PARAMS, "enc_channels": Int(min=1), "hid_channels": Int(min=1), "enc_layers": Int(min=1),
            "blocks": Int(min=1), "heads": Int(min=1), "groups": Int(min=1), "slope": Float(min=0.0),
            "pla": Bool(), "convnext": Bool(), "pla_gate": Choice("sigmoid", "head-softmax"),
            "upsample": Choice(*UPSAMPLE), "translator_in": Choice(*TRANSLATOR_IN), "qk": Choice(*QK),
            "eca_kernel": Int(min=1, doc="odd")},
)
def build_plasm(data: DatasetSpec, enc_channels: int, hid_channels: int, enc_layers: int, blocks: int, heads: int,
                groups: int, slope: float, pla: bool, convnext: bool, pla_gate: str, r0: float, r: float,
                pretrain: bool, sm: bool, pretrain_epochs: int, pretrain_lr: float, upsample: str, translator_in: str,
                qk: str, eca_kernel: int) -> PLASM:
    """Build PLA-SM for ``data``; r0, r, sm, pretrain* only steer the pretraining stage."""
    for name, value in (("enc_channels", enc_channels), ("hid_channels", hid_channels)):
        if value % groups:
            raise BenchError(f"PLA-SM {name}={value} is not divisible by groups={groups}; change one of them")
    if hid_channels % heads:
        raise BenchError(f"PLA-SM hid_channels={hid_channels} is not divisible by heads={heads}; pick a divisor")
    if eca_kernel % 2 == 0:  # (the choices and ranges are the declarations': checked when the key resolves)
        raise BenchError(f"PLA-SM eca_kernel={eca_kernel!r} must be odd; set e.g. plasm:eca_kernel=3")
    scale = 2 ** (enc_layers // 2)
    if data.height % scale or data.width % scale:
        raise BenchError(f"PLA-SM with enc_layers={enc_layers} needs H, W divisible by {scale}; "
                         f"{data.name} is {data.height}x{data.width}: lower enc_layers")
    model = PLASM(data.in_frames, data.out_frames, data.channels, enc_channels, hid_channels, enc_layers, blocks,
                  heads, groups, slope, bool(pla), bool(convnext), pla_gate, upsample=upsample,
                  translator_in=translator_in, qk=qk, eca_kernel=eca_kernel)
    kaiming_init(model, slope)
    return model
