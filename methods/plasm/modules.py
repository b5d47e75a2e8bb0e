"""Building blocks of PLA-SM (Li et al., "Pair-wise Layer Attention with Spatial Masking for Video
Prediction", section III). The model, its hyperparameters, the pretraining stage and every design
choice are documented in :mod:`bench.methods.plasm`; this module holds the layers only. The layers
of the spatial-masking pretraining (sparse-conv emulation, SM module), which other methods use too,
live in :mod:`bench.blocks.masked_layers` and are re-exported here.

Shapes use the paper's symbols: C~ (``enc_channels``) is the per-frame channel width of the encoder
and decoder, C^ (``hid_channels``) the width of the translator, H' x W' the encoder's output size.
Layout options (``upsample``, ``translator_in``, ``qk``) select the paper-text layout (default) or
the authors' released one (``plasm:released``); see :mod:`bench.methods.plasm`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.blocks.masked_layers import (GlobalProjection, SpatialMasking, kaiming_init, masked_group_norm,  # noqa: F401
                                 masked_softmax, sparse_conv_norm_act, top_entries_mask)

UPSAMPLE = ("transposed", "pixelshuffle")
TRANSLATOR_IN = ("projection", "wide-block")
QK = ("conv1x1", "eca")


def layer_strides(layers: int) -> list[int]:
    """Encoder strides: 2 at every second layer, 1 elsewhere (III-C): M=4 -> [1, 2, 1, 2], M=3 -> [1, 2, 1]."""
    return [2 if i % 2 == 1 else 1 for i in range(layers)]


class ConvBlock(nn.Module):
    """3x3 conv + group norm + leaky ReLU (one encoder layer, III-C)."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int, slope: float):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(groups, cout)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None:
            return self.act(self.norm(self.conv(x))), None
        # Sparse-convolution emulation (see bench.blocks.masked_layers): the conv at an active site sums
        # over visible neighbours only, a stride-2 site is active iff its 3x3 field holds an active
        # input, GN statistics use active sites only, everything off the active set is zeroed again.
        return sparse_conv_norm_act(self.conv, self.norm, self.act, x, mask)


class Encoder(nn.Module):
    """M conv blocks, stride 2 at every second one (III-C). Frames are encoded one by one."""

    def __init__(self, cin: int, channels: int, layers: int, groups: int, slope: float):
        super().__init__()
        strides = layer_strides(layers)
        self.blocks = nn.ModuleList(
            ConvBlock(cin if i == 0 else channels, channels, s, groups, slope) for i, s in enumerate(strides)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, C~, H', W'). With a pixel ``mask`` (N, 1, H, W; 1 = visible) the
        input is masked and no masked pixel reaches any output (sparse-conv emulation)."""
        if mask is not None:
            mask = mask.to(x.dtype)
            x = x * mask
        for block in self.blocks:
            x, mask = block(x, mask)
        return x


class Decoder(nn.Module):
    """M 3x3 layers + GN + leaky ReLU, upsampling mirrored to the encoder, 1x1 readout (III-E).

    ``upsample="transposed"`` (III-E): every layer a 3x3 transposed conv (stride 2 where the encoder
    has stride 2). ``"pixelshuffle"`` (released code): an upsampling layer is a 3x3 conv C~ -> 4C~
    at the input resolution followed by PixelShuffle(2); the other layers are 3x3 convs.
    """

    def __init__(self, channels: int, cout: int, layers: int, groups: int, slope: float,
                 upsample: str = "transposed"):
        super().__init__()
        if upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {UPSAMPLE}, not {upsample!r}")
        layers_: list[nn.Module] = []
        for s in reversed(layer_strides(layers)):
            if upsample == "transposed":
                conv: nn.Module = nn.ConvTranspose2d(channels, channels, 3, stride=s, padding=1, output_padding=s - 1)
            elif s == 2:
                conv = nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2))
            else:
                conv = nn.Conv2d(channels, channels, 3, padding=1)
            layers_ += [conv, nn.GroupNorm(groups, channels), nn.LeakyReLU(slope)]
        self.body = nn.Sequential(*layers_)
        self.readout = nn.Conv2d(channels, cout, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.readout(self.body(z))


class ConvNeXtBlock(nn.Module):
    """Eq. (2): Z + Conv1x1(LReLU(Conv1x1(GN(DWConv7x7(Z))))), inverted bottleneck C^ -> 4C^ -> C^."""

    def __init__(self, channels: int, groups: int, slope: float):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.expand = nn.Conv2d(channels, 4 * channels, 1)
        self.act = nn.LeakyReLU(slope)
        self.reduce = nn.Conv2d(4 * channels, channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.reduce(self.act(self.expand(self.norm(self.dw(z)))))


class VanillaConvBlock(nn.Module):
    """Table X's substitute for ConvNeXt: a plain 7x7 conv + GN + leaky ReLU (no residual)."""

    def __init__(self, channels: int, groups: int, slope: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 7, padding=3)
        self.norm = nn.GroupNorm(groups, channels)
        self.act = nn.LeakyReLU(slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(z)))


def make_block(convnext: bool, channels: int, groups: int, slope: float) -> nn.Module:
    return ConvNeXtBlock(channels, groups, slope) if convnext else VanillaConvBlock(channels, groups, slope)


