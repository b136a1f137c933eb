"""The Loss lab: its engine against numpy by hand and torch.nn.functional, and its page through AppTest."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from distill_core import ConfigError, DistillConfig, kd_loss
from distill_core.losslab import (GRAD_PLAIN, GRAD_SCALED, LOGITS, PROBABILITIES, grad_norms, loglog_slope, loss_lab,
                                  normalisation_check, parse_vector, per_class_frame, softened_frame)

from conftest import ROOT

P, Q, ALPHA = np.array([0.1, 0.3, 0.4, 0.1]), np.array([0.2, 0.35, 0.3, 0.15]), 0.7
PAGE = str(ROOT / "app_pages" / "loss_lab.py")


def _np_softmax(z, T: float) -> np.ndarray:
    e = np.exp(np.asarray(z, dtype=np.float64) / T - np.max(np.asarray(z) / T))
    return e / e.sum()


def _ce_kl(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """The textbook formulas on the vectors exactly as given (by hand, no clipping, no normalising)."""
    return float(-np.sum(p * np.log(q))), float(np.sum(p * np.log(p / q)))


# ----------------------------------------------------------------------------- engine
def test_textbook_example_as_written_and_normalised_against_numpy():
    chk = normalisation_check(P.tolist(), Q.tolist(), ALPHA)
    assert chk.sum_p == pytest.approx(0.9) and chk.sum_q == pytest.approx(1.0)
    ce_raw, kl_raw = _ce_kl(P, Q)
    assert (chk.as_written.ce, chk.as_written.kl) == pytest.approx((ce_raw, kl_raw), rel=1e-12)
    assert chk.as_written.kl < 0 and "negative" in chk.as_written.notes[0]  # why the as-written reading is wrong
    assert chk.as_written.total == pytest.approx(ALPHA * ce_raw + (1 - ALPHA) * kl_raw)
    ce, kl = _ce_kl(P / 0.9, Q)
    assert (chk.normalised.ce, chk.normalised.kl) == pytest.approx((ce, kl), rel=1e-12)
    assert chk.normalised.total == pytest.approx(ALPHA * ce + (1 - ALPHA) * kl)
    # the figures quoted in the report: wrong 1.1472 / -0.0410 / 0.7907, correct 1.2747 / 0.0598 / 0.9102
    assert (round(ce_raw, 4), round(kl_raw, 4), round(chk.as_written.total, 4)) == (1.1472, -0.041, 0.7907)
    assert (round(ce, 4), round(kl, 4), round(chk.normalised.total, 4)) == (1.2747, 0.0598, 0.9102)


def test_normalisation_check_with_both_vectors_off_and_with_distributions():
    p, q = np.array([0.5, 1.0, 2.5]), np.array([1.0, 0.5, 0.5])  # sums 4 and 2
    chk = normalisation_check(p.tolist(), q.tolist(), 0.3)
    assert (chk.as_written.ce, chk.as_written.kl) == pytest.approx(_ce_kl(p, q), rel=1e-12)
    assert chk.as_written.ce_per_class == pytest.approx((-p * np.log(q)).tolist())
    assert chk.as_written.entropy_p == pytest.approx(float(-np.sum(p * np.log(p))))
    assert (chk.normalised.ce, chk.normalised.kl) == pytest.approx(_ce_kl(p / 4, q / 2), rel=1e-12)
    assert normalisation_check([0.25, 0.75], [0.5, 0.5], 0.5).as_written is None


def test_logits_form_matches_torch_functional():
    g = torch.Generator().manual_seed(3)
    t, s = (torch.randn(6, generator=g, dtype=torch.float64) * 2).tolist(), torch.randn(6, generator=g).tolist()
    alpha, T, y = 0.4, 3.0, 5
    res = loss_lab(LOGITS, t, s, alpha, y, T)
    st, tt = torch.tensor([s], dtype=torch.float64), torch.tensor([t], dtype=torch.float64)
    kl = F.kl_div(F.log_softmax(st / T, -1), F.softmax(tt / T, -1), reduction="batchmean").item()
    ce_y = F.cross_entropy(st, torch.tensor([y])).item()
    p_t, q_t = _np_softmax(t, T), _np_softmax(s, T)
    assert res.textbook.kl == pytest.approx(kl, rel=1e-10)
    assert res.textbook.ce == pytest.approx(float(-np.sum(p_t * np.log(q_t))), rel=1e-10)
    assert res.hard_ce == pytest.approx(ce_y, rel=1e-10)
    assert res.kd_total == pytest.approx(alpha * ce_y + (1 - alpha) * T * T * kl, rel=1e-10)
    assert res.student_t1 == pytest.approx(_np_softmax(s, 1.0).tolist())
    assert res.check is None and res.temperature == T


def test_probability_form_equals_kd_loss_at_T1():
    p, q, y = np.array([0.5, 0.2, 0.2, 0.1]), np.array([0.25, 0.25, 0.4, 0.1]), 1
    res = loss_lab(PROBABILITIES, p.tolist(), q.tolist(), 0.6, y)
    ref = kd_loss(torch.log(torch.tensor(q[None])), torch.tensor([y]), torch.log(torch.tensor(p[None])),
                  DistillConfig(0.6, 1.0))
    assert res.hard_ce == pytest.approx(-np.log(q[y]))
    assert res.kd_total == pytest.approx(ref.total.item(), rel=1e-10)
    assert res.teacher_logits == pytest.approx(np.log(p).tolist())
    frame = per_class_frame(res).groupby("term")["nats"].sum()
    assert sorted(frame.round(10).tolist()) == sorted(np.round([res.textbook.ce, res.textbook.kl, res.hard_ce], 10))


def test_zero_probabilities():
    res = loss_lab(PROBABILITIES, [0.0, 0.5, 0.5], [0.2, 0.3, 0.5], 0.5, 2)
    assert res.textbook.kl == pytest.approx(0.5 * np.log(0.5 / 0.3) + 0.5 * np.log(0.5 / 0.5))
    assert res.teacher_logits is None and "logit -inf" in res.notes[0]
    res = loss_lab(PROBABILITIES, [0.5, 0.5], [1.0, 0.0], 0.5, 0)
    assert res.textbook.ce == np.inf and res.hard_ce == pytest.approx(0.0)


def test_softened_frame_against_numpy():
    t, s = [3.0, 1.5, 4.0, 0.5], [2.0, 2.0, 2.5, 1.0]
    for T in (0.5, 2.0, 50.0):
        f = softened_frame(t, s, T)
        assert f[f.model == "teacher p_T"].probability.tolist() == pytest.approx(_np_softmax(t, T).tolist())
        assert f[f.model == "student q_T"].probability.tolist() == pytest.approx(_np_softmax(s, T).tolist())
    assert softened_frame(t, s, 1000.0).probability.tolist() == pytest.approx([0.25] * 8, abs=2e-3)


def test_grad_norms_closed_form_and_one_over_T_squared():
    t, s = np.array([3.0, 1.5, 4.0, 0.5]), np.array([2.0, 2.0, 2.5, 1.0])
    g = grad_norms(t.tolist(), s.tolist())
    plain, scaled = g[g.term == GRAD_PLAIN], g[g.term == GRAD_SCALED]
    for T, norm in zip(plain["T"], plain["grad_norm"]):  # d KL(p_T || q_T) / ds = (q_T - p_T) / T
        assert norm == pytest.approx(np.linalg.norm((_np_softmax(s, T) - _np_softmax(t, T)) / T), rel=1e-9)
    assert scaled["grad_norm"].to_numpy() == pytest.approx((plain["grad_norm"] * plain["T"] ** 2).to_numpy())
    d = s - t
    assert scaled["grad_norm"].iloc[-1] == pytest.approx(np.linalg.norm(d - d.mean()) / len(d), rel=2e-2)
    assert loglog_slope(g, GRAD_PLAIN) == pytest.approx(-2.0, abs=0.02)
    assert loglog_slope(g, GRAD_SCALED) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("call, match", [
    (lambda: parse_vector("teacher p", "0.1, x"), "teacher p: 'x' is not a number"),
    (lambda: parse_vector("student q", "0.5"), "student q needs at least 2 numbers"),
    (lambda: parse_vector("teacher logits t", "1, inf"), "teacher logits t: 'inf' is not a finite number"),
    (lambda: loss_lab(PROBABILITIES, [-0.1, 1.1], [0.5, 0.5], 0.5, 0), r"p \(teacher\) has a negative entry"),
    (lambda: loss_lab(PROBABILITIES, [0.5, 0.5], [0.2, 0.3, 0.5], 0.5, 0), "teacher p and student q must have"),
    (lambda: loss_lab(LOGITS, [1.0, 2.0], [1.0], 0.5, 0, 2.0), "teacher logits and student logits must have"),
    (lambda: loss_lab(PROBABILITIES, [0.5, 0.5], [0.5, 0.5], 1.5, 0), "alpha must be between 0 and 1"),
    (lambda: loss_lab(LOGITS, [1.0, 2.0], [1.0, 0.0], 0.5, 0, 0.0), "temperature must be a finite number > 0"),
    (lambda: loss_lab(LOGITS, [1.0, 2.0], [1.0, 0.0], 0.5, 0, -1.0), "temperature must be a finite number > 0"),
    (lambda: loss_lab(PROBABILITIES, [0.5, 0.5], [0.5, 0.5], 0.5, 2), "hard label y must be a class index"),
    (lambda: loss_lab(PROBABILITIES, [0.5, 0.5], [0.5, 0.5], 0.5, -1), "hard label y must be a class index"),
])
def test_bad_input_names_the_field(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# ----------------------------------------------------------------------------- page
def _open() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _ys(spec: dict) -> dict[str, np.ndarray]:
    """Each trace's y values (plotly writes numpy arrays as base64 'bdata')."""
    out = {}
    for tr in spec["data"]:
        y = tr["y"]
        out[tr["name"]] = (np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"]) if isinstance(y, dict)
                           else np.array(y))
    return out


