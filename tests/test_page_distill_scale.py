"""The Distill page's "Advanced: large catalogues" expander (issue 16) through AppTest on the bundled sample: the
loss, the negatives, the proposal's beta and the soft labels' K reach the job, the page says which path the
student will take, and a setting the catalogue cannot serve is refused naming the field, Train disabled."""
from __future__ import annotations

import pytest

from distill_core import load_sample
from ui import registry

from _pages import metrics, open_page, run_until, subheaders, train_teacher


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()


def _path_caption(at) -> str:
    return next((c.value for c in at.caption if c.value.startswith("This student will train by:")), "")


def test_the_large_catalogue_settings_say_the_path_reach_the_job_and_bad_ones_are_refused():
    run_until(train_teacher(epochs=1).run(), lambda a: "NDCG@10 (test)" in metrics(a), what="the teacher")
    at = open_page("app_pages/distill.py")
    # the sample (about 1,800 items) is below FULL_MAX_ITEMS: auto means the full softmax and the teacher's whole
    # distribution (K = the catalogue)
    n_items = load_sample().n_items
    assert _path_caption(at) == (f"This student will train by: full softmax; soft labels: the teacher's whole "
                                 f"distribution ({n_items:,} items).")
    at.selectbox(key="distill_loss").set_value("sampled")
    at.number_input(key="distill_negatives").set_value(300)
    at.number_input(key="distill_beta").set_value(0.0)
    at.number_input(key="distill_top_k").set_value(50).run()
    assert _path_caption(at) == ("This student will train by: sampled softmax (300 negatives, q ∝ (count + 1)^0, "
                                 "logQ-corrected); soft labels: top-50.")
    assert not at.button(key="distill_train").disabled

    at.number_input(key="distill_negatives").set_value(100_000).run()  # more negatives than items
    assert any("negatives must be below the catalogue" in e.value for e in at.error)
    assert at.button(key="distill_train").disabled and _path_caption(at) == ""
    assert not at.exception

    at.number_input(key="distill_negatives").set_value(300).run()
    assert not at.error and not at.button(key="distill_train").disabled
    at.number_input(key="distill_epochs").set_value(1)
    at.button(key="distill_train").click().run()
    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the students")
    kd = registry.store().runs(kind="student_kd")[0]
    train, distill = kd.config["train"], kd.config["distill"]
    assert (train["loss"], train["negatives"], train["negative_beta"], distill["soft_top_k"]) == ("sampled", 300,
                                                                                                  0.0, 50)
    assert kd.info["path"]["loss"] == "sampled" and kd.info["path"]["top_k"] == 50
    table = at.dataframe[0].value
    assert table.loc[table["model"] == "Distilled student", "training path"].item().startswith("sampled softmax (300")


def test_the_students_learning_rate_defaults_to_the_paths_and_reaches_both_students(monkeypatch):
    from distill_core import catalogue

    run_until(train_teacher(epochs=1).run(), lambda a: "NDCG@10 (test)" in metrics(a), what="the teacher")
    at = open_page("app_pages/distill.py")
    assert at.number_input(key="distill_lr").value == pytest.approx(5e-3)  # the sample trains on the full softmax
    # a catalogue above FULL_MAX_ITEMS trains on the sampled path: its own default, its own widget
    monkeypatch.setattr(catalogue, "FULL_MAX_ITEMS", 1_000)
    at = open_page("app_pages/distill.py")
    lr = at.number_input(key="distill_lr_sampled")
    assert lr.value == pytest.approx(catalogue.SAMPLED_STUDENT_LR) and "sampled path" in lr.help
    sweep = open_page("app_pages/sweep.py")
    assert sweep.number_input(key="sweep_lr_sampled").value == pytest.approx(catalogue.SAMPLED_STUDENT_LR)
    at.number_input(key="distill_epochs").set_value(1)
    at.button(key="distill_train").click().run()
    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the students")
    for kind in ("student_kd", "student_plain"):
        rec = registry.store().runs(kind=kind)[0]
        assert rec.config["train"]["lr"] == pytest.approx(catalogue.SAMPLED_STUDENT_LR), kind
        assert rec.info["path"]["loss"] == "sampled", kind
