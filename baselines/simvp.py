"""SimVP: the original CNN-CNN-CNN video predictor with an Inception-UNet translator.

Reference: Zhangyang Gao, Cheng Tan, Lirong Wu, Stan Z. Li. "SimVP: Simpler yet Better Video
Prediction". CVPR 2022, pp. 3170-3180 (arXiv:2206.05099). Written from the paper's description
(Sec. 3, Fig. 2: encoder of N_S ConvNormReLU blocks, translator of N_T Inception modules arranged
as a UNet, decoder of N_S unConvNormReLU blocks), with details the paper leaves open fixed as in
the authors' public release; no code was copied.

Golden tests (``tests/test_reference_match.py``): the authors' original release (A4Bio/SimVP,
commit 4dcd445, the CVPR 2022 code) is run at a small configuration by
``tools/make_reference_fixtures.py``; its weights load one to one into this model, and outputs, the
MSE loss and three Adam steps agree to float64 rounding (measured: identical). Its Inception-UNet
is also OpenSTL's ``MidIncepNet`` (checked equal in the fixture script), and the full-size
parameter count equals the original's (57,761,409). OpenSTL's "SimVP+IncepU" puts that translator
into the later SimVP-v2 frame (SiLU activations, 3x3 convolution + PixelShuffle up-sampling, an
*additive* skip, truncated-normal initialisation of the frame's convolutions): 57,946,113 params
("58.0M" in its zoo). The SimVP paper and the TAU paper (Sec. 3.2, "ConvTranspose2d") describe the
original frame, which is what we build and test; the v2 frame is not a variant here.

Architecture (B, T, C, H, W) -> (B, T', C, H, W)
-------------------------------------------------
* Spatial encoder (:class:`SpatialEncoder`), applied to each frame separately as (B*T, C, H, W):
  ``N_S`` :class:`ConvSC` blocks, each a 3x3 convolution + GroupNorm(2 groups) + LeakyReLU(0.2).
  The strides alternate 1, 2, 1, 2, ... (the first block keeps full resolution), so N_S = 4 maps
  64x64 to 16x16 with hid_S channels. The output of the first block is kept as the skip feature.
* Translator (:class:`InceptionUNet`) on (B, T*hid_S, H', W') -- the frames stacked on the channel
  axis (paper Sec. 3, "convoluting T x C channels"). N_T encoder Inception modules and N_T decoder
  Inception modules; decoder module i > 0 takes ``cat(z, skip_{N_T-1-i})`` (UNet). An Inception
  module is a 1x1 convolution to C_hid/2 channels followed by four parallel grouped convolutions
  (kernel sizes 3, 5, 7, 11; 8 groups), each with GroupNorm(8 groups) and LeakyReLU(0.2), summed.
  Where a channel count is not divisible by ``groups`` the convolution and its GroupNorm fall back
  to 1 group (the authors' rule, extended here to the output channels so odd tiny configs build).
* Spatial decoder (:class:`SpatialDecoder`): N_S blocks mirroring the encoder (strides 2, 1, 2, 1);
  stride-2 blocks are 3x3 ConvTranspose2d (output_padding 1, exactly doubling the size), stride-1
  blocks plain 3x3 convolutions, each + GroupNorm(2) + LeakyReLU(0.2). The last block receives the
  skip feature of the first encoder block, *concatenated* (last block: 2*hid_S -> hid_S channels;
  ``skip="add"`` gives an additive variant, an option TAU exposes). A 1x1
  convolution reads out C channels. There is no output non-linearity (as in the paper: plain MSE
  regression); predictions are not clamped to [0, 1].

Output horizon T' != T (choice; the paper's translator maps T frames to T frames)
---------------------------------------------------------------------------------
The translator's last module emits T'*hid_S channels instead of T*hid_S (its input side is
unchanged), so the latent holds T' frames; the decoder then runs on B*T' frames. The decoder skip
is the first-encoder-layer feature of the *aligned* input frame when T' == T (the original model),
otherwise that of the *last observed* frame, repeated for each of the T' outputs (the most recent
appearance is the best spatial prior for every future frame). With T' == T the model is exactly
the original SimVP.

Moving MNIST configuration (choices and sources)
-----------------------------------------------
hid_S = 64, hid_T = 512, N_S = 4, N_T = 8, Inception kernels (3, 5, 7, 11), groups = 8.
The official repository's command-line default is hid_T = 256, but the published efficiency of
SimVP on Moving MNIST -- 19.43 GFLOPs (TAU paper, Table 6) and 58.0M params / 19.4G FLOPs
(OpenSTL model zoo "SimVP+IncepU", whose config sets hid_T = 512) -- is only reached with
hid_T = 512. Measured here (fvcore, one (1, 10, 1, 64, 64) input):

    hid_T = 512: 57,761,409 params, 19.525 GFLOPs (convolutions alone: 19.429G)
    hid_T = 256: 15,778,433 params,  8.770 GFLOPs

``bench.cost.measure.count_flops`` also counts GroupNorm (0.096G here), which the published figure
does not: the convolution-only count equals the TAU paper's 19.43G. The whole gap to OpenSTL's
58.0M (57,946,113, measured on its code) is its later decoder (PixelShuffle up-sampling with 4x
wider convolutions and an additive skip: +184,704) rather than the original ConvTranspose2d
decoder with a concatenated skip used here. We therefore use hid_T = 512.
Training (official code, ``exp.py``/``main.py``): Adam (no weight decay), learning rate 0.01 with a
one-cycle schedule (max_lr 0.01), batch 16, MSE loss. Epochs: the official README asks for
1000-2000 epochs to reproduce the paper's Moving MNIST numbers; we take 2000.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from bench.errors import BenchError
from bench.spec.config import per_dataset
from bench.spec.hparams import Int, IntTuple
from bench.blocks.masked_layers import sparse_conv_norm_act
from bench.blocks.simvp_frame import EncodeTranslateDecode, SpatialDecoder, SpatialEncoder, check_geometry
from bench.blocks.masked_pretrain import SM_HPARAMS, SM_PARAMS, SMRecipe, r0_per_dataset, sm_pretrain_stage
from bench.spec.method import PublishedCost
from bench.spec.registry import DatasetSpec, register_method

__all__ = ["InceptionUNet", "SimVP", "build_simvp"]


class _GroupConv(nn.Module):
    """k x k grouped convolution + GroupNorm(groups) + LeakyReLU(0.2) (one Inception branch)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        if c_in % groups or c_out % groups:
            groups = 1
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups)
        self.norm = nn.GroupNorm(groups, c_out)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Inception(nn.Module):
    """1x1 convolution to ``c_hid`` then the sum of parallel grouped k x k branches to ``c_out``."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, kernels: Sequence[int], groups: int):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, c_hid, 1)
        self.branches = nn.ModuleList([_GroupConv(c_hid, c_out, k, groups) for k in kernels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return y


class InceptionUNet(nn.Module):
    """SimVP's translator: N_T encoder and N_T decoder Inception modules with UNet skips.

    Maps (B, c_in, H, W) -> (B, c_out, H, W); every module works at ``c_hid`` channels (its 1x1
    bottleneck at ``c_hid // 2``).
    """

    def __init__(self, c_in: int, c_hid: int, c_out: int, n_layers: int, kernels: Sequence[int], groups: int):
        super().__init__()
        if n_layers < 2:
            raise BenchError(f"SimVP's Inception-UNet needs N_T >= 2 (got {n_layers})")
        mid = max(c_hid // 2, 1)
        self.enc = nn.ModuleList(
            [Inception(c_in if i == 0 else c_hid, mid, c_hid, kernels, groups) for i in range(n_layers)]
        )
        self.dec = nn.ModuleList(
            [Inception(c_hid if i == 0 else 2 * c_hid, mid, c_out if i == n_layers - 1 else c_hid, kernels, groups)
             for i in range(n_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        z = x
        for i, layer in enumerate(self.enc):
            z = layer(z)
            if i < len(self.enc) - 1:
                skips.append(z)
        z = self.dec[0](z)
        for layer in self.dec[1:]:
            z = layer(torch.cat([z, skips.pop()], dim=1))
        return z


class SimVP(EncodeTranslateDecode):
    """Spatial encoder -> Inception-UNet translator on stacked frames -> spatial decoder."""

    def __init__(self, in_frames: int, out_frames: int, channels: int, hid_S: int, hid_T: int, N_S: int, N_T: int,
                 incep_ker: Sequence[int], groups: int):
        super().__init__()
        self.in_frames, self.out_frames, self.channels = in_frames, out_frames, channels
        self.enc = SpatialEncoder(channels, hid_S, N_S)
        self.hid = InceptionUNet(in_frames * hid_S, hid_T, out_frames * hid_S, N_T, tuple(incep_ker), groups)
        self.dec = SpatialDecoder(hid_S, channels, N_S, skip="concat")


# ---------------------------------------------------------------------------------------------
# Spatial-masking pretraining (PLA-SM Table VII, "SimVP + SM"): variant ``simvp:sm``
# ---------------------------------------------------------------------------------------------
# The shared stage of bench.blocks.masked_pretrain with SimVP's own encoder and decoder: the encoder runs
# as a sparse conv stack on the pixel-masked frame (every ConvSC layer through
# sparse_conv_norm_act), the SM module acts on its latent, and SimVP's decoder receives the masked
# first-layer skip feature of the same frame unchanged (the skip is part of SimVP's decoder input;
# the SM module replaces the translator only, PLA-SM III-B). The encoder and decoder keep SimVP's
# own (PyTorch default) initialisation, the SM module is Kaiming-initialised (PLA-SM IV-B). After
# pretraining the encoder is frozen and the Inception-UNet keeps its build-time initialisation;
# r0 per dataset is PLA-SM Table I's (the paper gives no other for Table VII).


def _sm_parts(data: DatasetSpec, hp) -> tuple[nn.Module, nn.Module, int]:
    return SpatialEncoder(data.channels, hp["hid_S"], hp["N_S"]), SpatialDecoder(hp["hid_S"], data.channels, hp["N_S"]), \
        hp["hid_S"]


def _sm_encode(enc: SpatialEncoder, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mask = mask.to(frames.dtype)
    z, outs = frames * mask, []
    for layer in enc.layers:
        z, mask = sparse_conv_norm_act(layer.conv, layer.norm, layer.act, z, mask)
        outs.append(z)
    return z, outs[0]


SIMVP_SM = SMRecipe(name="simvp", build_parts=_sm_parts, encode=_sm_encode,
                    decode=lambda dec, z, skip: dec(z, skip), key_hparams=("hid_S", "N_S"),
                    encoder="enc", decoder="dec")

#: The base configuration: the official code's (its command-line hid_T = 256; Moving MNIST's 512 below), and
#: the SM pretraining hyperparameters, off for plain SimVP and on for ``simvp:sm``.
BASE = {"hid_S": 64, "hid_T": 256, "N_S": 4, "N_T": 8, "incep_ker": (3, 5, 7, 11), "groups": 8,
        "optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "schedule": "onecycle", "batch_size": 16,
        **SM_HPARAMS, "pretrain": False}


#: The published cost of this method's keys (``bench audit`` compares its own count with it).
PUBLISHED_COSTS = (
    PublishedCost("simvp", "mmnist", 58e6, 19.4e9,
                  'OpenSTL model zoo (SimVP IncepU, MMNIST); TAU Table 6: 19.43G'),
)


@register_method(
    "simvp",
    published_costs=PUBLISHED_COSTS,
    citation="Gao, Tan, Wu, Li. SimVP: Simpler yet Better Video Prediction. CVPR 2022.",
    description="SimVP (original): ConvNormReLU encoder/decoder, Inception-UNet translator on stacked frames, MSE.",
    hparams={"*": BASE, **per_dataset({"mmnist": {"hid_T": 512, "epochs": 2000}}, r0_per_dataset(BASE["r0"]))},
    variants={"sm": {"pretrain": True}},  # PLA-SM Table VII: SimVP + spatial-masking pretraining
    tiny={"hid_S": 8, "hid_T": 16, "N_S": 2, "N_T": 2, "incep_ker": (3, 5), "groups": 2, "pretrain_epochs": 1},
    pretrain=sm_pretrain_stage(SIMVP_SM),
    params={**SM_PARAMS, "hid_S": Int(min=1), "hid_T": Int(min=1), "N_S": Int(min=1), "N_T": Int(min=2),
            "incep_ker": IntTuple(min=1), "groups": Int(min=1)},
)
def build_simvp(data: DatasetSpec, hid_S: int, hid_T: int, N_S: int, N_T: int, incep_ker: Sequence[int], groups: int,
                pretrain: bool, sm: bool, r0: float, r: float, pretrain_epochs: int, pretrain_lr: float) -> nn.Module:
    """Build SimVP for ``data`` (T = data.in_frames -> T' = data.out_frames); pretrain, sm, r0, r and
    pretrain_* only steer the SM pretraining stage (``simvp:sm``)."""
    check_geometry(data, N_S)
    return SimVP(data.in_frames, data.out_frames, data.channels, hid_S=hid_S, hid_T=hid_T, N_S=N_S,
                 N_T=N_T, incep_ker=incep_ker, groups=groups)
