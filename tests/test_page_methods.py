"""The distillation method on the dashboard (issue 17): the Distill page shows the chosen method's knobs and loss
only, refuses a knob the config, the catalogue or the teacher's top-K lists cannot serve (naming the field, Train
disabled), and a tiny rd job names the method's term in its live chart, its metric and its progress; the run
labels and the tables of the Distill, Run history and Compare pages name the method, and a run stored before the
methods existed (no ``method`` in its config) reads as Hinton KD, "logits".

AppTest does not drive ``st.fragment(run_every=...)``: a live section is polled by calling ``run()`` again
(_pages.run_until); each test stops what it started.
"""
from __future__ import annotations

import math

import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import DistillConfig, RunStore, views
from distill_core.cli.methods import KNOBS
from distill_core.config import METHOD_KNOBS, METHODS
from distill_core.runs import method_of, run_label
from ui import charts, registry, run_history

from _pages import choose as _choose, open_script
from _pages import caption, chart_specs, metrics, run_until, subheaders
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("stop_jobs")  # conftest.py
KNOB_KEYS = {f"distill_{k}" for k in METHOD_KNOBS}


def open_distill() -> AppTest:
    return open_script("app_pages/distill.py")


def choose(at: AppTest, method: str) -> AppTest:
    return _choose(at, "distill_method", method)


def knob_keys(at: AppTest) -> set[str]:
    return {w.key for w in at.number_input if w.key in KNOB_KEYS}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def texts(column) -> list[str | None]:
    """A table's text column as shown: its empty cells None (a round trip through Arrow may make them NaN)."""
    return [v if isinstance(v, str) else None for v in column]


def test_the_chosen_method_shows_its_knobs_and_its_loss_only(sample_teacher):
    at = open_distill()
    picker = at.selectbox(key="distill_method")
    assert picker.value == "logits" and picker.options == list(METHODS)
    assert all(p in picker.help for p in ("Hinton", "Tang & Wang, KDD 2018", "Kang et al., CIKM 2020", "DE-RRD"))
    assert knob_keys(at) == set()  # Hinton KD has no knobs of its own
    assert "(1 − alpha) · T² · KL(teacher_T ‖ student_T)" in caption(at, "The student minimises")
    assert not at.toggle(key="distill_t2").disabled and not caption(at, "logits does not use")

    choose(at, "rrd")
    assert knob_keys(at) == {"distill_rank_k", "distill_rrd_pool", "distill_rrd_l", "distill_rrd_t"}
    loss = caption(at, "The student minimises")
    assert "(1 − alpha) · L_RRD**" in loss and "KL" not in loss and "Kang et al., CIKM 2020" in loss
    assert at.toggle(key="distill_t2").disabled and caption(at, "rrd does not use the temperature")
    cli_help = {name: text for name, _, text in KNOBS.values()}
    assert at.number_input(key="distill_rrd_pool").help.startswith(cli_help["rrd_pool"])  # one wording with the CLI
    assert at.number_input(key="distill_rrd_pool").min == 1 and at.number_input(key="distill_rrd_pool").max == 100_000
    at.number_input(key="distill_rank_k").set_value(7).run()

    choose(at, "de")
    assert knob_keys(at) == {"distill_de_experts", "distill_de_tau"}
    assert at.number_input(key="distill_de_experts").max == 64  # DistillConfig's bound
    assert "(1 − alpha) · L_DE**" in caption(at, "The student minimises")
    choose(at, "rd")
    assert knob_keys(at) == {"distill_rank_k", "distill_rd_lambda", "distill_rd_mu"}
    assert at.number_input(key="distill_rank_k").value == 7  # kept while another method was shown
    assert "Tang & Wang, KDD 2018" in caption(at, "The student minimises")
    choose(at, "de+rrd")
    assert knob_keys(at) == {"distill_de_experts", "distill_de_tau", "distill_rank_k", "distill_rrd_pool",
                             "distill_rrd_l", "distill_rrd_t", "distill_combo_weight"}
    assert "(1 − alpha) · (L_DE + combo_weight · L_RRD)**" in caption(at, "The student minimises")
    choose(at, "logits+rrd")
    assert "(T² · KL(teacher_T ‖ student_T) + combo_weight · L_RRD)" in caption(at, "The student minimises")
    assert not at.toggle(key="distill_t2").disabled  # its KL reads T
    assert not errors(at) and not at.button(key="distill_train").disabled


