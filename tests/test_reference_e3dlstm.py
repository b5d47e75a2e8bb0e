"""Golden tests: E3D-LSTM against OpenSTL's E3DLSTM_Model, with and without its departures.

The fixture (``tools/reference_mim_e3dlstm.py``) ran OpenSTL (c74deb5) from one set of weights
twice: patched to the authors' semantics (the new global memory passed on, channel-vector
attention tokens, zero temporal padding, the ½MSE + L1 loss), which our default must reproduce,
and as it is, which the ``openstl`` variant must reproduce: the test-time rollout, a training
step's loss with the reference's scheduled-sampling mask and three Adam steps, in float64.
"""

from __future__ import annotations

import pytest
import torch
from reference_helpers import dataset, load_fixture
from reference_mim_e3dlstm import E3D_RULES, adam_losses, assert_close, assert_losses, build, load_renamed

from bench.baselines.e3dlstm import dead_memory_params, zero_padding_extra_flops
from bench.blocks.recurrent import scheduled_sampling_step
from bench.cost.measure import count_flops
from bench.spec.registry import get_method

#: fixture entry -> our variant
FORMS = {"authors": None, "openstl": "openstl"}


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("e3dlstm")


def golden(fx, form: str, layer_norm: bool = False):
    cfg = fx["ln_config"] if layer_norm else fx["config"]
    state = fx["layer_norm"]["state_dict"] if layer_norm else fx["state_dict"]
    model, hp, data = build("e3dlstm", cfg, variant=FORMS[form], layer_norm=layer_norm)
    assert load_renamed(model, state, E3D_RULES) == []
    return model, hp, data


@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
@pytest.mark.parametrize("form", list(FORMS))
def test_e3dlstm_test_time_rollout_matches_reference(fixture, form, layer_norm):
    model, hp, _ = golden(fixture, form, layer_norm)
    if layer_norm:
        x, want = fixture["layer_norm"]["x"], fixture["layer_norm"]["test_output"][form]
    else:
        x, want = fixture["x"], fixture[form]["test_output"]
    with torch.no_grad():
        assert_close(get_method("e3dlstm").predict(model, x.double(), hp), want)


@pytest.mark.parametrize("form", list(FORMS))
def test_e3dlstm_training_step_and_adam_match_reference(fixture, form):
    model, hp, _ = golden(fixture, form)
    spec = get_method("e3dlstm")
    entry = fixture[form]

    def step_loss(x, y, mask):
        pred, target = scheduled_sampling_step(model, x, y, mask)
        return spec.loss(pred, target, hp)

    mask = entry["train_mask"]
    assert 0 < mask.sum() < mask.numel()  # the mask mixes true frames and predictions
    loss = step_loss(fixture["x"].double(), fixture["y"].double(), mask)
    assert_losses([loss.item()], [entry["train_loss"]])
    assert_losses(adam_losses(model, entry["adam"], step_loss), entry["adam"]["losses"])


def test_e3dlstm_cost_against_reference(fixture):
    """FLOPs: the openstl variant = OpenSTL's fvcore count, the default adds exactly the zero-padded
    slices; params = the reference's at Moving MNIST and TaxiBJ; the never-learning W_m weights of
    OpenSTL's frozen memory are what ``dead_memory_params`` says."""
    cfg = fixture["flops"]["config"]
    spec = get_method("e3dlstm")
    flops = {}
    for form, variant in FORMS.items():
        model, hp, data = build("e3dlstm", cfg, variant=variant)
        flops[form] = count_flops(model.float(), spec.flops_inputs(data))[0]
    assert flops["openstl"] == fixture["flops"]["openstl"]
    assert flops["authors"] - flops["openstl"] == zero_padding_extra_flops(data, hp) > 0
    census = fixture["mmnist"]
    assert (census["total"], census["no_grad"], census["zero_grad"]) == (51_347_456, 0, 13_107_200)
    assert all(".conv_gm." in name for name in census["zero_grad_names"])
    with torch.device("meta"):
        model, hp, _ = build("e3dlstm", census["config"])
        assert sum(p.numel() for p in model.parameters()) == census["total"]
        assert dead_memory_params(hp) == census["zero_grad"]
        taxibj = fixture["taxibj"]["config"]
        data = dataset(taxibj["pre"], taxibj["aft"], taxibj["C"], taxibj["H"], taxibj["W"], "taxibj")
        built = spec.create_model(data, spec.resolve_hparams("taxibj"))
        assert sum(p.numel() for p in built.parameters()) == fixture["taxibj"]["total"] == 50_987_008


def test_audit_explains_the_gaps_to_the_published_cost():
    """``bench audit``'s explanation lines come from the method modules (figures as measured at full size)."""
    from bench.cost.audit import explain_difference, published_cost
    from bench.spec.registry import get_dataset, parse_method_key

    mmnist = get_dataset("mmnist")
    authors, openstl = parse_method_key("e3dlstm"), parse_method_key("e3dlstm:openstl")
    hp = authors.resolve("mmnist")
    extra = zero_padding_extra_flops(mmnist, hp)
    assert extra == 123_273_216_000  # 19 steps x the second slices of every (2,5,5) convolution
    lines = explain_difference(authors, mmnist, hp, {"params": 51_347_456, "flops": 298_871_967_040 + extra},
                               published_cost(authors, mmnist))
    assert "+123.27G" in lines[0] and "298.87G" in lines[0] and "51.0M" in lines[1]
    figures = {"params": 51_347_456, "flops": 298_871_967_040}
    lines = explain_difference(openstl, mmnist, openstl.resolve("mmnist"), figures,
                               published_cost(openstl, mmnist))
    assert "time_padding" not in " ".join(lines) and "13,107,200" in lines[-1]
    mim = parse_method_key("mim")
    lines = explain_difference(mim, mmnist, mim.resolve("mmnist"), {"params": 37_945_344, "flops": 179_180_666_880},
                               published_cost(mim, mmnist))
    assert "38,043,648" in lines[0] and "98,304" in lines[0]
