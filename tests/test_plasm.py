"""PLA-SM specifics, checked against what the paper specifies (small hand-computable inputs, hooks on
intermediate tensors, known answers): encoder strides and the sparse-conv emulation at every layer,
the U-shaped pairing, the PLA attention, eq. (2)/(3), the SM product, the pretraining network and
its loss (eq. 4), two-stage training, variants, the released layout and its cost (Table V), and the
pretraining cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.spec.splits import ArraySplits
from bench.cost.measure import count_flops, count_params
from bench.blocks.masked_pretrain import MaskedAutoencoder, reconstruction_loss
from bench.methods.plasm import PLASM, pixel_mask, pretrain_key, pretrain_plasm
from bench.methods.plasm.modules import (ConvNeXtBlock, Decoder, EcaProjection, Encoder, PLABlock, SpatialMasking,
                                         Translator, VanillaConvBlock, layer_strides, masked_group_norm)
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import get_method, parse_method_key
from toy_data import toy_dataset



T_IN, T_OUT, C, H, W = 3, 2, 1, 16, 16
DATA = toy_dataset(T_IN, T_OUT, C, H, W)


def make_splits(n: int = 8, seed: int = 0) -> ArraySplits:
    rng = np.random.default_rng(seed)
    arrays = {
        split: (rng.integers(0, 256, (n, T_IN, C, H, W), dtype=np.uint8),
                rng.integers(0, 256, (n, T_OUT, C, H, W), dtype=np.uint8))
        for split in ("train", "val", "test")
    }
    return ArraySplits(arrays, seed=seed)


def tiny_hp(variant: str | None = None, **overrides) -> dict:
    return get_method("plasm").resolve_hparams(DATA.name, variant, overrides, tiny=True)


def build(hp: dict, seed: int = 0) -> PLASM:
    torch.manual_seed(seed)
    return get_method("plasm").create_model(DATA, hp)


def make_ctx(hp: dict, cache_dir=None, seed: int = 0, steps: list | None = None, **extra) -> PretrainContext:
    record = steps if steps is not None else []
    return PretrainContext(data=DATA, splits=make_splits(), hp=hp, device=torch.device("cpu"), seed=seed,
                           cache_dir=cache_dir, log=lambda text: None,
                           check_finite=lambda loss, step: record.append((float(loss.detach()), step)), extra=dict(extra))


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


# ------------------------------------------------------------------------------------------ training stages


def test_pretrain_then_training_steps_freeze_encoder_only():
    hp = tiny_hp(batch_size=4)
    model = build(hp)
    init_translator = state(model.translator)
    steps: list = []
    record = pretrain_plasm(model, make_ctx(hp, steps=steps))
    assert record["pretrained"] and not record["reused"] and len(record["epoch_loss"]) == 1
    assert [s for _, s in steps] == [0, 1]  # 8 sequences, batch 4, one epoch: check_finite every step
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.translator.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert not same(state(model.translator), init_translator)  # translator re-initialised

    enc0, tr0, dec0 = state(model.encoder), state(model.translator), state(model.decoder)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for x, y in make_splits().batches("train", 4, 0):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert same(state(model.encoder), enc0)
    assert not same(state(model.translator), tr0)
    assert not same(state(model.decoder), dec0)


def test_pretraining_loads_the_pretrained_encoder_and_decoder(tmp_path):
    hp = tiny_hp()
    model = build(hp)
    enc_init = state(model.encoder)
    pretrain_plasm(model, make_ctx(hp, cache_dir=tmp_path))
    saved = torch.load(next(tmp_path.glob("plasm-pretrain-*.pt")), weights_only=True)
    assert same(state(model.encoder), saved["encoder"])
    assert same(state(model.decoder), saved["decoder"])
    assert not same(state(model.encoder), enc_init)


def test_pretrain_cache_reuse(tmp_path):
    hp = tiny_hp()
    first = build(hp, seed=0)
    rec1 = pretrain_plasm(first, make_ctx(hp, cache_dir=tmp_path))
    assert not rec1["reused"]
    assert len(list(tmp_path.glob("plasm-pretrain-*.pt"))) == 1
    assert not list(tmp_path.glob("*.tmp"))
    second = build(hp, seed=1)  # different build init: the weights must come from the cache
    steps: list = []
    rec2 = pretrain_plasm(second, make_ctx(hp, cache_dir=tmp_path, steps=steps))
    assert rec2["reused"] and rec2["cache_key"] == rec1["cache_key"] and steps == []
    assert rec2["epoch_loss"] == rec1["epoch_loss"]
    assert same(state(second.encoder), state(first.encoder))
    assert same(state(second.decoder), state(first.decoder))
    # A variant that differs only in the translator shares the pretraining; one that changes it doesn't.
    assert pretrain_key(DATA, tiny_hp("mask-sm"), 0, {}) == rec1["cache_key"]
    assert pretrain_key(DATA, tiny_hp("mask"), 0, {}) != rec1["cache_key"]
    assert pretrain_key(DATA, tiny_hp(r0=0.5), 0, {}) != rec1["cache_key"]
    assert pretrain_key(DATA, hp, 1, {}) != rec1["cache_key"]
    assert pretrain_key(DATA, hp, 0, {"sizes": {"train": 8}}) != rec1["cache_key"]
    rec3 = pretrain_plasm(build(hp), make_ctx(tiny_hp(r0=0.5), cache_dir=tmp_path))
    assert not rec3["reused"] and len(list(tmp_path.glob("plasm-pretrain-*.pt"))) == 2


def test_pretraining_is_deterministic_without_cache():
    hp = tiny_hp()
    a, b = build(hp, seed=0), build(hp, seed=5)
    ra = pretrain_plasm(a, make_ctx(hp))
    rb = pretrain_plasm(b, make_ctx(hp))
    assert ra["epoch_loss"] == rb["epoch_loss"]
    assert same(state(a.encoder), state(b.encoder)) and same(state(a.translator), state(b.translator))


def modules_called_during(fn, kind: type) -> list[tuple]:
    """(module, inputs, output) of every forward call of a ``kind`` module while ``fn()`` runs."""
    calls: list[tuple] = []

    def hook(module, args, out):
        if isinstance(module, kind):
            calls.append((module, tuple(a.detach().clone() for a in args), out.detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        fn()
    finally:
        handle.remove()
    return calls


@pytest.mark.parametrize("variant,with_sm", [(None, True), ("mask-sm", True), ("mask", False)])
def test_pretraining_network_has_sm_exactly_when_specified(variant, with_sm):
    """III-F / Table VI: the pretraining network is encoder -> SM (ratio r) -> decoder for PLA-SM and the
    Mask+SM row, encoder -> decoder for the Mask row."""
    hp = tiny_hp(variant, batch_size=4)
    model = build(hp)
    calls = modules_called_during(lambda: pretrain_plasm(model, make_ctx(hp)), SpatialMasking)
    assert (len(calls) > 0) is with_sm
    assert all(m.r == hp["r"] for m, _, _ in calls)


def test_reconstruction_loss_covers_all_pixels():
    """Eq. (4): the loss compares the reconstruction with the UNMASKED source frames over all pixels,
    masked and visible alike; the masking happens inside the network."""
    assert float(reconstruction_loss(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))) == 1.0
    hp = tiny_hp(batch_size=4)
    model = build(hp)
    steps: list = []
    calls = modules_called_during(lambda: pretrain_plasm(model, make_ctx(hp, steps=steps)), MaskedAutoencoder)
    assert len(calls) == len(steps) == 2
    for (_, (frames, mask), out), (loss, _) in zip(calls, steps):
        hidden = 1 - mask
        assert (frames * hidden).abs().sum() > 0  # the targets are the source frames, not the masked ones
        assert math.isclose(loss, float(((out - frames) ** 2).mean()), rel_tol=1e-5)
        visible_only = float((((out - frames) * mask) ** 2).sum() / (mask.sum() * frames.shape[1]))
        assert not math.isclose(loss, visible_only, rel_tol=1e-3)


# ------------------------------------------------------------------------------------------ variants


def blocks_of(model: PLASM, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_variants_build_and_differ_where_they_should():
    spec = get_method("plasm")
    assert {"base", "mask", "mask-sm", "pla", "no-convnext"} <= set(spec.variants)
    models = {v: build(tiny_hp(v)) for v in [None, *spec.variants]}
    n = tiny_hp()["blocks"]
    has_attention = {v: all(b.attention for b in m.modules() if isinstance(b, PLABlock)) for v, m in models.items()}
    assert has_attention == {None: True, "base": False, "mask": False, "mask-sm": False, "pla": True,
                             "no-convnext": True, "no-convnext-no-pla": False, "released": True}
    for v, m in models.items():
        convnext = blocks_of(m, ConvNeXtBlock)
        vanilla = blocks_of(m, VanillaConvBlock)
        assert (convnext, vanilla) == ((0, 2 * n) if v and v.startswith("no-convnext") else (2 * n, 0))
        assert m(torch.rand(2, T_IN, C, H, W)).shape == (2, T_OUT, C, H, W)
    # Table VI rows 1-3 share the architecture and differ in pretraining only.
    keys = {v: set(models[v].state_dict()) for v in ("base", "mask", "mask-sm")}
    assert keys["base"] == keys["mask"] == keys["mask-sm"] != set(models[None].state_dict())
    # Pretraining: none for base / pla; masked autoencoder (no SM) for mask; SM for mask-sm and plasm.
    for v, expect in [("base", None), ("pla", None), ("no-convnext", None), ("mask", False), ("mask-sm", True),
                      (None, True), ("released", True)]:
        hp = tiny_hp(v)
        model = models[v]
        rec = pretrain_plasm(model, make_ctx(hp))
        if expect is None:
            assert rec["pretrained"] is False
            assert all(p.requires_grad for p in model.parameters())
        else:
            assert rec["pretrained"] and rec["sm"] is expect
            assert not any(p.requires_grad for p in model.encoder.parameters())


def test_plain_hyperparameters_from_method_keys():
    key = parse_method_key("plasm:mask-sm:r0=0.9:r=0.05:heads=4")
    hp = key.resolve(DATA.name, tiny=True)
    assert (hp["r0"], hp["r"], hp["heads"], hp["pla"], hp["sm"]) == (0.9, 0.05, 4, False, True)
    model = get_method("plasm").create_model(DATA, key.resolve(DATA.name, {"pla": True}, tiny=True))
    assert {b.heads for b in model.modules() if isinstance(b, PLABlock)} == {4}
    full = get_method("plasm").resolve_hparams("mmnist")
    assert (full["enc_channels"], full["hid_channels"], full["enc_layers"], full["blocks"], full["heads"],
            full["r0"], full["r"], full["lr"], full["pretrain_epochs"]) == (64, 512, 4, 4, 2, 0.96, 0.1, 0.01, 50)
    assert get_method("plasm").resolve_hparams("taxibj")["schedule"] == "cosine"


def test_pla_score_uses_the_paired_low_level_feature():
    torch.manual_seed(0)
    model = build(tiny_hp())
    x = torch.rand(2, T_IN, C, H, W)
    model(x).pow(2).mean().backward()
    for block in model.translator.up:
        assert block.query.proj.weight.grad.abs().sum() > 0
        assert block.key.proj.weight.grad.abs().sum() > 0
    # The literal softmax of one score per head is identically 1: Q never gets a gradient.
    degenerate = build(tiny_hp(heads=1, pla_gate="head-softmax"))
    degenerate(x).pow(2).mean().backward()
    assert all(b.query.proj.weight.grad.abs().sum() == 0 for b in degenerate.translator.up)


# ------------------------------------------------------------------------------------------ layouts and cost (Table V)


def params_from_the_layer_list(c, ce, ch, m, n, t, tp, released: bool, eca: int = 3) -> int:
    """Parameter count of the layer list of section III (paper text) or of the released layout, by hand."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731 - conv with bias
    gn = lambda ch_: 2 * ch_  # noqa: E731
    convnext = lambda ch_: conv(1, ch_, 7) + gn(ch_) + conv(ch_, 4 * ch_, 1) + conv(4 * ch_, ch_, 1)  # noqa: E731
    encoder = conv(c, ce, 3) + (m - 1) * conv(ce, ce, 3) + m * gn(ce)
    qk = 2 * eca if released else 2 * conv(ch, ch, 1)
    pla = n * (convnext(ch) + conv(1, ch, 3) + qk)
    if released:  # first ConvNeXt block at T*C~, then a 1x1 reduction to C^
        down = convnext(t * ce) + conv(t * ce, ch, 1) + (n - 1) * convnext(ch)
    else:  # 1x1 projection T*C~ -> C^, then N blocks at C^
        down = conv(t * ce, ch, 1) + n * convnext(ch)
    ups = m // 2  # stride-2 layers
    if released:  # 3x3 conv to 4C~ + PixelShuffle where upsampling, plain 3x3 convs elsewhere
        body = ups * conv(ce, 4 * ce, 3) + (m - ups) * conv(ce, ce, 3)
    else:  # 3x3 transposed convs
        body = m * conv(ce, ce, 3)
    decoder = body + m * gn(ce) + conv(ce, c, 1)
    return encoder + down + pla + conv(ch, tp * ce, 1) + decoder


