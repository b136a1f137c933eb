"""The Compare page's size ladder trains by the chosen distillation method (as the Distill page does): its knobs
and loss are shown, T is disabled for a method that does not read it, a knob the config, the catalogue or the
teacher cannot serve is refused before anything starts (naming the field, Train ladder disabled), and the
ladder's students are stored with the method and its knobs.

AppTest does not drive ``st.fragment(run_every=...)``: the live section is polled by calling ``run()`` again
(_pages.run_until); each test stops what it started.
"""
from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import ModelSpec
from distill_core.config import DE_EXPERTS_MAX, KNOB_INT_MAX, METHOD_KNOBS, METHODS
from distill_core.models import Recommender
from ui import registry

from _pages import choose as _choose, open_script
from _pages import caption, run_until

pytestmark = pytest.mark.usefixtures("stop_jobs")  # conftest.py
KNOB_KEYS = {f"ladder_{k}" for k in METHOD_KNOBS}


def open_compare() -> AppTest:
    return open_script("app_pages/compare.py")


def choose(at: AppTest, method: str) -> AppTest:
    return _choose(at, "ladder_method", method)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def knob_keys(at: AppTest) -> set[str]:
    return {w.key for w in at.number_input if w.key in KNOB_KEYS}


def nothing_started(teacher: str) -> bool:
    return not registry.runner().snapshots() and [r.id for r in registry.store().runs()] == [teacher]


class Opaque(Recommender):
    """A teacher that scores items but exposes no user or item representations (DE cannot map onto it)."""

    family = "opaque"

    def forward(self, users, seq=None):
        return torch.zeros(len(users), self.n_items)


def test_the_ladder_offers_the_methods_with_their_knobs_loss_and_t(sample_teacher):
    at = open_compare()
    picker = at.selectbox(key="ladder_method")
    assert picker.value == "logits" and picker.options == list(METHODS)
    assert "Kang et al., CIKM 2020" in picker.help and "Tang & Wang, KDD 2018" in picker.help  # METHOD_HELP
    assert knob_keys(at) == set()  # Hinton KD has no knobs of its own
    assert "(1 − alpha) · T² · KL(teacher_T ‖ student_T)" in caption(at, "The student minimises")
    assert not at.slider(key="ladder_T").disabled

    choose(at, "rrd")
    assert knob_keys(at) == {"ladder_rank_k", "ladder_rrd_pool", "ladder_rrd_l", "ladder_rrd_t"}
    assert at.number_input(key="ladder_rrd_pool").max == KNOB_INT_MAX
    loss = caption(at, "The student minimises")
    assert "(1 − alpha) · L_RRD**" in loss and "KL" not in loss
    assert at.slider(key="ladder_T").disabled and "rrd does not read it" in at.slider(key="ladder_T").help
    choose(at, "de")
    assert knob_keys(at) == {"ladder_de_experts", "ladder_de_tau"}
    assert at.number_input(key="ladder_de_experts").max == DE_EXPERTS_MAX
    assert at.slider(key="ladder_T").disabled
    choose(at, "logits+rrd")  # its KL reads T
    assert not at.slider(key="ladder_T").disabled and "combo_weight · L_RRD" in caption(at, "The student minimises")
    assert not errors(at) and not at.button(key="ladder_train").disabled


def test_an_rrd_ladder_stores_its_students_with_the_method_and_knobs(sample_teacher):
    at = open_compare()
    choose(at, "rrd")
    at.number_input(key="ladder_rank_k").set_value(7)
    at.multiselect(key="ladder_dims").set_value([2])
    at.number_input(key="ladder_epochs").set_value(1)
    at.slider(key="ladder_alpha").set_value(0.5).run()
    assert not errors(at) and not at.button(key="ladder_train").disabled
    at.button(key="ladder_train").click().run()
    assert not errors(at), errors(at)
    [snap] = registry.runner().snapshots()
    assert snap.description == "Size ladder mf dims 2 (rrd)"

    run_until(at, lambda a: not any(s.active for s in registry.runner().snapshots()), what="the ladder")
    [snap] = registry.runner().snapshots()
    assert snap.status == "done", snap.error
    [kd] = registry.store().runs(kind="student_kd", status="done")
    distill = kd.config["distill"]
    assert distill["method"] == "rrd" and distill["rank_k"] == 7 and distill["alpha"] == 0.5
    assert kd.config["model"]["dim"] == 2 and kd.parent == sample_teacher
    [plain] = registry.store().runs(kind="student_plain", status="done")
    assert plain.config["model"]["dim"] == 2
    assert not errors(at), errors(at)


def test_a_logits_ladder_is_labelled_as_before(sample_teacher, monkeypatch):
    started = []
    monkeypatch.setattr("ui.jobs.start_job", lambda kind, ds, build, description, teacher=None:
                        started.append((kind, build(), description)))  # built (validated), not run
    at = open_compare()
    at.multiselect(key="ladder_dims").set_value([6, 4])
    at.button(key="ladder_train").click().run()
    assert not errors(at), errors(at)
    assert [(kind, description) for kind, _, description in started] == [("ladder", "Size ladder mf dims 4, 6")]


def test_a_bad_knob_names_the_field_disables_train_and_starts_nothing(sample_teacher, monkeypatch):
    at = open_compare()
    choose(at, "rrd")
    at.number_input(key="ladder_rank_k").set_value(2000).run()  # DistillConfig refuses it: above the pool of 100
    assert len(errors(at)) == 1 and "rrd_pool must be at least rank_k=2000" in errors(at)[0]
    assert at.button(key="ladder_train").disabled
    assert nothing_started(sample_teacher)

    choose(at, "rd")  # the check against the catalogue: the sample has 1,800 items
    assert len(errors(at)) == 1 and "rank_k must be at most the catalogue of 1800 items (got 2000)" in errors(at)[0]
    assert at.button(key="ladder_train").disabled
    at.number_input(key="ladder_rank_k").set_value(10).run()
    assert not errors(at) and not at.button(key="ladder_train").disabled

    loaded = []  # the teacher is loaded for DE only, and this one has no representations to map onto
    monkeypatch.setattr(registry, "model", lambda run_id, ds: loaded.append(run_id) or Opaque(ModelSpec("mf", 4),
                                                                                               ds.n_users, ds.n_items))
    choose(at, "rrd")
    assert not errors(at) and loaded == []
    choose(at, "de")
    assert loaded and set(loaded) == {sample_teacher}
    assert len(errors(at)) == 1 and "method 'de' needs the teacher's user and item representations" in errors(at)[0]
    assert "opaque teacher does not provide" in errors(at)[0]
    assert at.button(key="ladder_train").disabled
    assert nothing_started(sample_teacher)
    assert at.selectbox(key="ladder_method").value == "de"  # nothing the user set was lost
