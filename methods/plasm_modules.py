"""Building blocks of PLA-SM (Li et al., "Pair-wise Layer Attention with Spatial Masking for Video
Prediction", section III). The model, its hyperparameters, the pretraining stage and every design
choice are documented in :mod:`bench.methods.plasm`; this module holds the layers only.

Shapes use the paper's symbols: C~ (``enc_channels``) is the per-frame channel width of the encoder
and decoder, C^ (``hid_channels``) the width of the translator, H' x W' the encoder's output size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def kaiming_init(module: nn.Module, slope: float) -> None:
    """Kaiming-normal initialisation ([45], section IV-B) of every conv; zero biases; GN to identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def layer_strides(layers: int) -> list[int]:
    """Encoder strides: 2 at every second layer, 1 elsewhere (III-C): M=4 -> [1, 2, 1, 2], M=3 -> [1, 2, 1]."""
    return [2 if i % 2 == 1 else 1 for i in range(layers)]


def masked_group_norm(x: torch.Tensor, mask: torch.Tensor, gn: nn.GroupNorm) -> torch.Tensor:
    """Group norm whose statistics use the visible sites only, with ``gn``'s parameters.

    This is the dense emulation of a sparse group norm: masked sites (``mask == 0``) neither
    contribute to the mean/variance nor receive a value (they stay 0). ``mask`` is (B, 1, H, W).
    """
    b, c, h, w = x.shape
    g = gn.num_groups
    xg = x.reshape(b, g, c // g, h * w)
    mg = mask.reshape(b, 1, 1, h * w).to(x.dtype)
    count = (mg.sum(dim=(2, 3), keepdim=True) * (c // g)).clamp_min(1.0)
    mean = (xg * mg).sum(dim=(2, 3), keepdim=True) / count
    var = (((xg - mean) * mg) ** 2).sum(dim=(2, 3), keepdim=True) / count
    y = ((xg - mean) / torch.sqrt(var + gn.eps)).reshape(b, c, h, w)
    if gn.affine:
        y = y * gn.weight.view(1, c, 1, 1) + gn.bias.view(1, c, 1, 1)
    return y * mask


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
        # Sparse-convolution emulation: the input is zero off the active set, so the conv at an
        # active site sums over visible neighbours only; a stride-2 output site is active iff its
        # 3x3 receptive field holds an active input (a strided sparse conv), a stride-1 layer keeps
        # the active set (submanifold conv). Everything off the new active set is zeroed again.
        if self.stride > 1:
            mask = F.max_pool2d(mask, 3, stride=self.stride, padding=1)
        y = self.conv(x) * mask
        y = self.act(masked_group_norm(y, mask, self.norm)) * mask
        return y, mask


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
    """M 3x3 transposed convs + GN + leaky ReLU, upsampling mirrored to the encoder, 1x1 readout (III-E)."""

    def __init__(self, channels: int, cout: int, layers: int, groups: int, slope: float):
        super().__init__()
        layers_ = []
        for s in reversed(layer_strides(layers)):
            layers_ += [
                nn.ConvTranspose2d(channels, channels, 3, stride=s, padding=1, output_padding=s - 1),
                nn.GroupNorm(groups, channels),
                nn.LeakyReLU(slope),
            ]
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


class GlobalProjection(nn.Module):
    """GAP + 1x1 conv + squeeze: (B, C, H, W) -> (B, C) (the Query/Key of PLA and SM)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(z, 1)).flatten(1)


class PLABlock(nn.Module):
    """Pair-wise Layer Attention block (III-D).

    ``forward(z_low, z_prev)``: Q from the paired ConvNeXt output ``z_low``, K from the previous PLA
    output ``z_prev``, V = DWConv3x3(ConvNeXt(z_prev)) (eq. 3). Channels are split into ``heads``
    groups; per head the global (1x1) score s = q.k / sqrt(C^/heads) is normalised by ``gate`` and
    broadcast over that head's channels and all positions of V. With ``attention=False`` (ablations
    without PLA) the block is V alone: no Q, K or pairing.
    """

    def __init__(self, channels: int, heads: int, groups: int, slope: float, convnext: bool = True,
                 attention: bool = True, gate: str = "sigmoid"):
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
            self.query = GlobalProjection(channels)
            self.key = GlobalProjection(channels)

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
    """U-shaped translator (III-D): 1x1 in-projection T*C~ -> C^, N ConvNeXt blocks, N PLA blocks
    (PLA block j paired with ConvNeXt block N-j+1), 1x1 out-projection C^ -> T'*C~."""

    def __init__(self, cin: int, cout: int, channels: int, blocks: int, heads: int, groups: int, slope: float,
                 convnext: bool = True, pla: bool = True, gate: str = "sigmoid"):
        super().__init__()
        self.inp = nn.Conv2d(cin, channels, 1)
        self.down = nn.ModuleList(make_block(convnext, channels, groups, slope) for _ in range(blocks))
        self.up = nn.ModuleList(
            PLABlock(channels, heads, groups, slope, convnext=convnext, attention=pla, gate=gate) for _ in range(blocks)
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


def top_entries_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask of the floor(ratio * C*C) largest entries of each (C, C) matrix in ``scores``."""
    n, c, _ = scores.shape
    k = int(math.floor(ratio * c * c + 1e-9))
    mask = torch.zeros(n, c * c, dtype=torch.bool, device=scores.device)
    if k > 0:
        idx = scores.detach().reshape(n, c * c).topk(k, dim=1).indices
        mask.scatter_(1, idx, True)
    return mask.view(n, c, c)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row softmax with masked entries set to -inf; a row masked entirely gives zeros, not NaN."""
    logits = scores.masked_fill(mask, float("-inf"))
    row_max = logits.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(logits - row_max)
    return e / e.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


class SpatialMasking(nn.Module):
    """Spatial Masking module (III-F), applied frame by frame during pretraining.

    Q, K = squeeze(Conv1x1(GAP(S))) in R^C~; A = Q K^T / sqrt(C~) (C~ x C~); the leading
    floor(r * C~^2) entries of A are set to -inf; out = Softmax(A-hat) @ DWConv3x3(S) over channels.
    """

    def __init__(self, channels: int, r: float):
        super().__init__()
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"SM mask ratio r must lie in [0, 1], not {r}")
        self.r = r
        self.query = GlobalProjection(channels)
        self.key = GlobalProjection(channels)
        self.value = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def attention(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (softmax(A-hat) (N, C, C), mask of the -inf entries (N, C, C))."""
        c = s.shape[1]
        a = self.query(s).unsqueeze(2) * self.key(s).unsqueeze(1) / math.sqrt(c)
        mask = top_entries_mask(a, self.r)
        return masked_softmax(a, mask), mask

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        n, c, h, w = s.shape
        attn, _ = self.attention(s)
        v = self.value(s).reshape(n, c, h * w)
        return torch.bmm(attn, v).view(n, c, h, w)