@pytest.mark.parametrize("variant", [None, "released"])
def test_parameter_count_is_that_of_the_layer_list(variant):
    hp = tiny_hp(variant)
    model = build(hp)
    expected = params_from_the_layer_list(C, hp["enc_channels"], hp["hid_channels"], hp["enc_layers"], hp["blocks"],
                                          T_IN, T_OUT, released=variant == "released")
    assert count_params(model) == expected


def test_released_layout_shapes():
    """Released layout: the first translator block runs at T*C~ channels and reduces to C^; the decoder's
    upsampling layers compute 4*C~ channels at the input size and PixelShuffle them."""
    hp = tiny_hp("released")
    model = build(hp)
    ce, ch = hp["enc_channels"], hp["hid_channels"]
    seen = {}
    first = model.translator.down[0]
    hooks = [first.block.register_forward_hook(lambda m, i, o: seen.__setitem__("wide", (i[0].shape, o.shape))),
             first.register_forward_hook(lambda m, i, o: seen.__setitem__("first", o.shape))]
    ups = [m for m in model.decoder.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert len(ups) == hp["enc_layers"] // 2
    hooks += [u.register_forward_hook(lambda m, i, o: seen.setdefault("shuffle", []).append((i[0].shape, o.shape)))
              for u in ups]
    with torch.no_grad():
        model(torch.rand(2, T_IN, C, H, W))
    for h in hooks:
        h.remove()
    assert seen["wide"] == ((2, T_IN * ce, H // 2, W // 2),) * 2
    assert seen["first"] == (2, ch, H // 2, W // 2)
    assert seen["shuffle"] == [((2 * T_OUT, 4 * ce, H // 2, W // 2), (2 * T_OUT, ce, H, W))]


def test_released_layout_cost_within_one_percent_of_table_v():
    """Table V: PLA-SM on Moving MNIST has 19.3M params and 9.6G FLOPs (fvcore, one sample)."""
    spec = get_method("plasm")
    data = toy_dataset(10, 10, 1, 64, 64, name="mmnist")
    model = spec.create_model(data, spec.resolve_hparams("mmnist", "released"))
    assert abs(count_params(model) / 19.3e6 - 1) < 0.01
    assert abs(count_flops(model, spec.flops_inputs(data))[0] / 9.6e9 - 1) < 0.01


def test_released_variant_pretrains_its_own_decoder(tmp_path):
    hp = tiny_hp("released")
    model = build(hp)
    rec = pretrain_plasm(model, make_ctx(hp, cache_dir=tmp_path))
    assert rec["pretrained"] and not any(p.requires_grad for p in model.encoder.parameters())
    assert rec["cache_key"] != pretrain_key(DATA, tiny_hp(), 0, {})  # a different decoder: not shared
    saved = torch.load(tmp_path / f"plasm-pretrain-{rec['cache_key']}.pt", weights_only=True)
    assert same(state(model.decoder), saved["decoder"])


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
