"""PredRNN's spatiotemporal LSTM cell (Wang et al., NeurIPS 2017, Sec. 3.2), shared by the PredRNN family.

PredRNN (:mod:`bench.baselines.predrnn`), PredRNN-V2 and MIM build on :class:`STLSTMCell`; its
design, the golden-test evidence and the forget bias (:data:`FORGET_BIAS`) are described in
:mod:`bench.baselines.predrnn`'s docstring.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.blocks.recurrent import conv, make_norm


#: The constant added inside both forget gates (the reference's ``_forget_bias``).
FORGET_BIAS = 1.0


class STLSTMCell(nn.Module):
    """Spatiotemporal LSTM (Wang et al. 2017, Eq. 4, with the reference's biases: see the module docstring).

    ``forward(x, h, c, m) -> (h, c, m)``: ``m`` is M^{l-1}_t in and M^l_t out.
    Gate order: conv_x (i, f, g, i', f', g', o); conv_h (i, f, g, o); conv_m (i', f', g').
    """

    def __init__(self, in_channels: int, hidden: int, filter_size: int, grid: tuple[int, int],
                 layer_norm: bool = False):
        super().__init__()
        self.hidden = hidden
        self.conv_x = conv(in_channels, 7 * hidden, filter_size)
        self.conv_h = conv(hidden, 4 * hidden, filter_size)
        self.conv_m = conv(hidden, 3 * hidden, filter_size)
        self.conv_o = conv(2 * hidden, hidden, filter_size)  # W_co * C + W_mo * M
        self.conv_fuse = nn.Conv2d(2 * hidden, hidden, kernel_size=1, bias=False)  # W_1x1 * [C, M]
        self.norm_x = make_norm((7 * hidden, *grid), layer_norm)
        self.norm_h = make_norm((4 * hidden, *grid), layer_norm)
        self.norm_m = make_norm((3 * hidden, *grid), layer_norm)
        self.norm_o = make_norm((hidden, *grid), layer_norm)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor):
        ix, fx, gx, ipx, fpx, gpx, ox = torch.split(self.norm_x(self.conv_x(x)), self.hidden, dim=1)
        ih, fh, gh, oh = torch.split(self.norm_h(self.conv_h(h)), self.hidden, dim=1)
        ipm, fpm, gpm = torch.split(self.norm_m(self.conv_m(m)), self.hidden, dim=1)

        c_new = torch.sigmoid(fx + fh + FORGET_BIAS) * c + torch.sigmoid(ix + ih) * torch.tanh(gx + gh)
        m_new = torch.sigmoid(fpx + fpm + FORGET_BIAS) * m + torch.sigmoid(ipx + ipm) * torch.tanh(gpx + gpm)
        mem = torch.cat([c_new, m_new], dim=1)
        o = torch.sigmoid(ox + oh + self.norm_o(self.conv_o(mem)))
        h_new = o * torch.tanh(self.conv_fuse(mem))
        return h_new, c_new, m_new
