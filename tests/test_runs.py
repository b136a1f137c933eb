"""Lookups of stored runs (distill_core.runs): pairs of teacher, distilled and plain student; labels."""
from __future__ import annotations

import torch

from distill_core import runs
from distill_core.store import RunStore


def _store_run(store, kind, config, parent=None, metrics=None, history=None):
    rid = store.create_run(kind, "fp", "tiny", config, parent=parent)
    store.finish_run(rid, "done", history=history or [], metrics=metrics or {"ndcg@10": 0.1},
                     info={"params": 10, "bytes": 1536, "train_seconds": 1.0, "best_epoch": 1},
                     state_dict={"w": torch.zeros(2)})
    return rid


def test_distillations_pair_each_student_with_its_teacher_and_plain_twin(tmp_path):
    store = RunStore(tmp_path)
    base = {"split": {"method": "loo"}, "model": {"family": "mf", "dim": 6, "layers": 2},
            "train": {"epochs": 2}, "distill": None}
    kd_cfg = base | {"distill": {"alpha": 0.5, "temperature": 2.0}}
    t = _store_run(store, "teacher", base | {"model": {"family": "mf", "dim": 64, "layers": 2}},
                   history=[{"val_ndcg@10": 0.1}, {"val_ndcg@10": 0.3}, {"val_ndcg@10": 0.2}])
    plain = _store_run(store, "student_plain", base)
    _store_run(store, "student_plain", base | {"model": {"family": "mf", "dim": 8, "layers": 2}})  # another size
    kd = _store_run(store, "student_kd", kd_cfg | {"teacher": t}, parent=t)
    orphan = _store_run(store, "student_kd", kd_cfg | {"teacher": t, "model": {"family": "mf", "dim": 3,
                                                                                 "layers": 2}}, parent=t)
    pairs = runs.distillations(store, "fp")
    assert [(p.teacher.id, p.student_kd.id, p.student_plain.id) for p in pairs] == [(t, kd, plain)]
    assert runs.plain_for(store, store.get(orphan)) is None
    assert runs.distillations(store, "fp", teacher="someone-else") == []
    assert runs.best_val_ndcg(store.get(t)) == 0.3


def test_labels(tmp_path):
    store = RunStore(tmp_path)
    rid = _store_run(store, "student_kd", {"model": {"family": "two_tower", "dim": 4, "layers": 1},
                                           "distill": {"alpha": 0.3, "temperature": 4.0}}, metrics={"ndcg@10": 0.12345})
    rec = store.get(rid)
    assert runs.model_label(rec) == "two_tower dim 4, 1 layers"
    assert runs.run_label(rec).startswith("two_tower dim 4, 1 layers, alpha 0.3, T 4 · test NDCG@10 0.1235 · ")
