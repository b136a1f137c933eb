"""The Overview page's demo (app_pages/overview.py) through AppTest, on the bundled sample.

AppTest does not drive ``st.fragment(run_every=...)``, so a live section is polled by calling ``run()``
again (_pages.run_until); every job is trained with 2 epochs and each test stops what it started.
"""
from __future__ import annotations

import pytest

from distill_core import RunConfig, TrainConfig
from distill_core import config
from ui import registry

from _pages import chart_specs, open_page, PAGES, run_until, subheaders


TINY_DEMO = RunConfig(teacher_train=TrainConfig(epochs=2), student_train=TrainConfig(epochs=2))


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # the registry of this test's private store


def test_demo_runs_live_and_ends_with_the_three_models(monkeypatch):
    monkeypatch.setattr(config, "DEMO", TINY_DEMO)
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
