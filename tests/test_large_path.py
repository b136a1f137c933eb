"""The large-catalogue path through train_model (issue 16): every family trains on the sampled softmax, the
student on top-K soft labels (current and per-step), the path is recorded, bad settings and jobs that cannot
fit are refused before anything trains."""
from __future__ import annotations

import pytest
import torch

from distill_core import catalogue
from distill_core.config import DistillConfig, ModelSpec, RunConfig, TrainConfig
from distill_core.distill import evaluate, train_model
from distill_core.errors import ConfigError
from distill_core.models import build_model
from distill_core.sampled import top_k
from distill_core.soft_labels import SoftLabels

FAST = TrainConfig(epochs=3, lr=1e-2, batch_size=128, device="cpu", loss="sampled", negatives=30)


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_every_family_learns_on_the_sampled_softmax(tiny_split, family):
    spec = ModelSpec(family, 16, layers=1, max_len=10)
    before = evaluate(build_model(spec, tiny_split), tiny_split, "valid", ks=(10,))["hr@10"]
    tm = train_model(tiny_split, spec, FAST)
    assert tm.path.loss == "sampled" and tm.path.negatives == 30 and tm.path.top_k == 0
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in tm.fit.history)
    assert tm.fit.best_metric > before  # it learnt something (HR@10 of an untrained model is chance)
    assert tm.summary()["path"]["loss"] == "sampled" and tm.fit.stop_reason in ("epoch cap", "patience")


def test_kd_on_top_k_labels_current_and_per_step(tiny_split, monkeypatch):
    import distill_core.distill as dm

    teacher = build_model(ModelSpec("sasrec", 16, layers=1, max_len=10), tiny_split)
    real = dm.large_kd_loss
    for student, mode in ((ModelSpec("mf", 8), "current"), (ModelSpec("sasrec", 8, layers=1, max_len=10), "per-step")):
        seen = []

        def spy(b, labels, *args):
            seen.append((b, labels))
            return real(b, labels, *args)

        monkeypatch.setattr(dm, "large_kd_loss", spy)
        tm = train_model(tiny_split, student, replace_epochs(FAST, 1), teacher=teacher,
                         distill=DistillConfig(0.5, 2.0, soft_top_k=6, selection="direct"))
        assert tm.distill.soft_labels == mode and tm.path.top_k == 6 and seen
        b, labels = seen[0]
        assert labels.items.shape == (len(b.targets), 6)
        with torch.no_grad():  # the labels at each position are the teacher's top-6 there, at T = 2
            t = (teacher.eval().forward_all(b.windows[0])[b.windows[1]] if mode == "per-step"
                 else teacher.score_all(b.users))
        ref = top_k(t, 6, 2.0)
        assert torch.equal(labels.items, ref.items)
        torch.testing.assert_close(labels.log_rest, ref.log_rest, atol=1e-5, rtol=1e-5)


def replace_epochs(cfg: TrainConfig, epochs: int) -> TrainConfig:
    from dataclasses import replace
    return replace(cfg, epochs=epochs)


def test_auto_path_follows_the_catalogue(tiny_split, monkeypatch):
    assert catalogue.resolve(TrainConfig(), DistillConfig(), 100, catalogue.FULL_MAX_ITEMS).loss == "full"
    big = catalogue.resolve(TrainConfig(), DistillConfig(), 100, catalogue.FULL_MAX_ITEMS + 1)
    assert big.loss == "sampled" and big.top_k == catalogue.DEFAULT_TOP_K
    # the whole distribution only where the users x items table fits the cache
    assert catalogue.resolve(TrainConfig(), DistillConfig(), 10, 1000).top_k == 1000
    assert catalogue.resolve(TrainConfig(), DistillConfig(), 10**6, 1000).top_k == catalogue.DEFAULT_TOP_K
    assert catalogue.resolve(TrainConfig(), None, 10, 1000).top_k == 0


