"""Spatial-masking pretraining as a capability of other methods (PLA-SM Table VII): ``simvp:sm``."""

from __future__ import annotations

import numpy as np
import torch

from bench.baselines.simvp import SIMVP_SM
from bench.spec.splits import ArraySplits
from bench.blocks.masked_layers import SpatialMasking, pixel_mask
from bench.blocks.masked_pretrain import MaskedAutoencoder, build_pretrain_net
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import get_method
from toy_data import toy_dataset

T_IN, T_OUT, C, H, W = 3, 2, 1, 16, 16
DATA = toy_dataset(T_IN, T_OUT, C, H, W)



def splits(n: int = 8) -> ArraySplits:
    rng = np.random.default_rng(0)
    return ArraySplits({s: (rng.integers(0, 256, (n, T_IN, C, H, W), dtype=np.uint8),
                            rng.integers(0, 256, (n, T_OUT, C, H, W), dtype=np.uint8))
                        for s in ("train", "val", "test")}, seed=0)


def simvp(variant: str | None):
    spec = get_method("simvp")
    hp = spec.resolve_hparams(DATA.name, variant, {"batch_size": 4}, tiny=True)
    torch.manual_seed(0)
    return spec, spec.create_model(DATA, hp), hp


def ctx(hp: dict, cache_dir=None) -> PretrainContext:
    return PretrainContext(data=DATA, splits=splits(), hp=hp, device=torch.device("cpu"), seed=0,
                           cache_dir=cache_dir, log=lambda text: None)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_simvp_has_no_pretraining_stage_effect():
    spec, model, hp = simvp(None)
    before = snapshot(model)
    assert hp["pretrain"] is False
    assert spec.pretrain(model, ctx(hp))["pretrained"] is False
    assert equal(snapshot(model), before) and all(p.requires_grad for p in model.parameters())


def test_simvp_sm_pretrains_encoder_and_decoder_then_freezes_the_encoder(tmp_path):
    spec, model, hp = simvp("sm")
    assert hp["pretrain"] and hp["sm"] and hp["r0"] == 0.96 and hp["r"] == 0.1
    enc0, hid0, dec0 = snapshot(model.enc), snapshot(model.hid), snapshot(model.dec)
    calls: list = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.append(type(m)) if isinstance(m, (SpatialMasking, MaskedAutoencoder)) else None)
    try:
        rec = spec.pretrain(model, ctx(hp, tmp_path))
    finally:
        handle.remove()
    assert rec["pretrained"] and not rec["reused"] and SpatialMasking in calls and MaskedAutoencoder in calls
    saved = torch.load(tmp_path / f"simvp-pretrain-{rec['cache_key']}.pt", weights_only=True)
    assert equal(snapshot(model.enc), saved["encoder"]) and not equal(snapshot(model.enc), enc0)
    assert equal(snapshot(model.dec), saved["decoder"]) and not equal(snapshot(model.dec), dec0)
    assert equal(snapshot(model.hid), hid0)  # the translator keeps its build-time initialisation
    assert not any(p.requires_grad for p in model.enc.parameters())
    assert all(p.requires_grad for p in model.hid.parameters()) and all(p.requires_grad for p in model.dec.parameters())
    _, again, _ = simvp("sm")
    assert spec.pretrain(again, ctx(hp, tmp_path))["reused"]
    assert equal(snapshot(again.enc), snapshot(model.enc))


def test_simvp_encoder_is_sparse_while_pretraining():
    """III-C applied to SimVP's encoder: masked pixels reach neither the latent nor the decoder skip; an
    all-visible mask gives SimVP's dense encoder."""
    _, model, hp = simvp("sm")
    net = build_pretrain_net(SIMVP_SM, DATA, hp)
    x = torch.rand(4, C, H, W)
    mask = pixel_mask(4, H, W, 0.7, torch.Generator().manual_seed(1))
    with torch.no_grad():
        latent, skip = SIMVP_SM.encode(net.encoder, x, mask)
        other = torch.where(mask.bool(), x, torch.rand_like(x) * 10 - 5)
        latent2, skip2 = SIMVP_SM.encode(net.encoder, other, mask)
        assert torch.equal(latent, latent2) and torch.equal(skip, skip2)
        assert not skip[(mask == 0).expand_as(skip)].any()
        dense_latent, dense_skip = net.encoder(x)
        sparse_latent, sparse_skip = SIMVP_SM.encode(net.encoder, x, torch.ones_like(mask))
        torch.testing.assert_close(sparse_latent, dense_latent, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sparse_skip, dense_skip, rtol=1e-4, atol=1e-5)
        assert net(x, mask).shape == x.shape
