"""The Run history page (app_pages/history.py) through AppTest: list, filter, overlay, download, export and
delete, and the other pages after a teacher was deleted."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from distill_core import ModelSpec, TrainConfig
from distill_core.workflows import teacher_job
from ui import registry, session

from _helpers import files, make_runs
from conftest import ROOT

TINY = TrainConfig(epochs=2, batch_size=128, device="cpu")
PAGE = str(ROOT / "app_pages/history.py")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()


def array(v) -> list:
    """A plotly JSON array: a list, or Plotly 6+'s base64 typed array ``{"dtype", "bdata"}``."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def open_history(ds=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if ds is not None:  # make ``ds`` the session's active dataset, as the Data page would
        registry.datasets().put(ds)
        at.session_state[session.DATASET_KEY] = ds.fingerprint
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_with_an_empty_store_says_what_to_do():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/history.py").run()  # through the app: the page links need its navigation
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Run history" and "The run store is empty" in at.info[0].value
    assert [p.proto.label for p in at.get("page_link")] == ["Train a teacher", "Run the demo"]


def test_page_lists_filters_overlays_downloads_exports_and_deletes(tiny_ds):
    store = registry.store()
    ids = make_runs(tiny_ds, store)
    at = open_history(tiny_ds)
    for kind in ["multiselect", "selectbox", "text_input", "button", "number_input", "download_button"]:
        for w in at.get(kind):
            assert w.help, f"{kind} {getattr(w, 'label', '')!r} has no help"
    table = at.dataframe[0].value
    assert set(table["run"]) == set(ids.values()) and set(table["status"]) == {"done"}

    at.multiselect(key="history_f_kind").set_value(["teacher"]).run()
    assert at.dataframe[0].value["run"].tolist() == [ids["teacher"]]
    at.multiselect(key="history_f_kind").set_value([]).run()
    at.text_input(key="history_f_text").set_value("alpha").run()
    assert at.dataframe[0].value["run"].tolist() == [ids["student_kd"]]
    at.text_input(key="history_f_text").set_value("").run()
    at.multiselect(key="history_f_status").set_value(["failed"]).run()
    assert at.dataframe[0].value.empty and "No run matches the filters." in [c.value for c in at.caption]
    at.multiselect(key="history_f_status").set_value([]).run()

    at.multiselect(key="history_overlay").set_value([ids["teacher"], ids["student_kd"]]).run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [s["layout"]["title"]["text"] for s in specs] == ["Training loss per epoch", "Validation NDCG@10 per epoch"]
    for s in specs:
        assert len(s["data"]) == 2 and all(array(d["x"]) == [1, 2] for d in s["data"])
        assert s["layout"]["xaxis"]["title"]["text"] == "epoch" and "(" in s["layout"]["yaxis"]["title"]["text"]
    assert sorted(array(specs[1]["data"][0]["y"]) + array(specs[1]["data"][1]["y"])) == sorted(
        h["val_ndcg@10"] for rid in (ids["teacher"], ids["student_kd"]) for h in store.get(rid).history)

    at.selectbox(key="history_run").set_value(ids["student_kd"]).run()
    assert {"history_download_json", "history_download_weights"} <= {b.key for b in at.get("download_button")}
    assert at.selectbox(key="history_export_format").options == ["TorchScript", "ONNX"]  # onnx is installed
    at.number_input(key="history_export_users").set_value(20)
    at.button(key="history_export").click().run()  # one interaction: the new value reaches the export
    assert not at.error and at.success[0].value.startswith("Ranking check passed")
    assert "for all 20 sampled test users (20 identical in order)" in at.success[0].value
    assert "history_download_export" in {b.key for b in at.get("download_button")}

    # delete asks first; cancel keeps the run; confirm removes the row and the weight file
    kd_file = store.get(ids["student_kd"]).weights
    at.button(key="history_delete").click().run()
    assert "This cannot be undone" in at.warning[0].value and store.find(ids["student_kd"]) is not None
    at.button(key="history_delete_cancel").click().run()
    assert not at.warning and store.find(ids["student_kd"]) is not None
    at.button(key="history_delete").click().run()
    at.button(key="history_delete_confirm").click().run()
    assert not at.exception and at.success[0].value.startswith("Deleted 1 run(s)")
    assert store.find(ids["student_kd"]) is None and kd_file not in files(store)
    assert ids["student_kd"] not in at.dataframe[0].value["run"].tolist()
    assert at.multiselect(key="history_overlay").value == [ids["teacher"]]  # the deleted run left the overlay


def test_deleting_a_teacher_asks_about_its_students_and_other_pages_keep_working(tiny_ds):
    store, runner = registry.store(), registry.runner()
    keep = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TINY, store)), 60)
    ids = make_runs(tiny_ds, store, runner, teacher_dim=8)
    # the jobs as the pages would have started them: the Teacher and Distill pages then follow them
    for job in runner.snapshots():
        registry.shared().jobs.add(registry.JobInfo(job.job_id, job.kind, tiny_ds.fingerprint,
                                                ids["teacher"] if job.kind == "distill" else None))

    at = open_history(tiny_ds)
    at.selectbox(key="history_run").set_value(ids["teacher"]).run()
    at.button(key="history_delete").click().run()
    assert any("1 student(s) were distilled from this teacher" in c.value for c in at.caption)
    assert at.checkbox(key="history_delete_students").value is False
    at.button(key="history_delete_confirm").click().run()
    assert store.find(ids["teacher"]) is None and store.find(ids["student_kd"]) is not None
    assert keep.result in {r.id for r in store.runs()}

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.session_state[session.DATASET_KEY] = tiny_ds.fingerprint
    app.run()
    for page in ["app_pages/teacher.py", "app_pages/distill.py", "app_pages/recommendations.py"]:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.value for e in app.exception])
        assert app.sidebar.caption[0].value.startswith("tiny")
    assert "There is no distilled student" in app.info[0].value  # its only pair lost its teacher
