"""Row updates of the id tables on the sampled path (issue 16, distill_core/rowadam.py): lazy Adam checked against
torch's own Adam and SparseAdam, the padding row, every family's first step equal to dense Adam's, the rule
that decides when they are used, and the guard against a lookup that bypasses them."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from distill_core import catalogue
from distill_core.config import DistillConfig, ModelSpec, RunConfig, TrainConfig
from distill_core.distill import train_model
from distill_core.losses import KDLossOutput
from distill_core.models import build_model
from distill_core.rowadam import RowAdam, RowGrad
from distill_core.trainer import TrainingError, fit


def _loss(e: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((e - target) ** 2).sum() + e.pow(3).sum()  # not a function of the row sums alone


def _twins(rows: int, dim: int, torch_opt: type, lr: float, sparse: bool = False):
    """A reference table with a torch optimizer and a copy of it on RowAdam."""
    ref = nn.Embedding(rows, dim, sparse=sparse)
    mine = nn.Embedding(rows, dim)
    mine.weight.data.copy_(ref.weight.data)
    acc = RowGrad(mine)
    return ref, torch_opt([ref.weight], lr=lr), mine, acc, RowAdam([acc], lr=lr)


def test_row_adam_is_adam_when_every_row_is_touched():
    torch.manual_seed(0)
    ref, opt_ref, mine, acc, opt = _twins(12, 5, torch.optim.Adam, 0.05)
    for step in range(6):
        idx = torch.cat([torch.randperm(12), torch.randint(0, 12, (7,))])  # every row, some twice
        target = torch.randn(len(idx), 5)
        opt_ref.zero_grad()
        _loss(ref.weight[idx], target).backward()
        opt_ref.step()
        _loss(acc.lookup(idx), target).backward()
        assert mine.weight.grad is None  # the gradient went to the row buffer, not to a dense .grad
        opt.step()
        torch.testing.assert_close(mine.weight.data, ref.weight.data, rtol=1e-6, atol=1e-6)


def test_row_adam_is_lazy_adam_on_partial_touches():
    """Against torch.optim.SparseAdam (COO gradients): the same rows move by the same steps (SparseAdam adds eps
    before the bias correction, a difference of order eps); rows not looked up keep weights and moments."""
    torch.manual_seed(1)
    ref, opt_ref, mine, acc, opt = _twins(30, 4, torch.optim.SparseAdam, 0.02, sparse=True)
    for step in range(8):
        idx = torch.randint(0, 10 + 2 * step, (9,))  # later rows join late, early ones drop out of some steps
        target = torch.randn(9, 4)
        before = mine.weight.data.clone()
        moments = opt.state[0]["exp_avg"].clone()
        opt_ref.zero_grad()
        _loss(ref(idx), target).backward()
        opt_ref.step()
        _loss(acc.lookup(idx), target).backward()
        opt.step()
        torch.testing.assert_close(mine.weight.data, ref.weight.data, rtol=1e-5, atol=1e-6)
        untouched = torch.ones(30, dtype=torch.bool)
        untouched[idx] = False
        assert torch.equal(mine.weight.data[untouched], before[untouched])
        assert torch.equal(opt.state[0]["exp_avg"][untouched], moments[untouched])
        assert not acc.touched.any() and not acc.grad.any()  # cleared for the next step


def test_padding_row_never_trains():
    emb = nn.Embedding(6, 3, padding_idx=5)
    with torch.no_grad():
        emb.weight[5].zero_()
    acc = RowGrad(emb)
    opt = RowAdam([acc], lr=0.1)
    for _ in range(3):
        acc.lookup(torch.tensor([[5, 1, 5], [2, 5, 5]])).sum().backward()  # gradient 1 on every row looked up
        opt.step()
    assert torch.equal(emb.weight.data[5], torch.zeros(3))
    assert opt.state[0]["step"] == 3 and emb.weight.data[1].abs().sum() > 0


@pytest.fixture
def rows_always(monkeypatch):
    """Row updates on the tiny catalogue too (the rule would keep its tables dense: a step looks up most of it)."""
    monkeypatch.setattr(catalogue, "ROW_UPDATE_SHARE", 0)


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_first_step_is_dense_adams_and_rows_are_used(tiny_split, family, rows_always, monkeypatch):
    """Adam's first step moves only rows with a gradient (zero moments elsewhere), so one step of row updates
    equals one step of dense Adam exactly; the row path must have been taken (RowAdam stepped, no dense .grad)."""
    import distill_core.trainer as tr

    stepped = []
    real = tr.RowAdam.step
    monkeypatch.setattr(tr.RowAdam, "step", lambda self: (stepped.append(len(self.accs)), real(self))[1])
    spec = ModelSpec(family, 8, layers=1, max_len=6)
    one = TrainConfig(epochs=1, lr=0.05, batch_size=100_000, device="cpu", loss="sampled", negatives=20, patience=0)
    dense = train_model(tiny_split, spec, replace(one, sparse_tables=False), validate=False)
    assert not stepped and not dense.path.sparse_tables
    rows = train_model(tiny_split, spec, one, validate=False)
    assert rows.path.sparse_tables and "row updates" in rows.path.describe()
    n_tables = {"mf": 2, "two_tower": 3, "sasrec": 1}[family]
    assert stepped == [n_tables]  # one step, every id table in it
    sd_dense, sd_rows = dense.model.state_dict(), rows.model.state_dict()
    for name, w in sd_dense.items():
        torch.testing.assert_close(sd_rows[name], w, rtol=1e-5, atol=1e-6, msg=name)
    assert not rows.model.row_grads()  # the returned model takes dense gradients again


def test_kd_student_on_rows_learns(tiny_split, rows_always):
    teacher = build_model(ModelSpec("mf", 16), tiny_split)
    cfg = TrainConfig(epochs=3, lr=2e-2, batch_size=64, device="cpu", loss="sampled", negatives=20)
    tm = train_model(tiny_split, ModelSpec("mf", 4), cfg, role="student", teacher=teacher,
                     distill=DistillConfig(alpha=0.5, soft_top_k=10, selection="direct"))
    assert tm.path.sparse_tables and tm.path.top_k == 10
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in tm.fit.history)
    assert tm.fit.history[-1]["total"] < tm.fit.history[0]["total"]


def test_a_dense_lookup_of_a_row_table_is_refused(tiny_split):
    model = build_model(ModelSpec("mf", 4), tiny_split)
    model.set_sparse(True)
    users = torch.arange(8)

    def full_softmax(idx: torch.Tensor) -> KDLossOutput:  # item_vectors(None) with autograd: a dense .grad
        loss = torch.nn.functional.cross_entropy(model(users[idx % 8]), idx % 8)
        return KDLossOutput(ce=loss, kl=loss.new_zeros(()), total=loss)

    with pytest.raises(TrainingError, match="dense gradient"):
        fit(model, 8, full_softmax, None, TrainConfig(epochs=1, batch_size=8, device="cpu"))


def test_when_rows_are_used():
    t = TrainConfig(batch_size=1024, negatives=1024)
    rule = catalogue.sparse_tables
    assert catalogue.lookups_per_step(t) == 3072
    assert rule(t, "sampled", 3072 * 8) and not rule(t, "sampled", 3072 * 8 - 1)
    assert not rule(t, "full", 10**7)
    assert not rule(replace(t, weight_decay=1e-4), "sampled", 10**7)
    assert not rule(replace(t, sparse_tables=False), "sampled", 10**7)
    # the distilled and the plain student of a catalogue train with the same optimiser (the soft labels' K is
    # not in the rule), the teacher too
    run = RunConfig()
    paths = [catalogue.resolve(t_, d, 40_000, 53_438) for t_, d in ((run.teacher_train, None),
                                                                   (run.student_train, run.distill),
                                                                   (run.student_train, None))]
    assert [p.sparse_tables for p in paths] == [True, True, True] and paths[1].top_k == 128
    with pytest.raises(Exception, match="sparse_tables"):
        TrainConfig(sparse_tables="yes")