class ReducingBlock(nn.Module):
    """A translator block at T*C~ channels followed by a 1x1 conv to C^ (released layout's first block)."""

    def __init__(self, cin: int, cout: int, convnext: bool, groups: int, slope: float):
        super().__init__()
        self.block = make_block(convnext, cin, groups, slope)
        self.reduce = nn.Conv2d(cin, cout, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.block(z))


class EcaProjection(nn.Module):
    """GAP + a 1-D conv (``kernel`` taps, no bias, zero padding) along the pooled channel vector:
    (B, C, H, W) -> (B, C), q_c = sum_j w_j * gap_{c + j - (kernel-1)/2} (ECA-style; released layout)."""

    def __init__(self, kernel: int):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"eca_kernel must be a positive odd integer, not {kernel}")
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(F.adaptive_avg_pool2d(z, 1).flatten(1).unsqueeze(1)).squeeze(1)


def make_projection(qk: str, channels: int, eca_kernel: int) -> nn.Module:
    if qk not in QK:
        raise ValueError(f"qk must be one of {QK}, not {qk!r}")
    return GlobalProjection(channels) if qk == "conv1x1" else EcaProjection(eca_kernel)


class PLABlock(nn.Module):
    """Pair-wise Layer Attention block (III-D).

    ``forward(z_low, z_prev)``: Q from the paired ConvNeXt output ``z_low``, K from the previous PLA
    output ``z_prev``, V = DWConv3x3(ConvNeXt(z_prev)) (eq. 3). Channels are split into ``heads``
    groups; per head the global (1x1) score s = q.k / sqrt(C^/heads) is normalised by ``gate`` and
    broadcast over that head's channels and all positions of V: output = a * V, no residual. With
    ``attention=False`` (ablations without PLA) the block is V alone: no Q, K or pairing. ``qk``
    picks the Q/K projection after GAP: a 1x1 conv (paper) or an ECA 1-D conv (released layout).
    """

    def __init__(self, channels: int, heads: int, groups: int, slope: float, convnext: bool = True,
                 attention: bool = True, gate: str = "sigmoid", qk: str = "conv1x1", eca_kernel: int = 3):
        super().__init__()
        if channels % heads:
            raise ValueError(f"hid_channels={channels} is not divisible by heads={heads}")
        if gate not in ("sigmoid", "head-softmax"):
            raise ValueError(f"pla_gate must be 'sigmoid' or 'head-softmax', not {gate!r}")
        self.heads = heads
        self.gate = gate
        self.attention = attention
        self.block = make_block(convnext, channels, groups, slope)
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        if attention:
            self.query = make_projection(qk, channels, eca_kernel)
            self.key = make_projection(qk, channels, eca_kernel)

    def scores(self, z_low: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        """(B, heads) attention scores in (0, 1)."""
        b, c = z_low.shape[:2]
        q = self.query(z_low).view(b, self.heads, c // self.heads)
        k = self.key(z_prev).view(b, self.heads, c // self.heads)
        s = (q * k).sum(-1) / math.sqrt(c // self.heads)
        return torch.sigmoid(s) if self.gate == "sigmoid" else torch.softmax(s, dim=-1)

    def forward(self, z_low: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        v = self.dw(self.block(z_prev))
        if not self.attention:
            return v
        b, c, h, w = v.shape
        a = self.scores(z_low, z_prev)
        return (v.view(b, self.heads, c // self.heads, h, w) * a.view(b, self.heads, 1, 1, 1)).view(b, c, h, w)


class Translator(nn.Module):
    """U-shaped translator (III-D): N ConvNeXt blocks, N PLA blocks (PLA block j paired with ConvNeXt
    block N-j+1), 1x1 out-projection C^ -> T'*C~. The input S (T*C~ channels) enters through a 1x1
    projection to C^ (``translator_in="projection"``) or the first ConvNeXt block runs at T*C~ and
    reduces to C^ (``"wide-block"``, released layout)."""

    def __init__(self, cin: int, cout: int, channels: int, blocks: int, heads: int, groups: int, slope: float,
                 convnext: bool = True, pla: bool = True, gate: str = "sigmoid", translator_in: str = "projection",
                 qk: str = "conv1x1", eca_kernel: int = 3):
        super().__init__()
        if translator_in not in TRANSLATOR_IN:
            raise ValueError(f"translator_in must be one of {TRANSLATOR_IN}, not {translator_in!r}")
        down: list[nn.Module] = [make_block(convnext, channels, groups, slope) for _ in range(blocks)]
        if translator_in == "projection":
            self.inp = nn.Conv2d(cin, channels, 1)
        else:
            self.inp = nn.Identity()
            down[0] = ReducingBlock(cin, channels, convnext, groups, slope)
        self.down = nn.ModuleList(down)
        self.up = nn.ModuleList(
            PLABlock(channels, heads, groups, slope, convnext=convnext, attention=pla, gate=gate, qk=qk,
                     eca_kernel=eca_kernel)
            for _ in range(blocks)
        )
        self.out = nn.Conv2d(channels, cout, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        z = self.inp(s)
        lows = []
        for block in self.down:
            z = block(z)
            lows.append(z)  # Z_1 .. Z_N
        # PLA block j (1-based) gets Z_{N-j+1} and the previous PLA output (Z-bar_0 = Z_N).
        for block, z_low in zip(self.up, reversed(lows)):
            z = block(z_low, z)
        return self.out(z)