def test_a_bad_knob_names_the_field_disables_train_and_loses_nothing(sample_teacher):
    at = open_distill()
    at.slider(key="distill_alpha").set_value(0.3)
    choose(at, "rd")
    assert not errors(at) and not at.button(key="distill_train").disabled
    at.number_input(key="distill_rank_k").set_value(2000).run()  # the sample has 1,800 items
    assert len(errors(at)) == 1 and "rank_k must be at most the catalogue of 1800 items (got 2000)" in errors(at)[0]
    assert at.button(key="distill_train").disabled
    assert at.slider(key="distill_alpha").value == 0.3 and at.number_input(key="distill_rank_k").value == 2000

    choose(at, "rrd")  # rank_k 2000 above the pool of 100
    assert len(errors(at)) == 1 and "rrd_pool must be at least rank_k=2000" in errors(at)[0]
    assert at.button(key="distill_train").disabled
    at.number_input(key="distill_rank_k").set_value(10)
    at.number_input(key="distill_rrd_pool").set_value(1800).run()
    assert "rrd_pool must be below the catalogue of 1800 items" in errors(at)[0]
    at.number_input(key="distill_rrd_pool").set_value(100)
    at.number_input(key="distill_top_k").set_value(50).run()  # the top-K path: the teacher's lists hold 50 items
    assert "rrd_pool must be at most soft_top_k, the 50 items" in errors(at)[0]
    assert at.button(key="distill_train").disabled
    at.number_input(key="distill_top_k").set_value(0).run()
    assert not errors(at) and not at.button(key="distill_train").disabled
    assert at.slider(key="distill_alpha").value == 0.3 and at.number_input(key="distill_rank_k").value == 10
    assert [r.kind for r in registry.store().runs()] == ["teacher"]  # nothing started, nothing changed


def test_an_rd_job_names_its_method_in_the_chart_metric_progress_labels_and_tables(sample_teacher):
    at = open_distill()
    choose(at, "rd")
    at.slider(key="distill_alpha").set_value(0.5)
    at.number_input(key="distill_epochs").set_value(1)
    at.number_input(key="distill_patience").set_value(1)
    at.button(key="distill_train").click().run()
    assert not errors(at), errors(at)

    def rd_series(a: AppTest) -> list[dict]:
        return [d for s in chart_specs(a) if s["layout"]["title"]["text"] == "Student training loss"
                for d in s["data"] if "RD" in d["name"]]
    run_until(at, lambda a: bool(rd_series(a)), what="the rd term's step rows")
    assert [d["name"] for d in rd_series(at)] == ["Distilled student: RD (method term)"]
    assert rd_series(at)[0]["line"]["color"] == charts.KD_TERM_COLOR  # the KL's colour under the method's name
    assert "RD (method term)" in metrics(at) and "KL (soft labels)" not in metrics(at)
    assert "(rd, alpha 0.5) on sample" in at.main.get("progress")[0].proto.text

    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the students")
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["Teacher", "Distilled student", "Plain student"]
    assert texts(table["method"]) == [None, "rd", None]
    kd = registry.store().runs(kind="student_kd")[0]
    assert kd.config["distill"]["method"] == "rd" and method_of(kd) == "rd"
    assert run_label(kd).startswith("mf dim 6, rd, alpha 0.5 · test NDCG@10 ")  # rd reads no T: none shown
    assert caption(at, "Distilled student shown:") == f"Distilled student shown: {run_label(kd)}"
    choose(at, "de")  # the finished job still trained by rd: its chart and metric say so, not the page's method
    assert [d["name"] for d in rd_series(at)] == ["Distilled student: RD (method term)"]
    assert "RD (method term)" in metrics(at) and "DE (method term)" not in metrics(at)

    hist = AppTest.from_file(str(ROOT / "app_pages" / "history.py"), default_timeout=60).run()
    assert not hist.exception, [e.value for e in hist.exception]
    rows = hist.dataframe[0].value  # the table of runs
    assert dict(zip(rows["kind"], texts(rows["method"]))) == {"Teacher": None, "Distilled student": "rd",
                                                       "Plain student": None}
    assert list(rows.columns[:5]) == ["run", "dataset", "kind", "model", "method"]
    assert run_label(kd) in hist.selectbox(key="history_run").options

    cmp = AppTest.from_file(str(ROOT / "app_pages" / "compare.py"), default_timeout=60).run()
    assert not cmp.exception, [e.value for e in cmp.exception]
    shown = next(d.value for d in cmp.dataframe if "pareto" in d.value).set_index("run")  # the models' table
    assert shown.loc[kd.id, "method"] == "rd" and shown.loc[kd.id, "alpha"] == 0.5
    assert math.isnan(shown.loc[kd.id, "T"])  # rd does not read T
    assert texts([shown.loc[sample_teacher, "method"]]) == [None]


