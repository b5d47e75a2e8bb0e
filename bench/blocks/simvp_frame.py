"""The SimVP frame (CVPR 2022, Sec. 3): per-frame spatial encoder, a translator on stacked frames, decoder.

Shared by SimVP (:mod:`bench.baselines.simvp`, an Inception-UNet translator) and TAU
(:mod:`bench.methods.tau`, Temporal Attention Units): :class:`SpatialEncoder` (``N_S`` 3x3
convolution + GroupNorm(2) + LeakyReLU(0.2) blocks, strides 1, 2, 1, 2, ...), :class:`SpatialDecoder`
(mirrored, stride-2 blocks as 3x3 transposed convolutions, the first encoder block's feature as a
concatenated skip into the last block, a 1x1 read-out), and :class:`EncodeTranslateDecode`, which
runs encoder -> translator -> decoder on (B, T, C, H, W). The design, its sources and the choice for
T' != T are in :mod:`bench.baselines.simvp`'s docstring.
"""

from __future__ import annotations


import torch
from torch import nn

from bench.errors import BenchError
from bench.spec.dataset import DatasetSpec


def encoder_strides(n_layers: int) -> list[int]:
    """Strides of the spatial encoder: 1, 2, 1, 2, ... (the decoder uses them reversed)."""
    return [1 + (i % 2) for i in range(n_layers)]


def check_geometry(data: DatasetSpec, n_layers: int) -> None:
    """Raise if the frame size is not divisible by the encoder's total down-sampling factor."""
    factor = 2 ** sum(1 for s in encoder_strides(n_layers) if s == 2)
    if data.height % factor or data.width % factor:
        raise BenchError(
            f"frames of {data.height}x{data.width} cannot be encoded with N_S={n_layers} "
            f"(down-sampling x{factor}); choose N_S so that {factor} divides the height and width"
        )


class ConvSC(nn.Module):
    """3x3 (transposed) convolution + GroupNorm(2) + LeakyReLU(0.2): SimVP's ConvNormReLU block.

    ``transpose=True`` with ``stride=2`` is an up-sampling ConvTranspose2d that exactly doubles the
    spatial size; with ``stride=1`` the block is always a plain convolution.

    The activation works in place, as in the authors' release (``nn.LeakyReLU(0.2, inplace=True)``):
    GroupNorm's backward needs its input, not its output, so that output is overwritten instead of kept
    for backward beside the activation's output (which the next convolution keeps). Same numbers, one
    activation map fewer held per block: paper-size SimVP and TAU at batch 16 keep 0.47 GiB less for
    backward (SimVP 3.33 -> 2.85 GiB, TAU 4.48 -> 4.00 GiB; measured with saved-tensor hooks).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, transpose: bool = False):
        super().__init__()
        if transpose and stride > 1:
            self.conv: nn.Module = nn.ConvTranspose2d(c_in, c_out, 3, stride=stride, padding=1,
                                                      output_padding=stride - 1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SpatialEncoder(nn.Module):
    """N_S ConvSC blocks with strides 1, 2, 1, 2, ...; returns ``(latent, skip)``.

    ``skip`` is the output of the first block (full resolution, ``hid`` channels).
    """

    def __init__(self, c_in: int, hid: int, n_layers: int):
        super().__init__()
        if n_layers < 1:
            raise BenchError(f"N_S must be at least 1 (got {n_layers})")
        strides = encoder_strides(n_layers)
        self.layers = nn.ModuleList(
            [ConvSC(c_in if i == 0 else hid, hid, stride=s) for i, s in enumerate(strides)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.layers[0](x)
        z = skip
        for layer in self.layers[1:]:
            z = layer(z)
        return z, skip


class SpatialDecoder(nn.Module):
    """Mirror of :class:`SpatialEncoder` (transposed convolutions where the encoder strided).

    The skip feature joins before the last block: concatenated (``skip="concat"``, SimVP) or added
    (``skip="add"``, TAU). A 1x1 convolution reads out ``c_out`` channels.
    """

    def __init__(self, hid: int, c_out: int, n_layers: int, skip: str = "concat"):
        super().__init__()
        if skip not in ("concat", "add"):
            raise BenchError(f"decoder skip must be 'concat' or 'add' (got {skip!r})")
        self.skip = skip
        strides = list(reversed(encoder_strides(n_layers)))
        last_in = 2 * hid if skip == "concat" else hid
        self.layers = nn.ModuleList(
            [ConvSC(last_in if i == n_layers - 1 else hid, hid, stride=s, transpose=True)
             for i, s in enumerate(strides)]
        )
        self.readout = nn.Conv2d(hid, c_out, 1)

    def forward(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            z = layer(z)
        z = torch.cat([z, skip], dim=1) if self.skip == "concat" else z + skip
        return self.readout(self.layers[-1](z))


def select_skip(skip: torch.Tensor, batch: int, in_frames: int, out_frames: int) -> torch.Tensor:
    """Decoder skip features for the T' output frames, from the (B*T, C', H, W) encoder skips.

    T' == T: frame-aligned (the original models). Otherwise: the last observed frame's features,
    repeated T' times. Returns (B*T', C', H, W).
    """
    if out_frames == in_frames:
        return skip
    c, h, w = skip.shape[1:]
    last = skip.reshape(batch, in_frames, c, h, w)[:, -1:]
    return last.expand(batch, out_frames, c, h, w).reshape(batch * out_frames, c, h, w)


class EncodeTranslateDecode(nn.Module):
    """The SimVP frame shared by SimVP and TAU: ``enc`` per frame, ``hid`` on the frames stacked
    along channels (B, T*C', H', W') -> (B, T'*C', H', W'), ``dec`` per output frame with the skip."""

    enc: nn.Module
    hid: nn.Module
    dec: nn.Module
    out_frames: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        latent, skip = self.enc(x.reshape(b * t, c, h, w))
        c2, h2, w2 = latent.shape[1:]
        z = self.hid(latent.reshape(b, t * c2, h2, w2))
        z = z.reshape(b * self.out_frames, c2, h2, w2)
        y = self.dec(z, select_skip(skip, b, t, self.out_frames))
        return y.reshape(b, self.out_frames, c, h, w)
