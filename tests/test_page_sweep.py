"""The Sweep page (app_pages/sweep.py) through AppTest, on the tiny dataset: without a teacher it says what to
do; with one it runs a sweep live, fills the heatmap, and the cell selected there reaches the other pages."""
from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from distill_core import ModelSpec, RunStore, TrainConfig, sweep, sweep_results
from distill_core.models import MF
from ui import registry, session

from conftest import ROOT


@pytest.fixture
def page(tiny_ds):
    registry.datasets().put(tiny_ds)  # the page's active dataset: the tiny one
    yield lambda path="app_pages/sweep.py": _open(path, tiny_ds)
    registry.runner().shutdown()


def _open(path: str, ds) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state[session.DATASET_KEY] = ds.fingerprint
    return at


def heatmap_z(at: AppTest) -> np.ndarray:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # plotly 6+: a typed array
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
            [int(s) for s in z["shape"].split(",")])
    return np.array(z, dtype=float)


def test_sweep_page_without_a_teacher_says_what_to_do(page):
    at = page()
    at.run()
    assert not at.exception and "Train one on the Teacher page" in at.info[0].value
    assert not at.get("plotly_chart")


def test_sweep_page_runs_a_sweep_live_and_selects_a_cell_for_the_other_pages(page, tiny_ds, teacher):
    at = page()
    at.run()
    for kind in ["button", "number_input", "selectbox", "text_input", "radio"]:
        for w in at.get(kind):
            assert w.help, f"{kind} {w.label!r} has no help"
    at.text_input(key="sweep_alphas").set_value("0, 2").run()
    assert "alpha grid: alpha 2 is outside [0, 1]" in at.error[0].value and not at.get("plotly_chart")
    at.text_input(key="sweep_alphas").set_value("0, 0.5").run()
    at.text_input(key="sweep_temperatures").set_value("1 4").run()
    at.number_input(key="sweep_dim").set_value(4).run()
    at.number_input(key="sweep_epochs").set_value(2).run()
    at.number_input(key="sweep_patience").set_value(1).run()
    assert np.isnan(heatmap_z(at)).all()
    at.button(key="sweep_start").click().run()
    deadline = time.monotonic() + 60
    while {m.label: m.value for m in at.metric}.get("Cells finished") != "4 / 4":
        assert time.monotonic() < deadline, "the sweep did not fill the heatmap"
        time.sleep(0.3)
        at.run()  # what the live fragment does every second
        assert not at.exception, [e.value for e in at.exception]
    at.run()
    spec = sweep.SweepSpec((0.0, 0.5), (1.0, 4.0), ModelSpec("mf", 4), TrainConfig(epochs=2, patience=1))
    grid = sweep_results.grid_frame(RunStore(), tiny_ds, teacher, spec)
    assert (grid["status"] == "done").all()  # the cells were trained with the page's patience
    np.testing.assert_array_equal(heatmap_z(at), grid["val_ndcg@10"].to_numpy().reshape(2, 2))
    # the plain student got as many cells; the page shows the budgets and the baseline validation chose
    plain_runs = [r for r in RunStore().runs(kind="student_plain") if r.config["model"]["dim"] == 4]
    assert len(plain_runs) == 4 and {r.status for r in plain_runs} == {"done"}
    chosen = max(reversed(plain_runs), key=lambda r: max(h["val_ndcg@10"] for h in r.history))  # oldest of equals
    shown = {m.label: m.value for m in at.metric}
    assert shown["Tuned plain student: test NDCG@10"] == f"{chosen.metrics['ndcg@10']:.4f}"
    assert any(spec.budget() in c.value and f"lr {chosen.config['train']['lr']:g}" in c.value for c in at.caption)
    assert at.dataframe[1].value["run"].tolist() == [r.id for r in reversed(plain_runs)]  # the plain table, ladder order
    t_params = MF(ModelSpec("mf", 16), tiny_ds.n_users, tiny_ds.n_items).n_params()
    s_params = MF(ModelSpec("mf", 4), tiny_ds.n_users, tiny_ds.n_items).n_params()
    assert any(c.value.startswith(f"Student size: mf dim 4: {s_params:,} parameters, {s_params / t_params:.3f} of "
                                  f"the teacher's {t_params:,}") for c in at.caption)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    best = sweep_results.best_cell(grid)
    star = next(t for t in figure["data"] if t.get("name") == "best cell (validation NDCG@10)")
    assert figure["layout"]["xaxis"]["ticktext"] == ["1", "4"] and figure["layout"]["yaxis"]["ticktext"] == ["0", "0.5"]
    assert (round(star["x"][0]), round(star["y"][0])) == ([1.0, 4.0].index(best["temperature"]),
                                                          [0.0, 0.5].index(best["alpha"]))  # in the best cell
    at.radio(key="sweep_metric").set_value("final_kl").run()
    np.testing.assert_array_equal(heatmap_z(at), grid["final_kl"].to_numpy().reshape(2, 2))

    chosen = grid["run"].iloc[1]
    at.selectbox(key="sweep_cell").set_value(chosen).run()
    assert at.session_state[session.SELECTED_STUDENT_KEY] == chosen
    frame = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"]
    assert [(s["name"], (s["x0"] + s["x1"]) / 2, (s["y0"] + s["y1"]) / 2) for s in frame] == [("selected run", 1, 0)]

    rec = page("app_pages/recommendations.py")  # another page of the same session
    rec.session_state[session.SELECTED_STUDENT_KEY] = chosen
    rec.run()
    assert not rec.exception and rec.selectbox(key="rec_student").value == chosen
    other = grid["run"].iloc[3]
    rec.selectbox(key="rec_student").set_value(other).run()  # the user can still pick another run
    assert rec.selectbox(key="rec_student").value == other
    dis = page("app_pages/distill.py")
    dis.session_state[session.SELECTED_STUDENT_KEY] = chosen
    dis.run()
    assert not dis.exception and dis.selectbox(key="distill_teacher").value == teacher
    assert any(c.value.startswith("Distilled student shown") and chosen in c.value for c in dis.caption)
