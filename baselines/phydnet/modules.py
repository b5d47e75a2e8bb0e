"""PhyDNet's network: the per-frame encoder and decoder, the PhyCell (moment-constrained physical
branch) and the ConvLSTM branch around them, and the PhyCell's moment constraint.

Reference: Le Guen and Thome, "Disentangling Physical Dynamics from Unknown Factors for
Unsupervised Video Prediction", CVPR 2020, Sec. 3.1 (the two branches) and 3.2 (the PhyCell and its
moment constraint). The design, its choices and the departures from the references are in the
docstring of :mod:`bench.baselines.phydnet`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import BenchError
from bench.spec.registry import DatasetSpec

#: PhyCell: 7x7 filters, 49 = 7*7 of them (one per moment), GroupNorm(7); dcgan layers: GroupNorm(16).
PHY_KERNEL, PHY_GROUPS, GROUPS = 7, 7, 16


class ConvBlock(nn.Module):
    """3x3 conv (or transposed conv) + GroupNorm(16) + LeakyReLU(0.2): the reference's dcgan_(up)conv."""

    def __init__(self, cin: int, cout: int, stride: int, transpose: bool = False):
        super().__init__()
        self.conv = (nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1, output_padding=stride - 1)
                     if transpose else nn.Conv2d(cin, cout, 3, stride=stride, padding=1))
        self.norm = nn.GroupNorm(GROUPS, cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class FrameEncoder(nn.Module):
    """E: C x H x W -> 2w x H/p x W/p (strides 2, 1, p/2)."""

    def __init__(self, channels: int, width: int, patch: int):
        super().__init__()
        self.layers = nn.ModuleList([ConvBlock(channels, width, 2), ConvBlock(width, width, 1),
                                     ConvBlock(width, 2 * width, patch // 2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class FrameDecoder(nn.Module):
    """D: 2w x H/p x W/p -> C x H x W (transposed convs, strides 2, 1, p/2; no output non-linearity)."""

    def __init__(self, channels: int, width: int, patch: int):
        super().__init__()
        self.layers = nn.ModuleList([ConvBlock(2 * width, width, 2, transpose=True),
                                     ConvBlock(width, width, 1, transpose=True)])
        s = patch // 2
        self.out = nn.ConvTranspose2d(width, channels, 3, stride=s, padding=1, output_padding=s - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            z = layer(z)
        return self.out(z)


def branch(latent: int, transpose: bool) -> nn.Sequential:
    """Ep/Er (conv) or Dp/Dr (transposed conv): two stride-1 ConvBlocks at the latent width."""
    return nn.Sequential(ConvBlock(latent, latent, 1, transpose), ConvBlock(latent, latent, 1, transpose))


class PhyCell(nn.Module):
    """One PhyCell layer (Sec. 3.2): h' = h~ + K o (x - h~), h~ = h + Phi(h), K = sigma(conv([x, h]))."""

    def __init__(self, latent: int):
        super().__init__()
        filters = PHY_KERNEL * PHY_KERNEL
        self.conv1 = nn.Conv2d(latent, filters, PHY_KERNEL, padding=PHY_KERNEL // 2)  # the moment-constrained filters
        self.norm = nn.GroupNorm(PHY_GROUPS, filters)
        self.conv2 = nn.Conv2d(filters, latent, 1)
        self.gate = nn.Conv2d(2 * latent, latent, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gain = torch.sigmoid(self.gate(torch.cat([x, h], dim=1)))
        h_pred = h + self.conv2(self.norm(self.conv1(h)))
        return h_pred + gain * (x - h_pred)


class ConvLSTMCell(nn.Module):
    """The reference's ConvLSTM cell: one 3x3 conv with bias over [x, h]; gates (i, f, o, g)."""

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(cin + hidden, 4 * hidden, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), self.hidden, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class PhyDNet(nn.Module):
    """``forward(x)``: test-time rollout from the context x (B, T_in, C, H, W) to ``pred_len`` frames;
    ``forward(seq, true_mask)``: the training pass over a whole sequence, returning the one-step
    predictions of ``seq[:, 1:]``; the future steps after the first read ``m * true + (1 - m) * own``."""

    def __init__(self, data: DatasetSpec, enc_width: int, convlstm_hidden: tuple[int, ...], patch_size: int):
        super().__init__()
        latent = 2 * enc_width
        self.in_frames, self.out_frames, self.frame_shape = data.in_frames, data.out_frames, data.frame_shape
        self.grid = (data.height // patch_size, data.width // patch_size)
        self.hidden = tuple(convlstm_hidden)
        self.latent = latent
        self.encoder = FrameEncoder(data.channels, enc_width, patch_size)
        self.encoder_phys, self.encoder_res = branch(latent, False), branch(latent, False)
        self.phycell = PhyCell(latent)
        self.convlstm = nn.ModuleList(ConvLSTMCell(latent if k == 0 else self.hidden[k - 1], hid)
                                      for k, hid in enumerate(self.hidden))
        self.decoder_phys, self.decoder_res = branch(latent, True), branch(latent, True)
        self.decoder = FrameDecoder(data.channels, enc_width, patch_size)

    def init_state(self, like: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        b = like.shape[0]
        zeros = [like.new_zeros(b, hid, *self.grid) for hid in self.hidden]
        return like.new_zeros(b, self.latent, *self.grid), zeros, list(zeros)

    def step(self, frame: torch.Tensor, state, decode: bool = True):
        """One time step: (next frame or None, new state)."""
        h_phys, hs, cs = state
        z = self.encoder(frame)
        h_phys = self.phycell(self.encoder_phys(z), h_phys)
        x, new_h, new_c = self.encoder_res(z), [], []
        for cell, h, c in zip(self.convlstm, hs, cs):
            x, c = cell(x, h, c)
            new_h.append(x)
            new_c.append(c)
        pred = torch.sigmoid(self.decoder(self.decoder_phys(h_phys) + self.decoder_res(x))) if decode else None
        return pred, (h_phys, new_h, new_c)

    def rollout(self, seq: torch.Tensor, n_steps: int, context: int, true_mask: torch.Tensor | None,
                first_kept: int) -> torch.Tensor:
        """``n_steps`` steps; step t reads seq[:, t] for t < context, then its own previous prediction
        (mixed with seq[:, t] by ``true_mask``). Returns the predictions of steps >= ``first_kept``."""
        state, pred, preds = self.init_state(seq), None, []
        for t in range(n_steps):
            if t < context:
                frame = seq[:, t]
            elif true_mask is None:
                frame = pred
            else:
                m = true_mask[:, t - context].to(seq.dtype).view(-1, 1, 1, 1)
                frame = m * seq[:, t] + (1 - m) * pred
            pred, state = self.step(frame, state, decode=t >= first_kept)  # later steps read it
            if t >= first_kept:
                preds.append(pred)
        return torch.stack(preds, dim=1)

    def forward(self, x: torch.Tensor, true_mask: torch.Tensor | None = None,
                pred_len: int | None = None) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != tuple(self.frame_shape):
            raise BenchError(f"expected frames of shape (B, T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {tuple(x.shape)}")
        if true_mask is not None:  # training: the one-step predictions of x[:, 1:]
            context = x.shape[1] - 1 - true_mask.shape[1]
            if context < 1:
                raise BenchError(f"true_mask covers {true_mask.shape[1]} steps of a {x.shape[1]}-frame sequence")
            return self.rollout(x, x.shape[1] - 1, context, true_mask, 0)
        n_out = self.out_frames if pred_len is None else int(pred_len)
        if n_out < 1:
            raise BenchError(f"pred_len must be at least 1, got {pred_len!r}")
        t_in = x.shape[1]
        return self.rollout(x, t_in - 1 + n_out, t_in, None, t_in - 1)



def moment_matrix(k: int) -> torch.Tensor:
    """(k, k) float64: M[i, j] = (j - (k-1)//2)^i / i! (the authors' K2M; exact in float64)."""
    return torch.tensor([[(j - (k - 1) // 2) ** i / math.factorial(i) for j in range(k)] for i in range(k)],
                        dtype=torch.float64)


def moment_loss(weight: torch.Tensor) -> torch.Tensor:
    """Sum over input channels b of MSE(M w[:, b] M^T, unit matrices), ``weight`` (k*k, C, k, k).

    The moments are computed in float64 and cast to the weight's dtype (see the module docstring)."""
    n, _, k, _ = weight.shape
    if n != k * k:
        raise BenchError(f"the moment constraint needs {k * k} filters of {k}x{k}, got {n}")
    m = moment_matrix(k).to(weight.device)
    moments = (m @ weight.double() @ m.T).to(weight.dtype)
    units = torch.eye(n, dtype=weight.dtype, device=weight.device).view(n, 1, k, k)
    return ((moments - units) ** 2).mean(dim=(0, 2, 3)).sum()