def test_bad_settings_are_refused_naming_the_field(tiny_split):
    with pytest.raises(ConfigError, match="negatives must be below the catalogue"):
        train_model(tiny_split, ModelSpec("mf", 4),
                    TrainConfig(epochs=1, loss="sampled", negatives=tiny_split.n_items, device="cpu"))
    teacher = build_model(ModelSpec("mf", 4), tiny_split)
    with pytest.raises(ConfigError, match="soft_top_k must be at most the catalogue"):
        train_model(tiny_split, ModelSpec("mf", 4), replace_epochs(FAST, 1), teacher=teacher,
                    distill=DistillConfig(soft_top_k=tiny_split.n_items + 1))
    for field, kw in (("negatives", {"negatives": 0}), ("negative_beta", {"negative_beta": -1.0}),
                      ("loss", {"loss": "softmax"}), ("time_budget_s", {"time_budget_s": -1.0})):
        with pytest.raises(ConfigError, match=field):
            TrainConfig(**kw)
    with pytest.raises(ConfigError, match="soft_top_k"):
        DistillConfig(soft_top_k=-1)


def test_a_job_that_cannot_fit_is_refused_before_it_starts(tiny_split, monkeypatch):
    events = []

    class Spy:
        def on_event(self, name, payload):
            events.append(name)

    monkeypatch.setattr(catalogue, "available_bytes", lambda: 1000)
    with pytest.raises(catalogue.MemoryBudgetError, match=r"needs about .* GiB but .* GiB are free"):
        train_model(tiny_split, ModelSpec("mf", 4), replace_epochs(FAST, 1), callbacks=[Spy()])
    assert events == []  # nothing started


def test_memory_estimate_grows_with_the_path(tiny_split):
    spec, train = ModelSpec("mf", 8), TrainConfig()
    full = catalogue.estimate_bytes(spec, train, catalogue.TrainPath("full", 0, 0.5, tiny_split.n_items), tiny_split)
    topk = catalogue.estimate_bytes(spec, train, catalogue.TrainPath("sampled", 64, 0.5, 5), tiny_split)
    assert full["soft labels"] == tiny_split.n_users * tiny_split.n_items * 4
    assert topk["soft labels"] == tiny_split.n_users * (5 * 8 + 8)
    assert topk["one batch"] < full["one batch"]


def test_time_budget_stops_after_the_epoch_that_crosses_it(tiny_split):
    tm = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=50, patience=0, time_budget_s=1e-6,
                                                                 device="cpu"))
    assert len(tm.fit.history) == 1 and tm.fit.stop_reason == "time budget"
    tm = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=2, patience=0, device="cpu"))
    assert tm.fit.stop_reason == "epoch cap"


def test_soft_labels_refuse_top_k_without_a_temperature(tiny_split):
    with pytest.raises(ValueError, match="temperature"):
        SoftLabels(build_model(ModelSpec("mf", 4), tiny_split), tiny_split, top_k=3)


def test_cli_sweep_takes_the_large_catalogue_flags_into_every_cell_and_refuses_bad_ones(tiny_dir, tmp_path, capsys):
    import json

    from distill_core import RunStore, cli

    out = tmp_path / "sweep.json"
    args = ["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "2", "--student-dim", "4",
            "--epochs", "1", "--patience", "0", "--teacher", "mf", "--teacher-dim", "8", "--teacher-epochs", "1",
            "--out", str(out)]
    assert cli.main(args + ["--loss", "sampled", "--negatives", "50", "--negative-beta", "0", "--soft-top-k", "20"]) == 0
    assert "loss: sampled softmax, 50 negatives, beta 0; soft labels: top-20" in capsys.readouterr().err
    report = json.loads(out.read_text())
    store = RunStore()
    for c in report["cells"] + report["plain_cells"]:
        rec = store.get(c["run"])
        assert (rec.config["train"]["loss"], rec.config["train"]["negatives"]) == ("sampled", 50)
        assert rec.info["path"]["loss"] == "sampled" and rec.info["path"]["negatives"] == 50
    kd = store.get(report["cells"][0]["run"])
    assert kd.config["distill"]["soft_top_k"] == 20 and kd.info["path"]["top_k"] == 20
    teacher = store.get(report["teacher"]["run"])
    assert teacher.config["train"]["loss"] == "sampled"  # the teacher the sweep trained took the same path
    # the students' default learning rate follows the path: the distilled cell and the plain ladder's first cell
    assert kd.config["train"]["lr"] == catalogue.SAMPLED_STUDENT_LR
    assert store.get(report["plain_cells"][0]["run"]).config["train"]["lr"] == catalogue.SAMPLED_STUDENT_LR
    assert teacher.config["train"]["lr"] == RunConfig().teacher_train.lr  # the teacher keeps its own default
    for bad, flag in [(["--loss", "sampled", "--negatives", "500"], "--negatives must be below the catalogue"),
                      (["--negatives", "0"], "--negatives must be at least 1"),
                      (["--soft-top-k", "0"], "--soft-top-k must be at least 1"),
                      (["--negative-beta", "-1"], "--negative-beta must be >= 0")]:
        assert cli.main(args + bad) == 2, bad
        assert flag in capsys.readouterr().err


