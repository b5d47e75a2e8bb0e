"""Layers of the spatial-masking (SM) pretraining (PLA-SM, Li et al., III-C and III-F): pixel masks,
the dense emulation of a sparse conv + GroupNorm layer, and the SM module. Used by
:mod:`bench.blocks.masked_pretrain` (the stage, for any encoder -> translator -> decoder method) and by
PLA-SM's own layers (:mod:`bench.methods.plasm.modules`). The choices where the paper is silent are
documented in :mod:`bench.blocks.masked_pretrain`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError


# ------------------------------------------------------------------------------- masks, sparse conv


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


def masked_group_norm(x: torch.Tensor, mask: torch.Tensor, gn: nn.GroupNorm) -> torch.Tensor:
    """Group norm whose statistics use the visible sites only, with ``gn``'s parameters.

    The dense emulation of a sparse group norm: masked sites (``mask == 0``) neither contribute to
    the mean/variance nor receive a value (they stay 0). ``mask`` is (B, 1, H, W).
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


def sparse_conv_norm_act(conv: nn.Conv2d, norm: nn.GroupNorm, act: nn.Module, x: torch.Tensor,
                         mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One conv + GroupNorm + activation layer on the active set ``mask`` (N, 1, H, W) only.

    ``x`` must be zero off ``mask``. Returns the output (zero off the new active set) and that set.
    """
    if tuple(conv.stride) != (1, 1):
        mask = F.max_pool2d(mask, conv.kernel_size, stride=conv.stride, padding=conv.padding)
    y = conv(x) * mask
    return act(masked_group_norm(y, mask, norm)) * mask, mask


# ------------------------------------------------------------------------------- the SM module


class GlobalProjection(nn.Module):
    """GAP + 1x1 conv + squeeze: (B, C, H, W) -> (B, C) (the Query/Key of PLA and SM)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(z, 1)).flatten(1)


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


def kaiming_init(module: nn.Module, slope: float) -> None:
    """Kaiming-normal initialisation ([45], IV-B) of every conv; zero biases; GroupNorm to identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
