"""Run history and export: the TorchScript round trip and its ranking check, deletion without orphan
files, the JSON bundle, filters and curves, and the Run history page through AppTest."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import (ConfigError, DistillConfig, ModelSpec, RunStore, SplitOptions, TrainConfig, export, history,
                          split_dataset, train_model)
from distill_core.errors import StoreError
from distill_core.jobs import distill_job, load_model, teacher_job
from distill_core.models import Recommender
from distill_core.runner import JobRunner
from distill_core.runs import distillations
from distill_core.store import RunRecord
from ui import state

from conftest import ROOT

TINY = TrainConfig(epochs=2, batch_size=128, device="cpu")
PAGE = str(ROOT / "app_pages/history.py")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    state.runner().shutdown()


def make_runs(ds, store: RunStore, runner: JobRunner | None = None, teacher_dim: int = 16) -> dict[str, str]:
    """A teacher (mf), a student distilled from it and its plain twin (mf dim 4), through the real jobs."""
    runner = runner or JobRunner()
    t = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", teacher_dim), TINY, store)), 60)
    tid = t.result
    s = runner.wait(runner.submit("distill", distill_job(ds, tid, ModelSpec("mf", 4), TINY,
                                                          DistillConfig(0.5, 2.0), store)), 60)
    assert t.status == "done" and s.status == "done", (t.error, s.error)
    return {"teacher": tid, **s.result}


def array(v) -> list:
    """A plotly JSON array: a list, or Plotly 6+'s base64 typed array ``{"dtype", "bdata"}``."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def files(store: RunStore) -> set[str]:
    return {p.name for p in store.weights_dir.iterdir()}


# ----------------------------------------------------------------------------- export
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
    # onnx, onnxscript and onnxruntime are in requirements.txt: this test runs, it never skips
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


