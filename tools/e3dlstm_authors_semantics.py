"""The patches under which OpenSTL's E3D-LSTM computes the authors' semantics, for
``tools/reference_mim_e3dlstm.py`` (whose docstring lists each departure and its source): attention
over channel-vector tokens, TensorFlow's 'same' zero padding in time, the cell returning the NEW
global memory, and the authors' halved squared error. The E3D-LSTM ``openstl`` variant's fixture
runs without them. Nothing here is reference code: these functions replace methods of the
reference's classes for the duration of a context.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def channel_token_attention(self, query, keys, values):
    """Attention whose tokens are C-vectors of (cell state, slice, site): the authors' layout."""
    b, c = query.shape[:2]

    def tokens(t):  # (B, k*C, T, h, w) -> (B, k*T*h*w, C)
        return t.reshape(b, -1, c, *t.shape[2:]).movedim(2, -1).reshape(b, -1, c)

    q, k, v = tokens(query), tokens(keys), tokens(values)
    out = torch.softmax(q @ k.transpose(1, 2), dim=2) @ v
    return out.reshape(b, *query.shape[2:], c).movedim(-1, 1)


def zero_padded_time_conv(self, x):
    """TensorFlow's 'same' padding in time: (kt - 1) zero slices, the extra one after the window."""
    kt = self.conv3d.kernel_size[0]
    assert tuple(self.conv3d.stride) == (1, 1, 1)
    return self.conv3d(F.pad(x, (0, 0, 0, 0, (kt - 1) // 2, kt // 2)))


def returning_new_memory(forward):
    """Wrap the cell's forward to return the new global memory (the input of ``conv_new_gm``)."""
    def patched(self, x_t, h_t, c_t, global_memory, eidetic_cell):
        seen = []
        handle = self.conv_new_gm.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            output, new_cell, _ = forward(self, x_t, h_t, c_t, global_memory, eidetic_cell)
        finally:
            handle.remove()
        return output, new_cell, seen[0]
    return patched


class HalfMSE(nn.Module):
    """The authors' ``tf.nn.l2_loss`` (sum(d^2)/2) per element."""

    def forward(self, pred, target):
        return 0.5 * F.mse_loss(pred, target)


def e3d_authors_semantics(ref, model: nn.Module):
    """A context in which OpenSTL's E3D-LSTM computes the authors' semantics (module docstring)."""
    @contextlib.contextmanager
    def context():
        cell, conv = ref.e3d.Eidetic3DLSTMCell, ref.e3d.tf_Conv3d
        saved = (cell._attn, cell.forward, conv.forward, model.MSE_criterion)
        cell._attn, conv.forward = channel_token_attention, zero_padded_time_conv
        cell.forward = returning_new_memory(saved[1])
        model.MSE_criterion = HalfMSE()
        try:
            yield
        finally:
            cell._attn, cell.forward, conv.forward, model.MSE_criterion = saved
    return context
