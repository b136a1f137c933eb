"""The Teacher page (app_pages/teacher.py) through AppTest, on the bundled sample.

AppTest does not drive ``st.fragment(run_every=...)``, so a live section is polled by calling ``run()``
again (_pages.run_until); every job is trained with 2 epochs and each test stops what it started.
"""
from __future__ import annotations

import pytest

from ui import registry, session

from _pages import chart_specs, metrics, open_page, run_until, train_teacher


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # the registry of this test's private store


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
    assert registry.runner().snapshots() == []


def test_a_job_outlives_its_session_and_can_be_stopped_from_a_new_one():
    train_teacher(epochs=200).run()  # this "tab" is then closed
    at = open_page("app_pages/teacher.py")  # a reload: a new session finds the running job
    assert at.get("progress") and at.button(key="teacher_stop").disabled is False
    at.sidebar.toggle(key=session.PAUSE_KEY).set_value(True).run()
    assert any("Live updates are paused" in c.value for c in at.caption)
    at.button(key="teacher_stop").click().run()
    run_until(at, lambda a: bool(a.warning), timeout=60, what="the stop")
    assert "Stopped" in at.warning[0].value
    assert registry.runner().snapshots()[0].status == "cancelled"


def test_a_failed_job_shows_its_error_where_it_was_started(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")
    monkeypatch.setattr("distill_core.workflows.record.train_model", boom)
    at = train_teacher().run()
    run_until(at, lambda a: bool(a.error), timeout=60, what="the error")
    assert "The job failed: RuntimeError: the GPU caught fire" in at.error[0].value
    assert not at.button(key="teacher_train").disabled  # the app keeps working
