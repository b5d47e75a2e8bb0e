"""PLA-SM specifics: sparse-conv emulation, SM masking, two-stage training, variants, pretraining cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.data import ArraySplits
from bench.methods.plasm import PLASM, pixel_mask, pretrain_key, pretrain_plasm
from bench.methods.plasm_modules import (ConvNeXtBlock, Encoder, PLABlock, SpatialMasking, VanillaConvBlock,
                                         masked_group_norm)
from bench.pretrain import PretrainContext
from bench.registry import DatasetSpec, get_method, parse_method_key

T_IN, T_OUT, C, H, W = 3, 2, 1, 16, 16
DATA = DatasetSpec(name="toy", in_frames=T_IN, out_frames=T_OUT, channels=C, height=H, width=W,
                   load=lambda s, c: None)


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


# ------------------------------------------------------------------------------------------ SM


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
                             "no-convnext": True, "no-convnext-no-pla": False}
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
                      (None, True)]:
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
