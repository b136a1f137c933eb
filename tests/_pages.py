"""Helpers of the page tests (test_pages.py and test_page_*.py): open a page of the app through AppTest, rerun
it as the live fragment would, and read its metrics, captions and charts."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from streamlit.testing.v1 import AppTest

from conftest import ROOT



PAGES = ["app_pages/overview.py", "app_pages/data.py", "app_pages/teacher.py", "app_pages/distill.py",
         "app_pages/recommendations.py", "app_pages/compare.py", "app_pages/sweep.py", "app_pages/who_gains.py",
         "app_pages/loss_lab.py", "app_pages/history.py"]
WIDGETS = ["button", "number_input", "selectbox", "multiselect", "slider", "toggle", "text_input", "text_area",
           "file_uploader", "radio", "checkbox"]


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


def stored_sample_teacher() -> str:
    """An mf teacher of the bundled sample (1,000 users, 1,800 items, one epoch) in the test's private store; its
    run id (the method pages' tests: test_page_methods.py, test_page_compare_method.py)."""
    from distill_core import ModelSpec, TrainConfig
    from distill_core.runner import JobRunner
    from distill_core.workflows import teacher_job
    from ui import registry

    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(registry.sample(), ModelSpec("mf", 16),
                                                            TrainConfig(epochs=1, batch_size=256, device="cpu"),
                                                            registry.store())), 120)
    assert snap.status == "done", snap.error
    return snap.result


def open_script(page: str) -> AppTest:
    """``page`` (e.g. ``app_pages/distill.py``) on its own, without app.py's navigation."""
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def choose(at: AppTest, key: str, value: object) -> AppTest:
    """Set the selectbox ``key`` to ``value`` and rerun."""
    at.selectbox(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    return at