def test_students_default_learning_rate_follows_the_path(tiny_dir, tmp_path, capsys):
    import json

    from distill_core import cli

    assert catalogue.student_lr("auto", catalogue.FULL_MAX_ITEMS) == TrainConfig().lr
    assert catalogue.student_lr("auto", catalogue.FULL_MAX_ITEMS + 1) == catalogue.SAMPLED_STUDENT_LR
    assert catalogue.student_lr("full", 10**6) == TrainConfig().lr
    assert catalogue.student_lr("sampled", 100) == catalogue.SAMPLED_STUDENT_LR
    out = tmp_path / "r.json"
    argv = ["run", "--data", str(tiny_dir), "--teacher", "mf", "--teacher-dim", "8", "--student-dim", "2",
            "--epochs", "1", "--out", str(out)]
    lrs = {}
    for extra in ([], ["--loss", "sampled", "--negatives", "50"], ["--loss", "sampled", "--negatives", "50",
                                                                    "--lr", "0.003"]):
        assert cli.main(argv + extra) == 0
        cfg = json.loads(out.read_text())["config"]
        lrs[len(extra)] = (cfg["teacher_train"]["lr"], cfg["student_train"]["lr"])
        err = capsys.readouterr().err
        assert ("students' learning rate" in err) == ("--lr" not in extra)
    assert lrs == {0: (1e-3, TrainConfig().lr), 4: (1e-3, catalogue.SAMPLED_STUDENT_LR), 6: (0.003, 0.003)}


def test_the_soft_labels_are_named_the_whole_distribution_only_where_k_is_the_catalogue(tiny_split, tiny_dir,
                                                                                         tmp_path, capsys):
    from distill_core import cli

    n = tiny_split.n_items
    assert catalogue.labels_text(n, n) == f"the teacher's whole distribution ({n:,} items)"
    assert catalogue.labels_text(n - 1, n) == f"top-{n - 1}"
    assert catalogue.labels_text(50, 0) == "top-50"  # a stored path without its catalogue keeps the old words

    class Events:
        def __init__(self) -> None:
            self.what: list[str] = []

        def on_event(self, name, payload):
            if name == "preparing":
                self.what.append(payload["what"])

    teacher = build_model(ModelSpec("mf", 8), tiny_split)
    for k, words in ((0, f"whole distribution ({n:,} items)"), (7, "(top-7)")):
        ev = Events()
        train_model(tiny_split, ModelSpec("mf", 4), replace_epochs(FAST, 1), teacher=teacher, callbacks=[ev],
                    distill=DistillConfig(0.5, 2.0, soft_top_k=k, selection="direct"))
        assert ev.what and words in ev.what[0], ev.what
    argv = ["run", "--data", str(tiny_dir), "--teacher", "mf", "--teacher-dim", "8", "--student-dim", "2",
            "--epochs", "1", "--out", str(tmp_path / "r.json")]
    assert cli.main(argv) == 0
    assert f"soft labels: the teacher's whole distribution ({n:,} items)" in capsys.readouterr().err
