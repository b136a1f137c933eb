"""Distillation methods in training (distill_core.distillers through train_model): one epoch of every method on the
full and the sampled path, DE's experts trained with the student, the default method untouched by the knobs,
the config's and the catalogue's refusals naming the field, and the CLI. The formulas: test_distillers.py."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from distill_core import cli, distillers
from distill_core.catalogue import resolve
from distill_core.config import METHODS, DistillConfig, ModelSpec, TrainConfig
from distill_core.distill import _loss_maker, train_model
from distill_core.errors import ConfigError
from distill_core.models import Recommender, build_model
from distill_core.soft_labels import SoftLabels
from distill_core.trainer import fit

FULL = TrainConfig(epochs=1, lr=1e-2, batch_size=128, device="cpu", loss="full")
SAMPLED = replace(FULL, loss="sampled", negatives=30)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("train", [FULL, SAMPLED], ids=["full", "sampled"])
def test_one_epoch_of_every_method_on_both_paths(tiny_split, method, train):
    teacher = build_model(ModelSpec("mf", 12), tiny_split)
    cfg = DistillConfig(0.5, 2.0, method=method, rrd_pool=20, rrd_l=30, de_experts=2,
                        soft_top_k=40 if train.loss == "sampled" else 0)  # sampled: the teacher's top-K table
    tm = train_model(tiny_split, ModelSpec("mf", 4), train, teacher=teacher, distill=cfg)
    row = tm.fit.history[0]
    assert tm.distill.method == method and tm.path.loss == train.loss and tm.path.top_k == (40 if train is SAMPLED
                                                                                            else tiny_split.n_items)
    assert np.isfinite([row["ce"], row["kl"], row["total"]]).all() and row["kl"] > 0
    assert row["total"] == pytest.approx(0.5 * row["ce"] + 0.5 * (4.0 if method == "logits" else 1.0) * row["kl"])


def test_de_from_a_sequential_teacher_per_step_and_its_experts_train(tiny_split):
    teacher = build_model(ModelSpec("sasrec", 12, layers=1, max_len=10), tiny_split)
    student = ModelSpec("sasrec", 6, layers=1, max_len=10)
    tm = train_model(tiny_split, student, FULL, teacher=teacher, distill=DistillConfig(0.5, method="de+rrd",
                                                                                       rrd_pool=20, rrd_l=30))
    assert tm.distill.soft_labels == "per-step" and tm.fit.history[0]["kl"] > 0
    model = build_model(ModelSpec("mf", 4), tiny_split)
    ex = model.examples(tiny_split)
    counts = np.bincount(tiny_split.train_items, minlength=tiny_split.n_items)
    path = resolve(FULL, DistillConfig(), tiny_split.n_users, tiny_split.n_items)
    loss_fn = _loss_maker(ex, path, counts, 0, torch.device("cpu"))(
        model, SoftLabels(teacher, tiny_split, "current", temperature=1.0), DistillConfig(0.5, method="de"))
    before = [p.detach().clone() for p in loss_fn.parameters]
    assert before  # the experts and gates of both sides
    fit(model, len(ex), loss_fn, None, replace(FULL, epochs=1, patience=0))
    assert all(not torch.equal(a, p) for a, p in zip(before, loss_fn.parameters))


def test_teacher_vectors_are_the_teachers_at_the_rows_the_student_trains_on(tiny_split):
    teacher = build_model(ModelSpec("sasrec", 12, layers=1, max_len=10), tiny_split)
    student = build_model(ModelSpec("sasrec", 6, layers=1, max_len=10), tiny_split)
    b = student.batch(student.examples(tiny_split), torch.arange(8))  # windows: one row per valid position
    seq, valid = b.windows
    per = SoftLabels(teacher, tiny_split, "per-step", temperature=1.0)
    with torch.no_grad():
        torch.testing.assert_close(per.teacher_vectors(b), teacher.encode(seq)[valid])
        cur = SoftLabels(teacher, tiny_split, "current", temperature=1.0)  # after each user's training sequence
        users = b.users.unsqueeze(1).expand_as(valid)[valid]
        torch.testing.assert_close(cur.teacher_vectors(b), teacher.user_vectors(users))
        mf = build_model(ModelSpec("mf", 4), tiny_split)
        pairs = mf.batch(mf.examples(tiny_split), torch.tensor([0, 5, 9]))
        torch.testing.assert_close(cur.teacher_vectors(pairs), teacher.user_vectors(pairs.users))
        items = torch.tensor([3, 0, 7])
        torch.testing.assert_close(cur.teacher_item_vectors(items), teacher.item_vectors(items)[0])


def test_the_default_method_is_todays_loss_whatever_the_other_knobs(tiny_split, monkeypatch):
    teacher = build_model(ModelSpec("mf", 12), tiny_split)
    runs = [train_model(tiny_split, ModelSpec("mf", 4), replace(FULL, epochs=2), teacher=teacher, distill=d).fit.history
            for d in (DistillConfig(0.5, 2.0), DistillConfig(0.5, 2.0, rank_k=3, rrd_l=7, de_experts=9,
                                                                 combo_weight=0.3))]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in runs[0]] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in runs[1]]
    monkeypatch.setattr(distillers, "build", lambda *a, **k: pytest.fail("Hinton KD went through the distillers"))
    train_model(tiny_split, ModelSpec("mf", 4), FULL, teacher=teacher, distill=DistillConfig(0.5))


@pytest.mark.parametrize("kw, field", [
    ({"method": "bogus"}, "method"), ({"method": "logits+de"}, "method"), ({"rank_k": 0}, "rank_k"),
    ({"method": "rrd", "rank_k": 20, "rrd_pool": 10}, "rrd_pool"), ({"rd_lambda": 0.0}, "rd_lambda"), ({"rd_mu": -1.0}, "rd_mu"),
    ({"rrd_l": 0}, "rrd_l"), ({"rrd_t": float("nan")}, "rrd_t"), ({"de_experts": 0}, "de_experts"),
    ({"de_experts": 65}, "de_experts"), ({"de_tau": 0.0}, "de_tau"), ({"combo_weight": -0.5}, "combo_weight"),
    ({"rank_k": True}, "rank_k"),
])
def test_bad_method_settings_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=f"^{field} "):
        DistillConfig(**kw)


def test_the_rrd_pool_bounds_rank_k_only_for_the_methods_that_draw_from_it():
    assert DistillConfig(method="rd", rank_k=200).rank_k == 200  # rd reads rank_k alone (pool 100)
    for method in ("rrd", "logits+rrd", "de+rrd"):
        with pytest.raises(ConfigError, match="^rrd_pool must be at least rank_k=200"):
            DistillConfig(method=method, rank_k=200)


def test_stored_config_of_the_default_method_is_the_one_stored_before_the_methods():
    d = DistillConfig().to_dict()
    assert "method" not in d and "rank_k" not in d and DistillConfig(**d) == DistillConfig()
    r = DistillConfig(method="rrd", rrd_l=7).to_dict()
    assert r["method"] == "rrd" and r["rrd_l"] == 7 and DistillConfig(**r) == DistillConfig(method="rrd", rrd_l=7)


class _Bare(Recommender):
    family = "bare"  # scores nothing: no user or item representations


def test_what_the_catalogue_or_the_teacher_cannot_serve_is_refused_before_training(tiny_split):
    n = tiny_split.n_items
    teacher = build_model(ModelSpec("mf", 8), tiny_split)
    for cfg, words in [
            (DistillConfig(method="rd", rank_k=n + 1, rrd_pool=n + 1), "rank_k must be at most the catalogue"),
            (DistillConfig(method="rrd", rrd_pool=n), "rrd_pool must be below the catalogue"),
            (DistillConfig(method="logits+rrd", rrd_pool=40, soft_top_k=30), "rrd_pool must be at most soft_top_k"),
            (DistillConfig(method="rd", rank_k=40, soft_top_k=30), "rank_k must be at most soft_top_k")]:
        with pytest.raises(ConfigError, match=words):
            train_model(tiny_split, ModelSpec("mf", 4), FULL, teacher=teacher, distill=cfg)
    with pytest.raises(ConfigError, match="needs the teacher's user and item representations"):
        distillers.check(DistillConfig(method="de+rrd"), _Bare(ModelSpec("mf", 2), 3, n), n, n)
    distillers.check(DistillConfig(method="de"), teacher, n, n)  # every family here has them


def test_cli_records_the_method_and_refuses_bad_ones_with_exit_2(tiny_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    argv = ["run", "--data", str(tiny_dir), "--teacher", "mf", "--teacher-dim", "8", "--student-dim", "2",
            "--epochs", "1", "--out", str(out)]
    knobs = ["--method", "logits+rrd", "--rrd-pool", "20", "--rrd-l", "30", "--combo-weight", "0.5"]
    assert cli.main(argv + knobs) == 0
    d = json.loads(out.read_text())["config"]["distill"]
    assert (d["method"], d["rrd_pool"], d["rrd_l"], d["combo_weight"]) == ("logits+rrd", 20, 30, 0.5)
    out.unlink()
    monkeypatch.setattr("distill_core.workflows.run_pipeline", lambda *a, **k: pytest.fail("it trained"))
    for bad, words in [(["--method", "bogus"], "error: method must be one of"),
                       (["--method", "rd", "--rank-k", "0"], "error: rank_k"),
                       (["--method", "rrd", "--rrd-pool", "500"], "error: rrd_pool must be below the catalogue")]:
        assert cli.main(argv + bad) == 2
        assert words in capsys.readouterr().err and not out.exists()
