"""bench.metrics.state.MetricState: per-frame accumulation, merging and its all-reduce across processes."""

from __future__ import annotations

import json

import pytest
import torch

from bench.errors import BenchError
from bench.metrics.state import MetricState
from bench.metrics.functional import (METRIC_KEYS, mae_per_frame, mse_per_frame, per_frame_metrics, psnr_per_frame,
                                      ssim_legacy_per_frame, ssim_per_frame)

from metric_reference import TOL_EXACT, assert_same_metrics, noisy_batch, sk_ssim


# --------------------------------------------------------------------------------------------
# MetricState
# --------------------------------------------------------------------------------------------


def test_state_compute_is_mean_of_per_frame_values():
    pred, true = noisy_batch(0, c=2)
    st = MetricState()
    st.update(pred, true)
    res = st.compute()
    assert st.n_frames == 12
    assert res["mse"] == pytest.approx(mse_per_frame(pred, true).mean().item(), rel=1e-12)
    assert res["mae"] == pytest.approx(mae_per_frame(pred, true).mean().item(), rel=1e-12)
    assert res["mse_pixel"] == pytest.approx(res["mse"] / (2 * 12 * 12), rel=1e-12)
    assert res["mae_pixel"] == pytest.approx(res["mae"] / (2 * 12 * 12), rel=1e-12)
    assert res["psnr"] == pytest.approx(psnr_per_frame(pred, true).mean().item(), rel=1e-12)
    assert res["ssim"] == pytest.approx(sk_ssim(pred, true).mean(), abs=TOL_EXACT)
    assert res["ssim_legacy"] == pytest.approx(sk_ssim(pred, true, 2.0).mean(), abs=TOL_EXACT)
    assert all(isinstance(v, float) for v in res.values())


def test_state_two_batches_equal_one_batch_and_merge():
    p1, t1 = noisy_batch(1, b=2)
    p2, t2 = noisy_batch(2, b=5)
    whole = MetricState()
    whole.update(torch.cat([p1, p2]), torch.cat([t1, t2]))
    split = MetricState()
    split.update(p1, t1)
    split.update(p2, t2)
    assert_same_metrics(whole.compute(), split.compute())
    a, b = MetricState(), MetricState()
    a.update(p1, t1)
    b.update(p2, t2)
    merged = a.merge(b)
    assert merged is a
    assert_same_metrics(whole.compute(), merged.compute())
    b_only = MetricState()
    b_only.update(p2, t2)
    empty = MetricState()
    assert empty.merge(b).compute() == b.compute()
    assert b.merge(MetricState()).compute() == b_only.compute()


def test_state_is_frame_weighted_not_batch_weighted():
    p1, t1 = noisy_batch(3, b=1)
    p2, t2 = noisy_batch(4, b=3)
    st = MetricState()
    st.update(p1, t1)
    st.update(p2, t2)
    m1 = mse_per_frame(p1, t1).mean().item()
    m2 = mse_per_frame(p2, t2).mean().item()
    assert st.compute()["mse"] == pytest.approx((m1 * 3 + m2 * 9) / 12, rel=1e-12)
    assert st.compute()["mse"] != pytest.approx((m1 + m2) / 2, rel=1e-6)


def test_state_dict_roundtrip_reset_and_empty():
    pred, true = noisy_batch(5)
    st = MetricState()
    with pytest.raises(BenchError, match="no frames"):
        st.compute()
    st.update(pred, true)
    sd = st.state_dict()
    assert sd["keys"] == list(METRIC_KEYS) and sd["counts"].tolist() == [4.0, 4.0, 4.0]
    other = MetricState()
    other.load_state_dict(json.loads(json.dumps({**sd, "sums": sd["sums"].tolist(), "counts": sd["counts"].tolist()})))
    assert_same_metrics(st.compute(), other.compute())
    with pytest.raises(BenchError, match="keys"):
        other.load_state_dict({**sd, "keys": ["mse"]})
    st.reset()
    with pytest.raises(BenchError):
        st.compute()


def test_update_returns_per_frame_and_matches_functions():
    pred, true = noisy_batch(6, c=3)
    per = MetricState().update(pred, true)
    ref = per_frame_metrics(pred, true)
    assert list(per) == list(METRIC_KEYS)
    for k in ref:
        assert per[k].shape == (4, 3)
        assert torch.equal(per[k], ref[k])
    # predictions inside [0, 1]: the clipped variants equal the raw ones
    assert torch.equal(per["mse_clipped"], per["mse"]) and torch.equal(per["mae_clipped"], per["mae"])
    assert torch.allclose(per["ssim"], ssim_per_frame(pred, true), atol=1e-14, rtol=0)
    assert torch.allclose(per["ssim_legacy"], ssim_legacy_per_frame(pred, true), atol=1e-14, rtol=0)


def test_all_reduce_without_distributed_is_noop():
    pred, true = noisy_batch(7)
    st = MetricState()
    st.update(pred, true)
    before = st.compute()
    assert st.all_reduce() is st
    assert st.compute() == before


@pytest.fixture
def gloo_group(tmp_path):
    """A real single-process gloo group (the collective path without spawning processes)."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_states_of_all_processes(gloo_group, monkeypatch):
    """Two ranks with uneven shares (1 and 2 sequences) end with the state of all 3 sequences.

    The group is real (world size 1); the second rank is simulated by wrapping the collective so
    that it also adds the peer's state tensor, exactly what a SUM all-reduce over 2 ranks does.
    """
    pred, true = noisy_batch(8, b=3)
    whole = MetricState()
    whole.update(pred, true)
    rank0, rank1 = MetricState(), MetricState()
    rank0.update(pred[:1], true[:1])
    rank1.update(pred[1:], true[1:])
    peer = rank1.state_dict()
    peer_tensor = torch.cat([peer["sums"], peer["counts"][None]])

    real_all_reduce = gloo_group.all_reduce
    calls = []

    def two_rank_all_reduce(tensor, op=gloo_group.ReduceOp.SUM, group=None, async_op=False):
        calls.append((tensor.dtype, tuple(tensor.shape), op))
        real_all_reduce(tensor, op=op, group=group)  # the real collective (world size 1)
        tensor.add_(peer_tensor.to(tensor.device))

    monkeypatch.setattr(gloo_group, "all_reduce", two_rank_all_reduce)
    assert rank0.all_reduce() is rank0
    assert calls == [(torch.float64, (len(METRIC_KEYS) + 1, 3), gloo_group.ReduceOp.SUM)]  # one collective
    assert rank0.n_frames == 9
    assert_same_metrics(rank0.compute(), whole.compute())
    # a rank that scored nothing still takes part (with zeros) and ends with the peer's state
    idle = MetricState(horizon=3)
    idle.all_reduce()
    assert_same_metrics(idle.compute(), rank1.compute())


def test_all_reduce_real_group_world_size_one(gloo_group):
    pred, true = noisy_batch(10)
    st = MetricState()
    st.update(pred, true)
    before = st.compute()
    st.all_reduce()
    assert st.compute() == before