def _metrics(at: AppTest) -> dict[str, float]:
    return {m.label: float(m.value) for m in at.metric}


def test_page_opens_on_the_textbook_example_with_correct_values_marked():
    at = _open()
    assert at.title[0].value == "Loss lab"
    assert "sums to 0.9" in at.warning[0].value and "never negative" in at.warning[0].value
    ce_raw, kl_raw = _ce_kl(P, Q)
    ce, kl = _ce_kl(P / P.sum(), Q)
    readings = at.dataframe[0].value.set_index("reading")
    wrong = readings.loc["as written (wrong)"]
    right = readings.loc[[r for r in readings.index if "correct" in r][0]]
    assert (wrong["CE(p, q)"], wrong["KL(p ‖ q)"]) == pytest.approx((ce_raw, kl_raw), rel=1e-9)
    assert (right["CE(p, q)"], right["KL(p ‖ q)"], right["total"]) == pytest.approx(
        (ce, kl, ALPHA * ce + (1 - ALPHA) * kl), rel=1e-9)
    m = _metrics(at)  # shown to 4 decimals, and the correct (normalised) ones
    assert m["CE(p, q)"] == pytest.approx(ce, abs=5e-5) and m["KL(p ‖ q)"] == pytest.approx(kl, abs=5e-5)
    assert m["Total (textbook)"] == pytest.approx(ALPHA * ce + (1 - ALPHA) * kl, abs=5e-5)
    y = int(at.number_input(key="loss_lab_y").value)
    assert m["CE(y, q₁)"] == pytest.approx(-np.log(Q[y]), abs=5e-5)
    assert m["Total (training)"] == pytest.approx(ALPHA * -np.log(Q[y]) + (1 - ALPHA) * kl, abs=5e-5)
    assert any(r"\mathrm{CE}(p,q) = -\sum_c p_c \log q_c" in x.value for x in at.latex)
    charts = _charts(at)
    assert set(charts) == {"loss_lab_per_class", "loss_lab_softened", "loss_lab_grad"}
    for spec in charts.values():
        assert spec["layout"]["xaxis"]["title"]["text"] and spec["layout"]["yaxis"]["title"]["text"]
    bars = _ys(charts["loss_lab_per_class"])
    assert bars["KL(p ‖ q): p_c log(p_c / q_c)"] == pytest.approx(P / 0.9 * np.log(P / 0.9 / Q))
    grad = charts["loss_lab_grad"]["layout"]
    assert grad["xaxis"]["type"] == "log" and grad["yaxis"]["type"] == "log"
    for kind in ("button", "number_input", "slider", "text_input", "radio"):
        for w in at.get(kind):
            assert w.help and w.key, f"{kind} {w.label!r} lacks a key or help"


