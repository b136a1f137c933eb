"""The Distill page (app_pages/distill.py) through AppTest, on the bundled sample: distil live and see the
students on the Recommendations page, advice for a cross-family pair, the size budget, and two sessions
distilling at once, each seeing its own progress.

AppTest does not drive ``st.fragment(run_every=...)``, so a live section is polled by calling ``run()``
again (_pages.run_until); each test stops what it started.
"""
from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import DistillConfig, ModelSpec, TrainConfig
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job
from ui import registry

from _pages import caption, chart_specs, metrics, open_page, run_until, subheaders, train_teacher
from conftest import ROOT


FAST = TrainConfig(epochs=1, batch_size=256, device="cpu")


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # jobs an AppTest started in this test's private store


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
    assert len(registry.store().runs(kind="student_kd")) == 1
    assert registry.store().runs(kind="student_kd")[0].config["train"]["patience"] == 1

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
    assert len(registry.store().runs(kind="student_kd")) == 2 and len(registry.store().runs(kind="student_plain")) == 1
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
    teacher = registry.store().runs(kind="teacher")[0]
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
    assert {r.config["model"]["dim"] for r in registry.store().runs() if r.kind != "teacher"} == {dim}

    at.number_input(key="distill_ratio").set_value(0.001).run()  # below even dim 1
    assert "even the smallest mf student (dim 1)" in at.error[0].value
    assert not at.get("button") or all(b.key != "distill_train" for b in at.button)


def distill_session(alpha: float, dim: int) -> AppTest:
    """A browser session on the Distill page with its own settings (not started yet)."""
    at = AppTest.from_file(str(ROOT / "app_pages" / "distill.py"), default_timeout=60)
    at.run()
    at.number_input(key="distill_dim").set_value(dim)
    at.number_input(key="distill_epochs").set_value(1)
    at.slider(key="distill_alpha").set_value(alpha)
    at.run()
    assert not at.exception and not at.error and not at.button(key="distill_train").disabled
    return at


def test_two_sessions_distil_at_once_each_sees_its_own_progress_and_both_runs_are_kept():
    ds = registry.sample()
    runner = JobRunner()
    tid = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", 16), FAST, registry.store())), 60).result
    # Both sessions are open before either starts (a session opened while another's job runs shows that job,
    # so that a reload finds it, and offers Train once it has ended).
    a, b = distill_session(0.2, 4), distill_session(0.8, 8)
    for at in (a, b):
        at.button(key="distill_train").click().run()
        assert not at.exception and not at.error, [e.value for e in at.exception or at.error]
    ja, jb = (s.session_state[f"job:distill:{ds.fingerprint}"] for s in (a, b))
    assert ja != jb
    t = DistillConfig().temperature  # the page's default T, untouched by both sessions
    label = {ja: f"Student mf dim 4 (alpha 0.2, T {t:g})", jb: f"Student mf dim 8 (alpha 0.8, T {t:g})"}
    deadline = time.monotonic() + 240
    done = set()
    while len(done) < 2:
        for at, own, other in ((a, ja, jb), (b, jb, ja)):
            if own in done:
                continue
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            texts = [p.proto.text for p in at.main.get("progress")]
            assert texts and label[own] in texts[0] and label[other] not in " ".join(texts)
            if "What the students reached (test split)" in [s.value for s in at.subheader]:
                table = at.dataframe[0].value
                dim = 4 if own == ja else 8
                assert table["params"].tolist()[1:] == [(ds.n_users + ds.n_items) * dim + ds.n_items] * 2
                done.add(own)
        assert time.monotonic() < deadline, "the two distillations did not finish in time"
        time.sleep(1.0)
    sa, sb = registry.runner().snapshot(ja), registry.runner().snapshot(jb)
    assert sa.status == sb.status == "done"
    assert sa.started < sb.ended and sb.started < sa.ended  # they ran at the same time
    runs = registry.store().runs()
    kd = {r.config["model"]["dim"]: r for r in runs if r.kind == "student_kd"}
    plain = {r.config["model"]["dim"]: r for r in runs if r.kind == "student_plain"}
    assert set(kd) == set(plain) == {4, 8} and {r.status for r in runs} == {"done"}
    assert kd[4].config["distill"]["alpha"] == 0.2 and kd[8].config["distill"]["alpha"] == 0.8
    assert kd[4].parent == kd[8].parent == tid
    for r in list(kd.values()) + list(plain.values()):
        assert len(r.history) == 1 and r.metrics["ndcg@10"] > 0  # its epoch's row and its test metrics
        assert registry.store().load_weights(r.id)["item.weight"].shape[1] == r.config["model"]["dim"]
    assert {sa.runs["student_kd"], sb.runs["student_kd"]} == {kd[4].id, kd[8].id}