# ----------------------------------------------------------------------------- store, bundle, deletion
def test_bundle_holds_config_history_metrics_and_info(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    rec = store.get(ids["student_kd"])
    b = json.loads(history.bundle_json(rec))
    assert b["format"] == "recdistill-run/1" and b["id"] == rec.id and b["kind"] == "student_kd"
    assert b["teacher"] == ids["teacher"] and b["dataset"] == {"name": "tiny", "fingerprint": tiny_ds.fingerprint}
    assert b["config"]["distill"]["alpha"] == 0.5 and b["config"]["teacher"] == ids["teacher"]
    assert (b["config"]["model"]["family"], b["config"]["model"]["dim"]) == ("mf", 4)
    assert [h["epoch"] for h in b["history"]] == [1.0, 2.0] and b["history"] == rec.history
    assert b["metrics"] == rec.metrics and 0 <= b["metrics"]["ndcg@10"] <= 1
    assert b["info"]["params"] == (tiny_ds.n_users + tiny_ds.n_items) * 4 + tiny_ds.n_items
    assert b["started"] < b["ended"] and b["started"].endswith("+00:00")

    got = torch.load(io.BytesIO(history.weights_bytes(store, rec.id)), weights_only=True)
    want = store.load_weights(rec.id)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_bundle_is_strict_json_even_with_nan():
    rec = RunRecord(id="x", kind="teacher", dataset="f", dataset_name="d", parent=None, config={}, status="failed",
                    started=0.0, ended=None, history=[{"epoch": 1.0, "total": float("nan")}],
                    metrics={"ndcg@10": float("inf")}, info={}, weights=None, error="boom")
    b = json.loads(history.bundle_json(rec))
    assert b["history"] == [{"epoch": 1.0, "total": None}] and b["metrics"] == {"ndcg@10": None}
    with pytest.raises(StoreError, match="no run"):
        history.weights_bytes(RunStore(), "x")


def test_deletion_removes_weights_and_leaves_no_orphans(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    w = {k: store.get(v).weights for k, v in ids.items()}
    assert files(store) == set(w.values())

    running = store.create_run("teacher", tiny_ds.fingerprint, "tiny", {})
    with pytest.raises(StoreError, match="still training"):
        history.delete_run(store, running)
    learning = store.create_run("student_kd", tiny_ds.fingerprint, "tiny", {}, parent=ids["teacher"])
    with pytest.raises(StoreError, match="being distilled from"):
        history.delete_run(store, ids["teacher"])
    assert store.find(running) is not None and store.find(ids["teacher"]) is not None
    store.finish_run(running, "cancelled")
    store.finish_run(learning, "cancelled")

    # the teacher alone: its distilled student stays, loads and exports, but is no longer a pair
    assert history.delete_run(store, ids["teacher"]) == [ids["teacher"]]
    assert files(store) == {w["student_kd"], w["student_plain"]}
    assert store.find(ids["teacher"]) is None and distillations(store, tiny_ds.fingerprint) == []
    kd = load_model(store, ids["student_kd"], tiny_ds)
    kd_split = split_dataset(tiny_ds, SplitOptions(**store.get(ids["student_kd"]).config["split"]))
    assert export.export_torchscript(kd, kd_split, {}, n_check=20).check.ok
    table = history.runs_frame(store.runs(), known={r.id for r in store.runs()})
    assert table.set_index("run").loc[ids["student_kd"], "teacher"] == f"{ids['teacher']} (deleted)"

    # a second teacher with its students, deleted together
    more = make_runs(tiny_ds, store, teacher_dim=8)
    before = files(store)
    gone = history.delete_run(store, more["teacher"], with_students=True)
    assert set(gone) == {more["teacher"], more["student_kd"]}  # the plain twin has no teacher
    assert before - files(store) == {f"{rid}.pt" for rid in gone}
    referenced = {r.weights for r in store.runs() if r.weights}
    assert files(store) == referenced  # every file on disk belongs to a run, and vice versa
    with pytest.raises(StoreError, match="no run"):
        history.delete_run(store, more["teacher"])


def test_filters_and_curves(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    runs = store.runs()
    assert [r.id for r in history.filter_runs(runs, kinds=["teacher"])] == [ids["teacher"]]
    assert [r.id for r in history.filter_runs(runs, text="ALPHA 0.5")] == [ids["student_kd"]]
    assert history.filter_runs(runs, statuses=["failed"]) == []
    assert len(history.filter_runs(runs, datasets=[tiny_ds.fingerprint], statuses=["done"])) == 3
    assert history.filter_runs(runs, datasets=["0" * 16]) == []
    assert history.filter_runs(runs, text="mf dim 4 plain") == [store.get(ids["student_plain"])]

    curves = history.curves_frame([store.get(ids["teacher"]), store.get(ids["student_kd"])])
    for rid in (ids["teacher"], ids["student_kd"]):
        rec = store.get(rid)
        got = curves[(curves["run"] == rid) & (curves["series"] == "val_ndcg@10")]
        assert got["epoch"].tolist() == [1, 2] and got["value"].tolist() == [h["val_ndcg@10"] for h in rec.history]
    assert set(curves["series"]) == set(history.CURVE_COLUMNS)


# ----------------------------------------------------------------------------- page
def open_history(ds=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if ds is not None:  # make ``ds`` the session's active dataset, as the Data page would
        state._datasets().put(ds)
        at.session_state[state.DATASET_KEY] = ds.fingerprint
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
    store = state.store()
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
    store, runner = state.store(), state.runner()
    keep = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TINY, store)), 60)
    ids = make_runs(tiny_ds, store, runner, teacher_dim=8)
    # the jobs as the pages would have started them: the Teacher and Distill pages then follow them
    for job in runner.snapshots():
        state.registry().jobs.add(state.JobInfo(job.job_id, job.kind, tiny_ds.fingerprint,
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
    app.session_state[state.DATASET_KEY] = tiny_ds.fingerprint
    app.run()
    for page in ["app_pages/teacher.py", "app_pages/distill.py", "app_pages/recommendations.py"]:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.value for e in app.exception])
        assert app.sidebar.caption[0].value.startswith("tiny")
    assert "There is no distilled student" in app.info[0].value  # its only pair lost its teacher


def test_recommendations_page_caps_k_at_a_catalogue_smaller_than_50(tmp_path):
    """A 20-item catalogue: the K slider stops at 20 (not 50), a K kept from a larger dataset is lowered to it,
    a user id typed for the previous dataset is replaced by one of this dataset, and the lists stop at the
    user's unseen items: no error reaches the page."""
    from distill_core.data import build_dataset
    from distill_core.data.loaders import load_raw
    from distill_core.data.sample import SampleSpec, write_sample
    write_sample(tmp_path, SampleSpec(n_users=40, n_items=20, mean_activity=8, n_niches=4, n_taste_groups=2, seed=3))
    small = build_dataset(load_raw(tmp_path), name="small")
    assert small.n_items == 20
    make_runs(small, state.store(), teacher_dim=8)
    at = AppTest.from_file(str(ROOT / "app_pages/recommendations.py"), default_timeout=60)
    state._datasets().put(small)
    at.session_state[state.DATASET_KEY] = small.fingerprint
    at.session_state["rec_k"] = 40  # as if chosen on the sample
    at.session_state["rec_user"] = "999"  # a sample user id, typed before the switch; not a user of `small`
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    k = at.slider(key="rec_k")
    assert k.max == 20 and k.value == 20
    assert "999" not in small.user_ids and at.text_input(key="rec_user").value in small.user_ids
    hist = at.dataframe[0].value
    assert len(set(small.titles)) == small.n_items  # titles identify the items in the lists
    history_items = set(hist.loc[hist["part"] != "test (held out)", "title"])  # seen: never recommended
    unseen = 20 - len(history_items)
    assert 0 < unseen < 20
    for lst in at.dataframe[1:4]:  # a full 20 would have to repeat seen items: the lists stop at the unseen ones
        assert lst.value.shape[0] == unseen and not history_items & set(lst.value["title"])