def test_changing_T_redraws_the_softened_distributions():
    at = _open()
    before = _ys(_charts(at)["loss_lab_softened"])
    at.slider(key="loss_lab_view_T").set_value(8.0).run()
    after = _ys(_charts(at)["loss_lab_softened"])
    assert not np.allclose(before["teacher p_T"], after["teacher p_T"])
    assert after["teacher p_T"] == pytest.approx(_np_softmax(np.log(P / 0.9), 8.0))
    assert after["student q_T"] == pytest.approx(_np_softmax(np.log(Q), 8.0))


@pytest.mark.parametrize("kind, key, value, match", [
    ("text_input", "loss_lab_p", "0.1, abc, 0.4", "teacher p: 'abc' is not a number"),
    ("text_input", "loss_lab_q", "0.2, -0.35, 0.3, 0.15", "q (student) has a negative entry"),
    ("text_input", "loss_lab_q", "0.5, 0.5", "must have the same length (4 vs 2)"),
    ("number_input", "loss_lab_alpha", 1.5, "alpha must be between 0 and 1"),
    ("number_input", "loss_lab_y", 7, "hard label y must be a class index between 0 and 3"),
])
def test_bad_input_shows_a_message_and_the_page_keeps_running(kind, key, value, match):
    at = _open()
    getattr(at, kind)(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    assert match in at.error[0].value
    assert not at.metric  # nothing computed from bad input
    at.button(key="loss_lab_preset").click().run()  # the preset brings the example back
    assert not at.error and "sums to 0.9" in at.warning[0].value


def test_logits_mode_uses_T_and_refuses_T_zero():
    at = _open()
    at.radio(key="loss_lab_mode").set_value(LOGITS).run()
    t = parse_vector("t", at.text_input(key="loss_lab_t").value)
    s = parse_vector("s", at.text_input(key="loss_lab_s").value)
    at.number_input(key="loss_lab_T").set_value(4.0).run()
    assert not at.exception and not at.warning
    st_, tt = torch.tensor([s], dtype=torch.float64), torch.tensor([t], dtype=torch.float64)
    kl = F.kl_div(F.log_softmax(st_ / 4, -1), F.softmax(tt / 4, -1), reduction="batchmean").item()
    ce_y = F.cross_entropy(st_, torch.tensor([2])).item()
    m = _metrics(at)
    assert m["KL(p ‖ q)"] == pytest.approx(kl, abs=5e-5)
    assert m["Total (training)"] == pytest.approx(ALPHA * ce_y + (1 - ALPHA) * 16 * kl, abs=5e-5)
    at.number_input(key="loss_lab_T").set_value(0.0).run()
    assert not at.exception and "temperature must be a finite number > 0" in at.error[0].value


def test_page_edge_cases_say_why_a_view_is_missing():
    at = _open()
    assert "T^-2.00" in at.caption[-1].value and "T^0.00" in at.caption[-1].value  # the measured slopes
    at.text_input(key="loss_lab_p").set_value("0, 0.5, 0.5, 0").run()  # log 0: no T views
    assert not at.exception and not at.error and "logit -inf" in at.info[0].value
    assert [c.key for c in at.get("plotly_chart")] == ["loss_lab_per_class"]
    at.text_input(key="loss_lab_q").set_value("0, 0.5, 0.5, 0").run()  # q = p: KL 0, no gradient to draw
    assert _metrics(at)["KL(p ‖ q)"] == 0.0
    at.text_input(key="loss_lab_q").set_value("0.5, 0.5, 0, 0").run()  # q = 0 where p > 0: infinite CE and KL
    assert not at.exception and _metrics(at)["KL(p ‖ q)"] == np.inf
    at.radio(key="loss_lab_mode").set_value(LOGITS).run()
    at.text_input(key="loss_lab_s").set_value("4, 2.5, 5, 1.5").run()  # teacher's logits + 1: same softmax
    assert not at.exception and "gradient is 0 at every T" in at.info[0].value
