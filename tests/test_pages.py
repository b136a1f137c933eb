"""Every page of the dashboard through streamlit.testing.v1.AppTest, on the bundled sample: each renders with
help on every control, says what to do without a teacher, and never prints a stray "None". Each page's own
tests are in test_page_<page>.py, their helpers in _pages.py; each test stops what it started.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import TrainConfig
from ui import registry, session

from _pages import chart_specs, open_page, PAGES, WIDGETS
from conftest import ROOT


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # the registry of this test's private store


# ----------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_the_sample_with_help_on_every_control(page):
    at = open_page(page)
    assert at.title[0].value
    assert "sample (ml-latest): 1,000 users, 1,800 items" in at.sidebar.caption[0].value
    assert at.sidebar.toggle(key=session.PAUSE_KEY).value is False
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


# ----------------------------------------------------------------------------- every page, with stored models
def _store_teacher_and_students() -> None:
    """A stored mf teacher and one distilled student with its plain twin on the sample (one epoch each), so
    that every page gets past its "no model yet" guard."""
    from distill_core import DistillConfig, ModelSpec, load_sample
    from distill_core.workflows import ladder_job, teacher_job
    from distill_core.runner import JobRunner
    ds, one, runner = load_sample(), TrainConfig(epochs=1, lr=5e-3), JobRunner()
    try:
        snap = runner.wait(runner.submit("t", teacher_job(ds, ModelSpec("mf", 16), one, registry.store())), timeout=300)
        assert snap.status == "done", snap.error
        snap = runner.wait(runner.submit("l", ladder_job(ds, snap.result, "mf", (2,), one, DistillConfig(0.5, 2.0),
                                                         registry.store())), timeout=300)
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
