"""PLA-SM's training, checked against what the paper specifies: the pretraining network and its loss
(eq. 4), two-stage training and the pretraining cache, the variants, the released layout and its
cost (Table V)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.cost.measure import count_flops, count_params
from bench.blocks.masked_pretrain import MaskedAutoencoder, reconstruction_loss
from bench.methods.plasm import PLASM, pretrain_key, pretrain_plasm
from bench.methods.plasm.modules import ConvNeXtBlock, PLABlock, SpatialMasking, VanillaConvBlock
from bench.spec.registry import DatasetSpec, get_method, parse_method_key

from plasm_helpers import C, DATA, H, T_IN, T_OUT, W, build, make_ctx, make_splits, same, state, tiny_hp


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
    data = DatasetSpec(name="mmnist", in_frames=10, out_frames=10, channels=1, height=64, width=64,
                       load=lambda s, c: None)
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
