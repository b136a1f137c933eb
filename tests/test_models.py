"""The model contract (distill_core.models): every family scores all items, counts its parameters as its
formula says, and trains for one epoch; a two-tower model's context sees only the past."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core.config import ModelSpec, TrainConfig
from distill_core.distill import train_model
from distill_core.models import build_model


def _params_by_hand(family: str, d: int, n_users: int, n_items: int) -> int:
    """Parameters of ``ModelSpec(family, d)`` (2 layers, 2 heads, max_len 50) counted from the model's formula."""
    if family == "mf":  # user and item embeddings, item bias
        return n_users * d + n_items * d + n_items
    if family == "two_tower":  # user, history (+ padding row) and item embeddings, item bias, MLP 5d -> 2d -> 2d -> d
        return (n_users * d + (n_items + 1) * d + n_items * d + n_items
                + (5 * d * 2 * d + 2 * d) + (2 * d * 2 * d + 2 * d) + (2 * d * d + d))
    # sasrec: item (+ padding row) and 50 position embeddings, item bias, per block the q/k/v and output
    # projections, the d -> 2d -> d feed-forward and two layer norms; one final layer norm
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * 2 * d + 2 * d) + (2 * d * d + d) + 2 * 2 * d
    return (n_items + 1) * d + 50 * d + n_items + 2 * block + 2 * d


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_contract_and_one_epoch_smoke(tiny_split, family):
    m = build_model(ModelSpec(family, 8), tiny_split)
    out = m(torch.arange(5))
    assert out.shape == (5, tiny_split.n_items)
    assert m.n_params() == _params_by_hand(family, 8, tiny_split.n_users, tiny_split.n_items)
    assert m.n_bytes() >= 4 * m.n_params()
    tm = train_model(tiny_split, ModelSpec(family, 8), TrainConfig(epochs=1, device="cpu"))
    assert len(tm.fit.history) == 1 and np.isfinite(tm.fit.history[0]["total"])
    assert 0 <= tm.test["ndcg@10"] <= 1


def test_two_tower_context_sees_only_the_past(tiny_split):
    m = build_model(ModelSpec("two_tower", 8), tiny_split)
    u = int(tiny_split.eval_users("test")[0])
    vp, vi = tiny_split.held_out("valid")
    tp, ti = tiny_split.held_out("test")
    assert vi[vp[u]] not in m.history[u].tolist() or vi[vp[u]] in tiny_split.train_items[tiny_split.train_users == u]
    m.set_context(*tiny_split.context("test"))
    assert m.history[u, -1].item() == vi[vp[u]]  # the validation item is the newest context item
    assert ti[tp[u]] not in m.history[u].tolist()  # the test item never is


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_item_vectors_of_given_items_match_the_tables_with_their_gradients(tiny_split, family):
    """``item_vectors(items)`` (``base.gather``, index_select) gives the rows and gradients of a plain
    lookup, repeated items included, for 1-d and 2-d index tensors (the top-K soft labels gather (rows, K))."""
    m = build_model(ModelSpec(family, 8), tiny_split)
    items = torch.tensor([[3, 0, 3], [7, 7, 1]])
    w = torch.randn(2, 3, 8)
    e, b = m.item_vectors(items)
    assert e.shape == (2, 3, 8) and b.shape == (2, 3)
    (e * w).sum().add(b.sum() * 2).backward()
    ref_w = torch.zeros_like(m.item.weight)
    ref_w.index_put_((items.reshape(-1),), w.reshape(-1, 8), accumulate=True)
    ref_b = torch.bincount(items.reshape(-1), minlength=m.item_bias.shape[0]).float() * 2
    torch.testing.assert_close(e.detach(), m.item.weight.detach()[items])
    torch.testing.assert_close(m.item.weight.grad, ref_w)
    torch.testing.assert_close(m.item_bias.grad, ref_b)
    e1, _ = m.item_vectors(items[0])
    torch.testing.assert_close(e1.detach(), m.item.weight.detach()[items[0]])


@pytest.mark.parametrize("layers", [1, 2])
def test_sasrec_newest_position_alone_equals_the_last_row_of_every_position(tiny_split, layers):
    """``encode_last`` (ranking, soft labels) runs the last block for the newest query only: the same vector as
    ``encode(seq)[:, -1]``, with padding, a one-item history and an empty one."""
    torch.manual_seed(0)
    m = build_model(ModelSpec("sasrec", 16, layers=layers, max_len=8), tiny_split).eval()
    n = tiny_split.n_items
    seq = torch.randint(0, n, (6, 8))
    seq[1, :3] = n  # left padding
    seq[2, :-1] = n  # one item
    seq[3, :] = n  # nothing at all
    with torch.no_grad():
        want = m.encode(seq)[:, -1]
        torch.testing.assert_close(m.encode_last(seq), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.user_vectors(torch.arange(6), seq), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.encode_last(seq[:, -3:]), m.encode(seq[:, -3:])[:, -1], rtol=1e-5, atol=1e-6)
