"""The dashboard's pages through streamlit.testing.v1.AppTest, on the bundled sample.

AppTest does not drive ``st.fragment(run_every=...)``, so a live section is polled here by calling
``run()`` again; every job is trained with 2 epochs and each test stops what it started.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from distill_core import RunConfig, TrainConfig
from ui import charts, state

from conftest import ROOT

PAGES = ["app_pages/overview.py", "app_pages/data.py", "app_pages/teacher.py", "app_pages/distill.py",
         "app_pages/recommendations.py", "app_pages/compare.py", "app_pages/sweep.py", "app_pages/loss_lab.py",
         "app_pages/history.py"]
WIDGETS = ["button", "number_input", "selectbox", "multiselect", "slider", "toggle", "text_input", "text_area",
           "file_uploader", "radio", "checkbox"]
TINY_DEMO = RunConfig(teacher_train=TrainConfig(epochs=2), student_train=TrainConfig(epochs=2))


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    state.runner().shutdown()  # the registry of this test's private store


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if page != PAGES[0]:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_until(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 150, what: str = "") -> AppTest:
    """Rerun (as the live fragment would) until ``done`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; errors: {[e.value for e in at.error]}")
        time.sleep(0.3)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def caption(at: AppTest, start: str) -> str:
    return next((c.value for c in at.main.caption if c.value.startswith(start)), "")


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def train_teacher(epochs: int = 2) -> AppTest:
    at = open_page("app_pages/teacher.py")
    at.selectbox(key="teacher_family").set_value("mf")  # the fastest family keeps the tests short
    at.number_input(key="teacher_lr").set_value(5e-3)
    at.number_input(key="teacher_epochs").set_value(epochs)
    at.button(key="teacher_train").click()
    return at


# ----------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_the_sample_with_help_on_every_control(page):
    at = open_page(page)
    assert at.title[0].value
    assert "sample (ml-latest): 1,000 users, 1,800 items" in at.sidebar.caption[0].value
    assert at.sidebar.toggle(key=state.PAUSE_KEY).value is False
    for kind in WIDGETS:
        for w in at.get(kind):
            assert w.help, f"{kind} {getattr(w, 'label', '')!r} on {page} has no help"
    for spec in chart_specs(at):
        assert spec["layout"]["xaxis"]["title"]["text"] and spec["layout"]["yaxis"]["title"]["text"]


def test_pages_without_a_teacher_say_what_to_do():
    at = open_page("app_pages/distill.py")
    assert "Train one on the Teacher page" in at.info[0].value
    assert [p.proto.label for p in at.get("page_link")] == ["Train a teacher", "Run the demo"]
    at = open_page("app_pages/recommendations.py")
    assert "Run the demo" in at.info[0].value


# ----------------------------------------------------------------------------- data
def test_data_page_loads_uploads_and_folders_and_keeps_the_dataset_on_errors(tiny_dir: Path):
    at = open_page("app_pages/data.py")
    assert metrics(at)["Users"] == "1,000" and "**ml-latest**" in caption(at, "Format detected")
    assert [d.value.shape[0] for d in at.dataframe] == [3, 50]  # split sizes, preview
    specs = chart_specs(at)
    assert [s["layout"]["title"]["text"] for s in specs] == ["Item popularity (long tail)", "User activity"]

    at.file_uploader(key="data_upload").set_value(("bad.csv", b"a;b\nnot,really;data\n", "text/csv")).run()
    assert len(at.error) == 1 and "bad.csv" in at.error[0].value and "stays active" in at.error[0].value
    assert "recdistill-upload" not in at.error[0].value  # the message names the file, not a temp folder
    assert metrics(at)["Users"] == "1,000" and "sample" in at.sidebar.caption[0].value

    data = (tiny_dir / "ratings.csv").read_bytes()
    at.file_uploader(key="data_upload").set_value(("ratings.csv", data, "text/csv")).run()
    assert not at.error and metrics(at)["Users"] == "80"
    assert "**csv**" in caption(at, "Format detected")
    assert at.sidebar.caption[0].value.startswith("ratings (csv): 80 users")

    at.text_input(key="data_folder").set_value(str(tiny_dir / "missing")).run()
    at.button(key="data_load").click().run()
    assert "path does not exist" in at.error[0].value and metrics(at)["Users"] == "80"
    at.text_input(key="data_folder").set_value(str(tiny_dir)).run()
    at.button(key="data_load").click().run()
    assert not at.error and "**ml-latest**" in caption(at, "Format detected")

    at.button(key="data_sample").click().run()
    assert metrics(at)["Users"] == "1,000"


def test_data_page_says_where_each_users_order_comes_from():
    at = open_page("app_pages/data.py")
    assert caption(at, "Order within each user") == "Order within each user: by timestamp (ties keep file order)"
    lines = "".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 8))  # SASRec layout: no header, no time
    at.file_uploader(key="data_upload").set_value(("ml-1m.txt", lines.encode(), "text/plain")).run()
    assert not at.error and metrics(at)["Interactions"] == "35"
    assert "**sequences**" in caption(at, "Format detected")
    assert caption(at, "Order within each user") == "Order within each user: by file order (no timestamps)"


# ----------------------------------------------------------------------------- teacher
def test_teacher_trains_live_and_reports_what_it_reached():
    at = train_teacher().run()
    assert at.button(key="teacher_train").disabled and not at.button(key="teacher_stop").disabled
    assert at.get("progress") and at.sidebar.get("progress")  # page and sidebar both show the job
    run_until(at, lambda a: "NDCG@10 (test)" in metrics(a), what="the teacher's results")
    m = metrics(at)
    assert m["Parameters"] == "181,000"  # mf dim 64: (1000 + 1800) * 64 + 1800 item biases
    assert 0 < float(m["NDCG@10 (test)"]) < 1 and m["Size"].endswith("KiB")
    assert at.success[0].value.startswith("Trained mf dim 64 in ")
    specs = chart_specs(at)
    assert len(specs) == 2 and len(specs[1]["data"][0]["x"]) == 2  # validation NDCG@10 of both epochs
    assert "mf dim 64, test NDCG@10" in at.sidebar.caption[1].value
    assert not at.button(key="teacher_train").disabled


def test_invalid_settings_are_refused_before_a_job_starts():
    at = open_page("app_pages/teacher.py")
    at.selectbox(key="teacher_family").set_value("sasrec")
    at.number_input(key="teacher_dim").set_value(7)
    at.button(key="teacher_train").click().run()
    assert "Not started" in at.error[0].value and "dim=7" in at.error[0].value
    assert state.runner().snapshots() == []


def test_a_job_outlives_its_session_and_can_be_stopped_from_a_new_one():
    train_teacher(epochs=200).run()  # this "tab" is then closed
    at = open_page("app_pages/teacher.py")  # a reload: a new session finds the running job
    assert at.get("progress") and at.button(key="teacher_stop").disabled is False
    at.sidebar.toggle(key=state.PAUSE_KEY).set_value(True).run()
    assert any("Live updates are paused" in c.value for c in at.caption)
    at.button(key="teacher_stop").click().run()
    run_until(at, lambda a: bool(a.warning), timeout=60, what="the stop")
    assert "Stopped" in at.warning[0].value
    assert state.runner().snapshots()[0].status == "cancelled"


def test_a_failed_job_shows_its_error_where_it_was_started(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")
    monkeypatch.setattr("distill_core.jobs.train_model", boom)
    at = train_teacher().run()
    run_until(at, lambda a: bool(a.error), timeout=60, what="the error")
    assert "The job failed: RuntimeError: the GPU caught fire" in at.error[0].value
    assert not at.button(key="teacher_train").disabled  # the app keeps working


# ----------------------------------------------------------------------------- distill + recommendations
def test_distill_then_recommendations_show_teacher_distilled_and_plain():
    run_until(train_teacher().run(), lambda a: "NDCG@10 (test)" in metrics(a), what="the teacher")

    at = open_page("app_pages/distill.py")
    assert "Teacher: entropy" in metrics(at) and "Distilled student: entropy" not in metrics(at)
    assert not any("cross-family" in c.value for c in at.main.caption)  # an mf teacher: same family
    at.number_input(key="distill_epochs").set_value(2)
    at.number_input(key="distill_patience").set_value(1)
    at.slider(key="distill_alpha").set_value(0.3)
    at.button(key="distill_train").click().run()
    assert {"CE (hard labels)", "KL (soft labels)"} <= set(metrics(at))
    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the students")
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["Teacher", "Distilled student", "Plain student"]
    assert table["params"].tolist()[1] == table["params"].tolist()[2] < table["params"].tolist()[0]
    val = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Validation NDCG@10")
    assert {d["name"] for d in val["data"]} == {"Distilled student", "Plain student"}
    assert any("Teacher (best" in a["text"] for a in val["layout"]["annotations"])  # the teacher's line

    soft = metrics(at)
    assert {"Teacher: entropy", "Distilled student: entropy", "Plain student: entropy"} <= set(soft)
    at.slider(key="distill_T").set_value(10.0).run()  # redraws at once, nothing retrained
    hot = metrics(at)
    assert float(hot["Teacher: entropy"].split()[0]) > float(soft["Teacher: entropy"].split()[0])
    assert len(state.store().runs(kind="student_kd")) == 1
    assert state.store().runs(kind="student_kd")[0].config["train"]["patience"] == 1

    at.switch_page("app_pages/recommendations.py").run()
    assert not at.exception and not at.error
    recs = at
    at = open_page("app_pages/distill.py")  # same settings again: the stored plain student is reused
    at.number_input(key="distill_epochs").set_value(2)
    at.number_input(key="distill_patience").set_value(1)
    at.slider(key="distill_alpha").set_value(0.3)
    at.slider(key="distill_T").set_value(10.0)
    at.button(key="distill_train").click().run()
    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the second student")
    assert any("it was reused" in c.value for c in at.main.caption)
    assert len(state.store().runs(kind="student_kd")) == 2 and len(state.store().runs(kind="student_plain")) == 1
    assert at.dataframe[0].value["params"].tolist()[1:] == table["params"].tolist()[1:]

    at = recs
    assert [d.value.shape[0] for d in at.dataframe] == [len(at.dataframe[0].value), 10, 10, 10]
    assert {"overlap@10: teacher vs distilled", "overlap@10: teacher vs plain", "Spearman: teacher vs distilled",
            "Spearman: teacher vs plain"} <= set(metrics(at))
    at.slider(key="rec_k").set_value(5).run()
    at.switch_page("app_pages/data.py").run()
    at.switch_page("app_pages/recommendations.py").run()  # settings survive a page switch
    assert at.slider(key="rec_k").value == 5
    assert [d.value.shape[0] for d in at.dataframe][1:] == [5, 5, 5] and "overlap@5: teacher vs plain" in metrics(at)
    at.button(key="rec_user_random").click().run()
    assert not at.error and at.text_input(key="rec_user").value
    at.text_input(key="rec_user").set_value("no-such-user").run()
    assert "is not in dataset 'sample'" in at.error[0].value


def test_distill_page_advises_on_a_sequential_teacher_and_an_mf_student():
    at = open_page("app_pages/teacher.py")
    at.selectbox(key="teacher_family").set_value("sasrec")
    at.number_input(key="teacher_dim").set_value(16)
    at.number_input(key="teacher_epochs").set_value(1)
    at.button(key="teacher_train").click()
    run_until(at.run(), lambda a: "NDCG@10 (test)" in metrics(a), what="the sasrec teacher")
    at = open_page("app_pages/distill.py")
    advice = [c.value for c in at.main.caption if "cross-family" in c.value]
    assert len(advice) == 1 and "refreshed" in advice[0] and "Sweep page" in advice[0]
    at.selectbox(key="distill_family").set_value("sasrec").run()  # same family: per-step, no advice
    assert not at.exception and not any("cross-family" in c.value for c in at.main.caption)


def test_distill_page_size_budget_picks_the_largest_dim_within_the_share_and_shows_the_share():
    from distill_core import ModelSpec
    from distill_core.models import MF

    run_until(train_teacher(epochs=1).run(), lambda a: "NDCG@10 (test)" in metrics(a), what="the teacher")
    teacher = state.store().runs(kind="teacher")[0]
    users, items = 1000, 1800  # the sample
    t_params = MF(ModelSpec(**teacher.config["model"]), users, items).n_params()
    at = open_page("app_pages/distill.py")
    six = MF(ModelSpec("mf", 6), users, items).n_params()
    assert caption(at, "Student size:").startswith(f"Student size: mf dim 6: {six:,} parameters, "
                                                   f"{six / t_params:.3f} of the teacher's {t_params:,}")
    at.toggle(key="distill_budget").set_value(True).run()
    at.number_input(key="distill_ratio").set_value(0.05).run()
    dim = max(d for d in range(1, 65) if MF(ModelSpec("mf", d), users, items).n_params() <= 0.05 * t_params)
    n = MF(ModelSpec("mf", dim), users, items).n_params()
    assert not at.exception and not at.error and dim != 6
    assert caption(at, "Student size:") == (f"Student size: mf dim {dim}: {n:,} parameters, {n / t_params:.3f} of "
                                            f"the teacher's {t_params:,} on this dataset (1,000 users, 1,800 items), "
                                            f"the largest mf student within 0.05 of the teacher.")
    at.number_input(key="distill_epochs").set_value(1)
    at.number_input(key="distill_patience").set_value(1)
    at.button(key="distill_train").click().run()
    run_until(at, lambda a: "What the students reached (test split)" in subheaders(a), what="the students")
    assert {r.config["model"]["dim"] for r in state.store().runs() if r.kind != "teacher"} == {dim}

    at.number_input(key="distill_ratio").set_value(0.001).run()  # below even dim 1
    assert "even the smallest mf student (dim 1)" in at.error[0].value
    assert not at.get("button") or all(b.key != "distill_train" for b in at.button)


# ----------------------------------------------------------------------------- overview
def test_demo_runs_live_and_ends_with_the_three_models(monkeypatch):
    monkeypatch.setattr(state, "DEMO", TINY_DEMO)
    at = open_page(PAGES[0])
    assert at.info and {p.proto.page for p in at.get("page_link")} == {"data", "teacher", "distill", "recommendations"}
    at.button(key="demo_run").click().run()
    assert at.get("progress") and not at.info
    run_until(at, lambda a: "What the demo reached (test split)" in subheaders(a), what="the demo")
    assert at.dataframe[0].value["model"].tolist() == ["Teacher", "Distilled student", "Plain student"]
    loss = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "Training loss")
    names = {d["name"] for d in loss["data"]}
    assert {"Teacher: CE (hard labels)", "Distilled student: KL (soft labels)",
            "Plain student: CE (hard labels)"} <= names
    assert "done in" in at.get("progress")[0].proto.text


# ----------------------------------------------------------------------------- chart frames
def test_step_frame_keeps_kl_and_total_only_for_the_distilled_student():
    steps = [{"phase": "teacher", "t": 1, "ce": 7.0, "kl": 0.0, "total": 7.0},
             {"phase": "student_kd", "t": 2, "ce": 6.0, "kl": 0.5, "total": 3.4},
             {"phase": "student_plain", "t": 3, "ce": 6.5, "kl": 0.0, "total": 6.5}]
    df = charts.steps_frame(steps)
    assert sorted(zip(df["step"], df["series"], df["loss"])) == [
        (1, "Teacher: CE (hard labels)", 7.0), (2, "Distilled student: CE (hard labels)", 6.0),
        (2, "Distilled student: KL (soft labels)", 0.5), (2, "Distilled student: total loss", 3.4),
        (3, "Plain student: CE (hard labels)", 6.5)]
    assert charts.steps_frame([]).empty and charts.epochs_frame([]).empty
    ep = charts.epochs_frame([{"phase": "student_kd", "epoch": 1.0, "val_ndcg@10": 0.1, "val_hr@10": 0.2}])
    assert ep.to_dict("records") == [{"epoch": 1, "model": "Distilled student", "val_ndcg@10": 0.1, "val_hr@10": 0.2}]


def test_live_loss_chart_thins_long_series_to_bucket_means_and_keeps_the_last_step():
    """A live chart is redrawn every second: a long series is drawn as at most LIVE_POINTS bucket means,
    whose values match numpy's means of the same buckets; short series are drawn point for point."""
    rng = np.random.default_rng(0)
    n = 3 * charts.LIVE_POINTS + 7
    steps = [{"phase": "student_kd", "t": t, "ce": float(rng.uniform(5, 7)), "kl": 0.3, "total": 3.0}
             for t in range(1, n + 1)] + [{"phase": "student_plain", "t": n + 1, "ce": 6.0, "kl": 0.0, "total": 6.0}]
    fig = charts.loss_curves(charts.steps_frame(steps))
    by = {d.name: d for d in fig.data}
    ce = by["Distilled student: CE (hard labels)"]
    assert len(ce.x) == charts.LIVE_POINTS and ce.x[-1] == n and list(ce.x) == sorted(ce.x)
    y = np.array([s["ce"] for s in steps[:n]])
    edges = np.linspace(0, n, charts.LIVE_POINTS + 1).round().astype(int)
    np.testing.assert_allclose(ce.y, [y[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    assert list(by["Plain student: CE (hard labels)"].y) == [6.0] and fig.layout.yaxis.type == "log"
    # a series keeps its colour when another phase's series come before it in the chart
    with_teacher = charts.loss_curves(charts.steps_frame([{"phase": "teacher", "t": 0, "ce": 7.0, "kl": 0.0,
                                                           "total": 7.0}] + steps))
    assert {d.name: d.line.color for d in with_teacher.data if d.name in by} == {d.name: d.line.color for d in fig.data}
    assert len({d.line.color for d in with_teacher.data}) == len(with_teacher.data)


def test_streamlit_does_not_collect_garbage_after_every_live_poll():
    """Streamlit's default full gc after each script run held the GIL 2x a second and slowed training
    under a live page 3x (docs: .streamlit/config.toml); the setting must stay off."""
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["runner"]["postScriptGC"] is False


def test_first_start_on_a_new_machine_does_not_stop_at_streamlits_email_prompt():
    """Found by hand: `bash scripts/dashboard.sh` on a machine without ~/.streamlit/credentials.toml waited
    at an "Email:" prompt instead of serving the dashboard."""
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["showEmailPrompt"] is False


# ----------------------------------------------------------------------------- every page, with stored models
def _store_teacher_and_students() -> None:
    """A stored mf teacher and one distilled student with its plain twin on the sample (one epoch each), so
    that every page gets past its "no model yet" guard."""
    from distill_core import DistillConfig, ModelSpec, load_sample
    from distill_core.jobs import ladder_job, teacher_job
    from distill_core.runner import JobRunner
    ds, one, runner = load_sample(), TrainConfig(epochs=1, lr=5e-3), JobRunner()
    try:
        snap = runner.wait(runner.submit("t", teacher_job(ds, ModelSpec("mf", 16), one, state.store())), timeout=300)
        assert snap.status == "done", snap.error
        snap = runner.wait(runner.submit("l", ladder_job(ds, snap.result, "mf", (2,), one, DistillConfig(0.5, 2.0),
                                                         state.store())), timeout=300)
        assert snap.status == "done", snap.error
    finally:
        runner.shutdown()


def stray_nones(at: AppTest) -> list[str]:
    """Text elements that read just "None": what Streamlit's magic writes (``st.write(None)``, a markdown
    element "`None`") for an expression statement that evaluates to None, e.g. ``a() if x else b()``."""
    return [f"{kind} {e.value!r}" for kind in ("markdown", "text", "caption", "code")
            for e in at.get(kind) if str(e.value).strip().strip("`").strip() == "None"]


def test_no_page_prints_a_stray_none_with_or_without_stored_models():
    at = open_page(PAGES[0])
    registered = {str(Path(p["script_path"]).relative_to(ROOT)) for p in at._registered_pages.values()}
    assert registered == set(PAGES), "PAGES must list every page app.py registers"
    for stored in (False, True):
        if stored:
            _store_teacher_and_students()
        for page in PAGES:
            at = open_page(page)
            assert not stray_nones(at), f"{page} (stored models: {stored}) prints {stray_nones(at)}"
            if stored and page == "app_pages/compare.py":  # past its guard: the chart is drawn
                assert chart_specs(at)
