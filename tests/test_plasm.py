"""PLA-SM's network, checked against what the paper specifies (small hand-computable inputs, hooks on
intermediate tensors, known answers): encoder strides and the sparse-conv emulation at every layer,
the U-shaped pairing, the PLA attention, eq. (2)/(3), the SM product, shapes. Training stages,
variants and the released layout: ``tests/test_plasm_training.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.methods.plasm import pixel_mask
from bench.methods.plasm.modules import (ConvNeXtBlock, Decoder, EcaProjection, Encoder, PLABlock, SpatialMasking,
                                         Translator, layer_strides, masked_group_norm)
from bench.spec.registry import get_method

from plasm_helpers import C, DATA, H, W, tiny_hp


# ------------------------------------------------------------------------------------------ encoder


def test_pixel_mask_ratio_is_exact():
    mask = pixel_mask(5, H, W, 0.9, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 1, H, W)
    assert ((mask == 0).sum(dim=(1, 2, 3)) == math.floor(0.9 * H * W)).all()
    assert not torch.equal(mask[0], mask[1])  # each frame draws its own mask


def test_masked_pixels_do_not_leak_through_encoder():
    torch.manual_seed(0)
    enc = Encoder(2, 8, layers=4, groups=2, slope=0.2)
    x = torch.rand(3, 2, H, W)
    mask = pixel_mask(3, H, W, 0.75, torch.Generator().manual_seed(1))
    out = enc(x, mask)
    x2 = torch.where(mask.bool(), x, torch.rand_like(x) * 10 - 5)  # other values under the mask
    assert torch.equal(enc(x2, mask), out)
    # Non-trivial: a visible pixel does reach the output, the mask matters, and an all-visible mask
    # reduces to the dense encoder used in training.
    i, j = torch.nonzero(mask[0, 0])[0].tolist()
    x3 = x.clone()
    x3[0, :, i, j] += 1.0
    assert not torch.allclose(enc(x3, mask), out)
    assert not torch.allclose(enc(x), out)
    torch.testing.assert_close(enc(x, torch.ones_like(mask)), enc(x), rtol=1e-4, atol=1e-5)


def test_masked_group_norm_uses_visible_sites_only():
    gn = torch.nn.GroupNorm(2, 4)
    x = torch.randn(2, 4, 8, 8) * 3 + 1
    mask = (torch.rand(2, 1, 8, 8) > 0.6).float()
    y = masked_group_norm(x, mask, gn)
    assert torch.equal(y * (1 - mask), torch.zeros_like(y))
    for b in range(2):
        vis = mask[b, 0].bool()
        for g in range(2):
            vals = y[b, 2 * g:2 * g + 2][:, vis]
            assert abs(float(vals.detach().mean())) < 1e-4
            assert abs(float(vals.detach().var(unbiased=False)) - 1.0) < 1e-3


@pytest.mark.parametrize("layers,strides", [(2, [1, 2]), (3, [1, 2, 1]), (4, [1, 2, 1, 2])])
def test_stride_two_at_every_second_encoder_layer(layers, strides):
    """III-C: "the stride is set to 2 at every two convolution layers (the rest are 1)", H' = H/2^floor(M/2);
    III-E: the decoder upsamples where the encoder downsampled, in mirrored order."""
    assert layer_strides(layers) == strides
    enc = Encoder(1, 4, layers, groups=2, slope=0.2)
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(o[0].shape[-1])) for b in enc.blocks]
    out = enc(torch.rand(2, 1, H, W))
    for h in hooks:
        h.remove()
    assert [b.conv.stride for b in enc.blocks] == [(s, s) for s in strides]
    expected, size = [], H
    for s in strides:
        size //= s
        expected.append(size)
    assert sizes == expected and out.shape[-2:] == (H // 2 ** (layers // 2),) * 2
    for upsample in ("transposed", "pixelshuffle"):
        dec = Decoder(4, 1, layers, groups=2, slope=0.2, upsample=upsample)
        sizes = []
        convs = [m for m in dec.body if not isinstance(m, (torch.nn.GroupNorm, torch.nn.LeakyReLU))]
        hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for c in convs]
        assert dec(out).shape == (2, 1, H, W)
        for h in hooks:
            h.remove()
        assert sizes == list(reversed([H] + expected[:-1])), upsample


def active_after_stride(mask: np.ndarray, stride: int) -> np.ndarray:
    """A strided 3x3 (padding 1) sparse conv's output site (i, j) is active iff an active input lies in
    rows stride*i-1 .. stride*i+1 and columns stride*j-1 .. stride*j+1 (written out with loops)."""
    if stride == 1:
        return mask.copy()
    n, h, w = mask.shape
    out = np.zeros((n, h // stride, w // stride))
    for b in range(n):
        for i in range(h // stride):
            for j in range(w // stride):
                rows = slice(max(stride * i - 1, 0), stride * i + 2)
                cols = slice(max(stride * j - 1, 0), stride * j + 2)
                out[b, i, j] = float(mask[b, rows, cols].any())
    return out


def test_sparse_encoder_invariant_at_every_layer():
    """III-C sparse conv, checked after EVERY layer: the layer input is zero off the previous active set,
    the output is zero off the layer's active set, and at active sites the output is LReLU(GN(conv)) with
    the GroupNorm statistics taken over active sites only (computed here by explicit loops)."""
    torch.manual_seed(0)
    layers, groups, slope, ch = 4, 2, 0.2, 4
    enc = Encoder(1, ch, layers, groups, slope).double()
    for b in enc.blocks:  # non-trivial affine GN parameters
        torch.nn.init.normal_(b.norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(b.norm.bias, 0.0, 0.3)
    x = torch.rand(2, 1, H, W, dtype=torch.float64) + 0.5
    # visible pixels only in the top-left 6x6 corner, half of them: every layer keeps active AND inactive sites
    mask = pixel_mask(2, H, W, 0.5, torch.Generator().manual_seed(3)).double()
    mask[:, :, 6:, :] = 0
    mask[:, :, :, 6:] = 0
    seen = {}

    def keep(i, what):
        return lambda m, args, out: seen.__setitem__((i, what), (args, out))

    hooks = []
    for i, b in enumerate(enc.blocks):
        hooks += [b.conv.register_forward_hook(keep(i, "conv")), b.register_forward_hook(keep(i, "block"))]
    with torch.no_grad():
        enc(x, mask)
    for h in hooks:
        h.remove()
    active = mask[:, 0].numpy().astype(bool)
    for i, stride in enumerate([1, 2, 1, 2]):  # III-C
        (conv_in,), conv_out = seen[(i, "conv")]
        y = seen[(i, "block")][1][0].numpy()
        prev = active
        active = active_after_stride(prev, stride).astype(bool)
        assert not conv_in.numpy().transpose(1, 0, 2, 3)[:, ~prev].any(), f"layer {i} input not masked"
        assert not y.transpose(1, 0, 2, 3)[:, ~active].any(), f"layer {i} output not re-masked"
        assert 0 < active.sum() < active.size  # the test needs both kinds of site at every layer
        raw = conv_out.detach().numpy()
        gn = enc.blocks[i].norm
        weight, bias = gn.weight.detach().numpy(), gn.bias.detach().numpy()
        per = ch // groups
        for n in range(raw.shape[0]):
            for g in range(groups):
                vals = [raw[n, c][active[n]] for c in range(g * per, (g + 1) * per)]
                flat = np.concatenate(vals)
                mean, var = flat.mean(), flat.var()
                for c in range(g * per, (g + 1) * per):
                    z = (raw[n, c][active[n]] - mean) / math.sqrt(var + gn.eps) * weight[c] + bias[c]
                    expect = np.where(z > 0, z, slope * z)
                    np.testing.assert_allclose(y[n, c][active[n]], expect, rtol=1e-9, atol=1e-9,
                                               err_msg=f"layer {i}: not LReLU(GN over active sites)")


# ------------------------------------------------------------------------------------------ translator


def convnext_by_hand(blk: ConvNeXtBlock, z: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """Eq. (2) written with functional ops: Z + Conv(LReLU(Conv(GN(DWConv7x7(Z)))))."""
    c = z.shape[1]
    u = F.conv2d(z, blk.dw.weight, blk.dw.bias, padding=3, groups=c)
    u = F.group_norm(u, blk.norm.num_groups, blk.norm.weight, blk.norm.bias, blk.norm.eps)
    u = F.leaky_relu(F.conv2d(u, blk.expand.weight, blk.expand.bias), slope)
    return z + F.conv2d(u, blk.reduce.weight, blk.reduce.bias)


def test_convnext_block_is_eq2_with_a_4x_inverted_bottleneck():
    torch.manual_seed(0)
    blk = ConvNeXtBlock(4, groups=2, slope=0.2).double()
    assert (blk.dw.kernel_size, blk.dw.groups, blk.expand.out_channels, blk.reduce.in_channels) == ((7, 7), 4, 16, 16)
    z = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(blk(z), convnext_by_hand(blk, z))


@pytest.mark.parametrize("translator_in", ["projection", "wide-block"])
def test_pla_block_j_pairs_with_convnext_block_n_minus_j_plus_1(translator_in):
    """III-D: the i-th ConvNeXt block corresponds to the (N-i+1)-th PLA block; PLA block j gets Z_{N-j+1}
    and the previous PLA output, the first one Z-bar_0 = Z_N; the output is the last PLA output, 1x1-projected."""
    torch.manual_seed(0)
    n = 3
    tr = Translator(6, 4, 4, blocks=n, heads=2, groups=2, slope=0.2, translator_in=translator_in)
    lows, calls, ups = [], [], []
    hooks = [b.register_forward_hook(lambda m, i, o: lows.append(o)) for b in tr.down]
    hooks += [b.register_forward_hook(lambda m, i, o: calls.append(i)) for b in tr.up]
    hooks += [b.register_forward_hook(lambda m, i, o: ups.append(o)) for b in tr.up]
    hooks.append(tr.out.register_forward_pre_hook(lambda m, i: ups.append(("out-in", i[0]))))
    with torch.no_grad():
        tr(torch.randn(2, 6, 4, 4))
    for h in hooks:
        h.remove()
    assert len(lows) == n and len(calls) == n
    for j in range(n):  # 0-based j: PLA block j+1 pairs with ConvNeXt block n-j, i.e. lows[n-1-j]
        z_low, z_prev = calls[j]
        assert torch.equal(z_low, lows[n - 1 - j]), f"PLA block {j + 1} not paired with ConvNeXt block {n - j}"
        assert all(not torch.equal(z_low, lows[k]) for k in range(n) if k != n - 1 - j)
        assert torch.equal(z_prev, lows[-1] if j == 0 else ups[j - 1])
    assert ups[-1][0] == "out-in" and torch.equal(ups[-1][1], ups[n - 1])


def set_projection(proj, matrix: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    c = matrix.shape[0]
    with torch.no_grad():
        proj.proj.weight.copy_(matrix.view(c, c, 1, 1))
        proj.proj.bias.copy_(torch.zeros(c) if bias is None else bias)


@pytest.mark.parametrize("heads", [1, 2])
def test_pla_block_known_answer(heads):
    """III-D with hand-set projections: Q = GAP(Z_i) (identity 1x1 conv) from the paired ConvNeXt output,
    K = 2 GAP(Z-bar) from the previous PLA output, per head s = q.k / sqrt(C^/heads) (sqrt(C^) for one head),
    a = sigmoid(s); V = DWConv3x3(ConvNeXt(Z-bar)) (eq. 3); output a * V with no residual."""
    torch.manual_seed(0)
    c = 4
    blk = PLABlock(c, heads, groups=2, slope=0.2).double()
    set_projection(blk.query, torch.eye(c, dtype=torch.float64))
    set_projection(blk.key, 2 * torch.eye(c, dtype=torch.float64))
    a_low = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    z_low = a_low.view(1, c, 1, 1).expand(1, c, 3, 3).contiguous()
    z_prev = torch.randn(1, c, 3, 3, dtype=torch.float64)
    b_prev = z_prev.mean(dim=(2, 3))[0]  # GAP
    d = c // heads
    gate = []
    for h in range(heads):
        s = sum(float(a_low[k]) * 2 * float(b_prev[k]) for k in range(h * d, (h + 1) * d)) / math.sqrt(d)
        gate += [1 / (1 + math.exp(-s))] * d
    v = F.conv2d(convnext_by_hand(blk.block, z_prev), blk.dw.weight, blk.dw.bias, padding=1, groups=c)
    expected = v * torch.tensor(gate, dtype=torch.float64).view(1, c, 1, 1)
    torch.testing.assert_close(blk(z_low, z_prev), expected)


def test_eca_projection_known_answer():
    """Released layout: Q/K = a 1-D conv of ``eca_kernel`` taps along the pooled channel vector, zero padded."""
    eca = EcaProjection(3).double()
    with torch.no_grad():
        eca.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))
    z = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    # q_c = 1*g_{c-1} + 2*g_c + 3*g_{c+1}: [0+2+6, 1+4+9, 2+6+12, 3+8+0]
    assert eca(z).tolist() == [[8.0, 14.0, 20.0, 11.0]]
    blk = PLABlock(4, 1, groups=2, slope=0.2, qk="eca").double()
    with torch.no_grad():
        blk.query.conv.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))  # Q = GAP(Z_i)
        blk.key.conv.weight.copy_(torch.tensor([[[1.0, 0.0, 0.0]]]))  # K_c = GAP(Z-bar)_{c-1}
    z_low = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    z_prev = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    q, k = z_low.mean(dim=(2, 3))[0], z_prev.mean(dim=(2, 3))[0]
    s = float(q[1] * k[0] + q[2] * k[1] + q[3] * k[2]) / 2.0  # sqrt(C^) = 2
    v = F.conv2d(convnext_by_hand(blk.block, z_prev), blk.dw.weight, blk.dw.bias, padding=1, groups=4)
    torch.testing.assert_close(blk(z_low, z_prev), v / (1 + math.exp(-s)))


# ------------------------------------------------------------------------------------------ SM


@pytest.mark.parametrize("r", [0.0, 1 / 9])
def test_sm_output_is_row_softmax_of_masked_a_times_v(r):
    """III-F with hand-set projections: q = GAP(S) = g, k = (1, 0, -1), A = q k^T / sqrt(3); with r = 1/9 the
    one leading entry, A[2, 0] = 2/sqrt(3), is set to -inf; output channel i = sum_j softmax(A-hat)[i, j] V_j
    with V = S (identity depth-wise kernel): the product is softmax(A-hat) V, not its transpose."""
    sm = SpatialMasking(3, r).double()
    g = [1.0, -1.0, 2.0]
    set_projection(sm.query, torch.eye(3, dtype=torch.float64))
    set_projection(sm.key, torch.zeros(3, 3, dtype=torch.float64), torch.tensor([1.0, 0.0, -1.0]))
    with torch.no_grad():
        sm.value.weight.zero_()
        sm.value.weight[:, 0, 1, 1] = 1.0
        sm.value.bias.zero_()
    s = torch.tensor(g, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    k = [1.0, 0.0, -1.0]
    expected = []
    for i in range(3):
        logits = [g[i] * k[j] / math.sqrt(3) for j in range(3)]
        if r > 0 and i == 2:
            logits[0] = -math.inf
        e = [math.exp(v) for v in logits]
        expected.append(sum(e[j] / sum(e) * g[j] for j in range(3)))
    out = sm(s)
    assert out.shape == s.shape
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(out, out[:, :, :1, :1].expand_as(out))


@pytest.mark.parametrize("channels,r", [(8, 0.1), (8, 0.37), (16, 0.1), (6, 0.0)])
def test_sm_masks_exactly_the_leading_floor_r_c2_entries(channels, r):
    torch.manual_seed(0)
    sm = SpatialMasking(channels, r)
    s = torch.randn(5, channels, 4, 4)
    attn, mask = sm.attention(s)
    k = math.floor(r * channels * channels)
    assert (mask.sum(dim=(1, 2)) == k).all()
    a = sm.query(s).unsqueeze(2) * sm.key(s).unsqueeze(1) / math.sqrt(channels)
    for n in range(5):
        if 0 < k < channels * channels:
            assert a[n][mask[n]].min() >= a[n][~mask[n]].max()  # the leading values are the masked ones
    assert torch.equal(attn[mask], torch.zeros(int(mask.sum())))
    rows = attn.sum(-1)
    full = mask.all(-1)
    torch.testing.assert_close(rows[~full], torch.ones_like(rows[~full]))
    assert torch.equal(rows[full], torch.zeros_like(rows[full]))
    assert sm(s).shape == s.shape


def test_sm_fully_masked_rows_stay_finite():
    torch.manual_seed(0)
    sm = SpatialMasking(4, 0.75)  # 12 of 16 entries masked: some rows entirely
    s = torch.randn(6, 4, 4, 4, requires_grad=True)
    _, mask = sm.attention(s)
    assert mask.all(-1).any()
    sm(s).sum().backward()
    assert torch.isfinite(s.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in sm.parameters())


# ------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("layers,heads", [(2, 2), (3, 1), (4, 4)])
def test_shapes_with_different_input_and_output_lengths(layers, heads):
    data = DATA.with_frames(in_frames=4, out_frames=7)
    hp = tiny_hp(enc_layers=layers, heads=heads)
    model = get_method("plasm").create_model(data, hp)
    x = torch.rand(2, 4, C, H, W, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 7, C, H, W)
    y.mean().backward()
    assert torch.isfinite(x.grad).all()
    feats = model.encoder(x.detach().reshape(8, C, H, W))
    assert feats.shape == (8, hp["enc_channels"], H // 2 ** (layers // 2), W // 2 ** (layers // 2))
