"""Export (distill_core.export): TorchScript and ONNX files that rank like the original model, and the
ranking check that catches an export that does not (ties count as equal, real swaps do not)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill_core import ConfigError, ModelSpec, TrainConfig, export, train_model
from distill_core.models import Recommender

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def seq_by_hand(split, users: np.ndarray, length: int) -> torch.Tensor:
    """Each user's last ``length`` items as of the test ranking, newest last, left-padded (plain loops)."""
    ptr, items = split.context("test")
    out = np.full((len(users), length), split.n_items, dtype=np.int64)
    for row, u in enumerate(users):
        mine = list(items[ptr[u]:ptr[u + 1]])[-length:]
        if mine:
            out[row, length - len(mine):] = mine
    return torch.from_numpy(out)


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_torchscript_file_ranks_like_the_original(family, tiny_ds, tiny_split, tmp_path):
    tm = train_model(tiny_split, ModelSpec(family, 16, max_len=20), TrainConfig(epochs=1, batch_size=128, device="cpu"))
    exp = export.export_torchscript(tm.model, tiny_split, export.serving_meta(tm.model, tiny_ds), n_check=50)
    assert exp.check.ok and exp.check.users == 50 and exp.check.identical_top_k == 50

    path = tmp_path / exp.file_name
    path.write_bytes(exp.data)
    loaded = torch.jit.load(str(path))
    users = tiny_split.eval_users("test")
    # the reference: the original model scoring with its own stored test context (evaluate's path),
    # the exported one fed a history built here by hand; users in another batch size than the trace's
    model = tm.model.eval()
    model.set_context(*tiny_split.context("test"))
    try:
        ref = model.score_all(torch.as_tensor(users))
    finally:
        model.set_context(*tiny_split.context("train"))
    got = loaded(torch.as_tensor(users), seq_by_hand(tiny_split, users, max(model.max_len, 1))).detach()
    assert got.shape == (len(users), tiny_split.n_items)
    assert torch.equal(got.topk(10).indices, ref.topk(10).indices)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)

    extra = {export.META_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra[export.META_FILE])
    assert meta["family"] == family and meta["n_items"] == tiny_split.n_items == len(meta["item_ids"])
    assert meta["item_ids"] == tiny_ds.item_ids.tolist() and meta["pad_item"] == tiny_split.n_items


@pytest.mark.parametrize("family", ["two_tower", "sasrec"])
def test_the_check_catches_an_export_that_drops_the_newest_item(family, tiny_split, monkeypatch):
    tm = train_model(tiny_split, ModelSpec(family, 16, max_len=20), TrainConfig(epochs=1, batch_size=128, device="cpu"))

    def stale(self, users, seq):  # an off-by-one a server could ship: the newest item never reaches the model
        pad = torch.full_like(seq[:, :1], self.model.n_items)
        return self.model(users, torch.cat([pad, seq[:, :-1]], dim=1))
    monkeypatch.setattr(export._Serving, "forward", stale)
    exp = export.export_torchscript(tm.model, tiny_split, {}, n_check=60)
    assert not exp.check.ok and not exp.check.allclose
    assert exp.check.identical_top_k < exp.check.users and exp.check.max_abs_diff > 1e-3


def test_ranking_check_counts_tie_swaps_as_equal_and_real_swaps_as_different():
    class Fixed(Recommender):
        family = "fixed"

        def __init__(self, scores: torch.Tensor) -> None:
            super().__init__(ModelSpec("mf", 2), scores.shape[0], scores.shape[1])
            self.scores = torch.nn.Parameter(scores)

        def forward(self, users, seq=None):
            return self.scores[users]

    ref = torch.tensor([[0.9, 0.1, 0.5, 0.5, 0.0], [0.2, 0.8, 0.1, 0.3, 0.4]])
    users, seq = torch.arange(2), torch.zeros(2, 1, dtype=torch.long)
    tie = ref.clone()
    second = int(ref[0].topk(3).indices[2])  # items 2 and 3 tie; whichever topk put second-to-last ...
    tie[0, second] += 1e-6  # ... moves up by less than atol: the order flips, the ranking does not
    chk = export.check_ranking(Fixed(ref), lambda u, s: tie[u], users, seq, k=3)
    assert (chk.identical_top_k, chk.tie_equivalent_top_k, chk.allclose, chk.ok) == (1, 2, True, True)
    wrong = ref.clone()
    wrong[1, 0] = 0.5  # user 1: item 0 jumps from 4th to 2nd place
    chk = export.check_ranking(Fixed(ref), lambda u, s: wrong[u], users, seq, k=3)
    assert (chk.identical_top_k, chk.tie_equivalent_top_k, chk.ok) == (1, 1, False)
    assert chk.max_abs_diff == pytest.approx(0.3)


def test_onnx_export_is_refused_with_a_clear_message_without_onnx(tiny_split, monkeypatch):
    monkeypatch.setattr(export, "onnx_available", lambda: False)  # as on a machine without onnx
    tm = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, batch_size=128, device="cpu"))
    with pytest.raises(ConfigError, match="'onnx' and 'onnxscript' packages, which are not installed"):
        export.export_onnx(tm.model, tiny_split, {})


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_onnx_file_ranks_like_the_original(family, tiny_split):
    # onnx, onnxscript and onnxruntime come with the "test" extra (requirements.txt): this test runs, it never skips
    import onnxruntime as ort

    assert export.onnx_available()
    tm = train_model(tiny_split, ModelSpec(family, 16, max_len=20), TrainConfig(epochs=1, batch_size=128, device="cpu"))
    exp = export.export_onnx(tm.model, tiny_split, {}, n_check=50)
    assert exp.format == "onnx" and exp.check is not None and exp.check.ok and exp.check.identical_top_k == 50

    session = ort.InferenceSession(exp.data, providers=["CPUExecutionProvider"])
    users = tiny_split.eval_users("test")
    model = tm.model.eval()
    model.set_context(*tiny_split.context("test"))  # the reference: evaluate's path, its own stored context
    try:
        ref = model.score_all(torch.as_tensor(users))
    finally:
        model.set_context(*tiny_split.context("train"))
    feed = {"users": users.astype(np.int64), "seq": seq_by_hand(tiny_split, users, max(model.max_len, 1)).numpy()}
    names = {i.name for i in session.get_inputs()}
    got = torch.from_numpy(session.run(["scores"], {k: v for k, v in feed.items() if k in names})[0])
    assert got.shape == (len(users), tiny_split.n_items)  # every test user, not the trace's batch of 8
    assert torch.equal(got.topk(10).indices, ref.topk(10).indices)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
