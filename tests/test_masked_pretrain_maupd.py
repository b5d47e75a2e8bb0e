"""Spatial-masking pretraining of PhyDNet and MAU (``phydnet:sm``, ``mau:sm``; PLA-SM Table VII)."""

from __future__ import annotations

import pytest
import torch
from test_masked_pretrain import DATA, H, W, C, ctx, equal, snapshot

from bench.baselines.mau import MAU_SM
from bench.baselines.phydnet import PHYDNET_SM
from bench.blocks.masked_layers import SpatialMasking, pixel_mask
from bench.blocks.masked_pretrain import MaskedAutoencoder, build_pretrain_net, pretrain_key
from bench.spec.registry import get_method

RECIPES = {"phydnet": PHYDNET_SM, "mau": MAU_SM}
#: the model attributes SM leaves alone (the "translator")
TRANSLATOR = {"phydnet": ("encoder_phys", "encoder_res", "phycell", "convlstm", "decoder_phys", "decoder_res"),
              "mau": ("cells",)}


def build(name: str, variant: str | None = "sm"):
    spec = get_method(name)
    hp = spec.resolve_hparams(DATA.name, variant, {"batch_size": 4}, tiny=True)
    torch.manual_seed(0)
    return spec, spec.create_model(DATA, hp), hp


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_sm_pretrains_encoder_and_decoder_then_freezes_the_encoder(name, tmp_path):
    spec, model, hp = build(name, None)
    assert spec.pretrain(model, ctx(hp))["pretrained"] is False  # the plain method
    spec, model, hp = build(name)
    assert hp["pretrain"] and hp["sm"] and hp["r0"] == 0.96 and hp["r"] == 0.1 and hp["pretrain_epochs"] == 1
    enc0, dec0 = snapshot(model.encoder), snapshot(model.decoder)
    rest0 = {k: snapshot(getattr(model, k)) for k in TRANSLATOR[name]}
    calls: list = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.append(type(m)) if isinstance(m, (SpatialMasking, MaskedAutoencoder)) else None)
    try:
        rec = spec.pretrain(model, ctx(hp, tmp_path))
    finally:
        handle.remove()
    assert rec["pretrained"] and not rec["reused"] and SpatialMasking in calls and MaskedAutoencoder in calls
    saved = torch.load(tmp_path / f"{name}-pretrain-{rec['cache_key']}.pt", weights_only=True)
    assert equal(snapshot(model.encoder), saved["encoder"]) and not equal(snapshot(model.encoder), enc0)
    assert equal(snapshot(model.decoder), saved["decoder"]) and not equal(snapshot(model.decoder), dec0)
    assert all(equal(snapshot(getattr(model, k)), v) for k, v in rest0.items())  # translator: build-time init
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for k in ("decoder", *TRANSLATOR[name]) for p in getattr(model, k).parameters())
    _, again, _ = build(name)
    assert spec.pretrain(again, ctx(hp, tmp_path))["reused"]
    assert equal(snapshot(again.encoder), snapshot(model.encoder))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_encoder_is_sparse_while_pretraining(name):
    """Masked pixels never reach the latent; with nothing masked the sparse encoder is the dense one."""
    _, _, hp = build(name)
    recipe = RECIPES[name]
    net = build_pretrain_net(recipe, DATA, hp)
    x = torch.rand(4, C, H, W)
    mask = pixel_mask(4, H, W, 0.7, torch.Generator().manual_seed(1))
    with torch.no_grad():
        latent, _ = recipe.encode(net.encoder, x, mask)
        other = torch.where(mask.bool(), x, torch.rand_like(x) * 10 - 5)
        assert torch.equal(latent, recipe.encode(net.encoder, other, mask)[0])
        dense, _ = recipe.encode(net.encoder, x, torch.ones_like(mask))
        torch.testing.assert_close(dense, net.encoder(x), rtol=1e-4, atol=1e-5)
        assert net(x, mask).shape == x.shape
        # left half masked: the latent sites whose receptive field holds no visible pixel stay inactive (zero)
        half = torch.ones_like(mask)
        half[..., : W // 2] = 0
        sparse, _ = recipe.encode(net.encoder, x, half)
        assert sparse.shape[-1] == 4 and not sparse[..., :2].any() and sparse[..., 2:].abs().sum() > 0
        assert net.encoder(x * half)[..., :2].abs().sum() > 0  # a dense encoder fills them


@pytest.mark.parametrize("name,encoder_key,translator_key", [("phydnet", "enc_width", "convlstm_hidden"),
                                                              ("mau", "sr_size", "num_layers")])
def test_cache_key_holds_what_the_encoder_and_decoder_depend_on(name, encoder_key, translator_key):
    _, _, hp = build(name)
    spec = get_method(name)
    changed = {"enc_width": 32, "sr_size": 2, "convlstm_hidden": (16, 16, 32), "num_layers": 3}
    key = pretrain_key(RECIPES[name], DATA, hp, 0, {})
    other = spec.resolve_hparams(DATA.name, "sm", {"batch_size": 4, encoder_key: changed[encoder_key]}, tiny=True)
    same = spec.resolve_hparams(DATA.name, "sm", {"batch_size": 4, translator_key: changed[translator_key]}, tiny=True)
    if name == "phydnet":
        other["convlstm_hidden"] = (16, 64)
    assert pretrain_key(RECIPES[name], DATA, other, 0, {}) != key
    assert pretrain_key(RECIPES[name], DATA, same, 0, {}) == key
    for k in ("r0", "r", "pretrain_epochs", "pretrain_lr", "batch_size"):
        assert pretrain_key(RECIPES[name], DATA, {**hp, k: hp[k] * 2}, 0, {}) != key, k