def _stored(store: RunStore, kind: str, distill: dict | None) -> str:
    rid = store.create_run(kind, "fp", "tiny", {"model": {"family": "mf", "dim": 6}, "distill": distill})
    store.finish_run(rid, "done", history=[], metrics={"ndcg@10": 0.1}, info={"params": 10},
                     state_dict={"w": torch.zeros(2)})
    return rid


def test_run_labels_and_tables_name_the_method_and_a_run_stored_without_one_reads_as_logits(tmp_path):
    store = RunStore(tmp_path)
    ids = {"teacher": _stored(store, "teacher", None),
           "old": _stored(store, "student_kd", {"alpha": 0.5, "temperature": 2.0}),  # stored before the methods
           "logits": _stored(store, "student_kd", DistillConfig(alpha=0.5, temperature=2.0).to_dict()),
           "rrd": _stored(store, "student_kd", DistillConfig(alpha=0.5, temperature=2.0, method="rrd").to_dict()),
           "combo": _stored(store, "student_kd", DistillConfig(alpha=0.5, temperature=2.0,
                                                               method="logits+rrd").to_dict()),
           "plain": _stored(store, "student_plain", None)}
    recs = {name: store.get(rid) for name, rid in ids.items()}
    assert "method" not in recs["logits"].config["distill"]  # Hinton KD is stored as before the methods
    labels = {name: run_label(rec).split(" · ")[0] for name, rec in recs.items()}
    assert labels == {"teacher": "mf dim 6", "old": "mf dim 6, alpha 0.5, T 2", "logits": "mf dim 6, alpha 0.5, T 2",
                      "rrd": "mf dim 6, rrd, alpha 0.5", "combo": "mf dim 6, logits+rrd, alpha 0.5, T 2",
                      "plain": "mf dim 6"}
    want = [None, "logits", "logits", "rrd", "logits+rrd", None]
    assert [method_of(r) for r in recs.values()] == want
    assert texts(views.runs_table(list(recs.values()))["method"]) == want
    assert texts(run_history.runs_frame(list(recs.values()))["method"]) == want


def test_the_kd_term_series_is_named_by_the_method_and_keeps_its_colour():
    steps = [{"phase": "student_kd", "t": 1, "ce": 6.0, "kl": 0.5, "total": 3.0},
             {"phase": "student_plain", "t": 2, "ce": 6.5, "kl": 0.0, "total": 6.5}]
    kl = {d.name: d.line.color for d in charts.loss_curves(charts.steps_frame(steps)).data}
    combo = {d.name: d.line.color for d in charts.loss_curves(charts.steps_frame(steps, "DE + w RRD")).data}
    assert kl["Distilled student: KL (soft labels)"] == combo["Distilled student: DE + w RRD (method term)"]
    assert {n: c for n, c in kl.items() if "KL" not in n} == {n: c for n, c in combo.items() if "RRD" not in n}
    assert charts.steps_frame(steps, "RRD")["series"].tolist() == [
        "Distilled student: CE (hard labels)", "Plain student: CE (hard labels)",
        "Distilled student: RRD (method term)", "Distilled student: total loss"]
