"""TAU's network: the temporal attention unit (Eq. 2), its MetaFormer-style block, the Conv Baseline's
block (Table 6) and the temporal module of N_T blocks between SimVP's spatial encoder and decoder.

Reference: Tan et al., "Temporal Attention Unit: Towards Efficient Spatiotemporal Predictive
Learning", CVPR 2023, Sec. 3.2-3.3 and Table 6. Every choice the paper leaves open (the block
layout, the SE width, stochastic depth, initialisation) is listed with its reason in the design
docstring of :mod:`bench.methods.tau`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.blocks.simvp_frame import EncodeTranslateDecode, SpatialDecoder, SpatialEncoder
from bench.errors import BenchError

ATTENTIONS = ("full", "no-sa", "no-da")
TRANSLATORS = ("tau", "conv")


class StaticalAttention(nn.Module):
    """SA = Conv1x1(DW-D Conv(DW Conv(H))): 5x5 depth-wise, 7x7 depth-wise dilation 3, 1x1."""

    def __init__(self, dim: int, dw_kernel: int = 5, dwd_kernel: int = 7, dilation: int = 3):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, dw_kernel, padding=dw_kernel // 2, groups=dim)
        self.dwd = nn.Conv2d(dim, dim, dwd_kernel, padding=dilation * (dwd_kernel // 2), dilation=dilation,
                             groups=dim)
        self.pw = nn.Conv2d(dim, dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dwd(self.dw(h)))


def se_hidden_width(dim: int, reduction: int) -> int:
    """The SE bottleneck width of the authors' code: dim // max(dim // reduction, 4) (see the docstring)."""
    return dim // max(dim // reduction, 4)


class DynamicalAttention(nn.Module):
    """DA = FC(AvgPool(H)) in squeeze-and-excitation form; returns (B, d, 1, 1) weights in (0, 1)."""

    def __init__(self, dim: int, reduction: int):
        super().__init__()
        hidden = se_hidden_width(dim, reduction)
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(h, 1).flatten(1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return s[:, :, None, None]


class TemporalAttentionUnit(nn.Module):
    """Eq. 2: H' = (SA (x) DA) (.) H, or one factor alone for the no-sa / no-da ablations."""

    def __init__(self, dim: int, attention: str, se_reduction: int):
        super().__init__()
        if attention not in ATTENTIONS:
            raise BenchError(f"TAU attention must be one of {', '.join(ATTENTIONS)} (got {attention!r})")
        self.sa = StaticalAttention(dim) if attention != "no-sa" else None
        self.da = DynamicalAttention(dim, se_reduction) if attention != "no-da" else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.sa is not None and self.da is not None:
            attn = self.sa(h) * self.da(h)
        elif self.sa is not None:
            attn = self.sa(h)
        else:
            attn = self.da(h)
        return attn * h


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability p, rescale the rest.

    One Bernoulli(1 - p) draw per sample from the torch RNG, scaled by 1 / (1 - p) before it
    multiplies x: the same draws and arithmetic as the reference, so seeded runs agree with it.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    scale = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    if keep > 0.0:
        scale = scale / keep
    return x * scale


def drop_path_rates(n_blocks: int, drop_path: float) -> list[float]:
    """Per-block stochastic-depth rates of the authors' code: linspace(0.01, drop_path, N_T), the last exactly drop_path."""
    rates = torch.linspace(0.01, drop_path, n_blocks, device="cpu").tolist()
    rates[-1] = float(drop_path)
    return rates


def _init_mlp_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """N(0, 2 / fan_out) weights, fan_out = k*k*out/groups, and zero bias (the reference's MLP init)."""
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    nn.init.normal_(conv.weight, 0.0, (2.0 / fan_out) ** 0.5)
    nn.init.zeros_(conv.bias)
    return conv


class TAUBlock(nn.Module):
    """BN -> [1x1, GELU, TAU, 1x1 (+shortcut)] -> layer-scale residual; BN -> conv-MLP -> layer-scale residual."""

    def __init__(self, dim: int, attention: str, mlp_ratio: float, se_reduction: int, drop_path: float,
                 layer_scale: float = 1e-2):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.tau = TemporalAttentionUnit(dim, attention, se_reduction)
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp_in = _init_mlp_conv(nn.Conv2d(dim, hidden, 1))
        self.mlp_dw = _init_mlp_conv(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden))
        self.mlp_out = _init_mlp_conv(nn.Conv2d(hidden, dim, 1))
        self.scale1 = nn.Parameter(torch.full((dim, 1, 1), float(layer_scale)))
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), float(layer_scale)))
        self.drop_path = float(drop_path)

    def attention(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.tau(F.gelu(self.proj_in(z)))) + z

    def mlp(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp_out(F.gelu(self.mlp_dw(self.mlp_in(z))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _drop_path(self.scale1 * self.attention(self.norm1(x)), self.drop_path, self.training)
        x = x + _drop_path(self.scale2 * self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x


class ConvBlock(nn.Module):
    """The Conv Baseline's block (Table 6): x + GELU(BN(Conv3x3(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class TemporalModule(nn.Module):
    """N_T blocks on stacked frames: block 1 at c_in channels, the rest at c_hid, 1x1 convs where the width changes.

    (B, c_in, H, W) -> (B, c_out, H, W).
    """

    def __init__(self, c_in: int, c_hid: int, c_out: int, n_layers: int, translator: str, attention: str,
                 mlp_ratio: float, se_reduction: int, drop_path: float):
        super().__init__()
        if n_layers < 1:
            raise BenchError(f"TAU needs N_T >= 1 (got {n_layers})")
        if translator not in TRANSLATORS:
            raise BenchError(f"TAU translator must be one of {', '.join(TRANSLATORS)} (got {translator!r})")
        if attention not in ATTENTIONS:
            raise BenchError(f"TAU attention must be one of {', '.join(ATTENTIONS)} (got {attention!r})")
        rates = drop_path_rates(n_layers, drop_path)
        layers: list[nn.Module] = []
        width = c_in
        for i in range(n_layers):
            if translator == "tau":
                layers.append(TAUBlock(width, attention, mlp_ratio, se_reduction, rates[i]))
            else:
                layers.append(ConvBlock(width))
            target = c_out if i == n_layers - 1 else c_hid
            if target != width:
                layers.append(nn.Conv2d(width, target, 1))
                width = target
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TAU(EncodeTranslateDecode):
    """SimVP spatial encoder -> N_T TAU blocks on stacked frames -> SimVP spatial decoder."""

    def __init__(self, in_frames: int, out_frames: int, channels: int, hid_S: int, hid_T: int, N_S: int, N_T: int,
                 translator: str, attention: str, mlp_ratio: float, se_reduction: int, drop_path: float,
                 dec_skip: str):
        super().__init__()
        self.in_frames, self.out_frames, self.channels = in_frames, out_frames, channels
        self.enc = SpatialEncoder(channels, hid_S, N_S)
        self.hid = TemporalModule(in_frames * hid_S, hid_T, out_frames * hid_S, N_T, translator=translator,
                                  attention=attention, mlp_ratio=mlp_ratio, se_reduction=se_reduction,
                                  drop_path=drop_path)
        self.dec = SpatialDecoder(hid_S, channels, N_S, skip=dec_skip)
