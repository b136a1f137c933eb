"""The charts (ui/charts.py), read from the plotly figures: the Compare page's size-quality chart (every model
drawn large enough to see, latency as a colour with its unit, log-axis ticks that read as numbers: 20k 50k
100k), and the live training charts' frames (each model's loss series, long series thinned to bucket means)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from distill_core import compare
from ui import charts


# what the demo leaves on the sample: sasrec teacher, mf dim 6 students; one plain student not yet measured
FRAME = pd.DataFrame({
    "role": ["teacher", "distilled student", "plain student", "distilled student", "plain student"],
    "model": ["sasrec dim 64", "mf dim 6", "mf dim 6", "mf dim 16", "mf dim 16"],
    "params": [187_336, 18_600, 18_600, 46_800, 46_800],
    "ms_per_1k_users": [120.0, 2.1, 2.0, 3.5, None],
    "NDCG@10": [0.12, 0.09, 0.07, 0.10, 0.08], "run": ["t", "kd6", "p6", "kd16", "p16"]})


def _parse(label: str) -> float:
    """``20k`` -> 20000.0: what a reader takes a tick label to mean."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kM]?)", label)
    assert m, f"tick label {label!r} is not a plain number with k or M"
    return float(m[1]) * {"": 1, "k": 1e3, "M": 1e6}[m[2]]


def drawn_sizes(trace: go.Scatter) -> np.ndarray:
    """Marker sizes in pixels as plotly.js draws them: a single ``size`` as it is; an array through plotly.js's
    ``makeBubbleSizeFn`` (src/traces/scatter/make_bubble_size_func.js), ``sqrt(v / 2 / sizeref)`` by area or
    ``v / 2 / sizeref`` by diameter, at least ``sizemin``: how plotly express's ``size=`` is drawn."""
    m = trace.marker
    if m.size is None or np.ndim(m.size) == 0:
        return np.atleast_1d(float(m.size if m.size is not None else 6))
    v = np.asarray(m.size, dtype=float) / 2 / (m.sizeref or 1.0)
    return np.maximum(np.sqrt(v) if m.sizemode == "area" else v, m.sizemin or 0.0)


def assert_readable(fig: go.Figure) -> None:
    """Every model's marker at least MIN_MARKER_SIZE; the log x axis labelled by ticks that name their value."""
    points = [t for t in fig.data if t.mode != "lines" and any(x is not None for x in t.x)]
    sizes = np.concatenate([drawn_sizes(t) for t in points])
    assert sizes.min() >= charts.MIN_MARKER_SIZE, f"marker sizes {sizes.round(1)} px"
    axis = fig.layout.xaxis
    assert axis.type == "log"
    assert axis.tickvals, "no ticks of its own: plotly's log axis then reads '2 3 4 5 6 7 8 9 100k 2'"
    assert len(axis.tickvals) == len(axis.ticktext) >= 2
    assert [_parse(t) for t in axis.ticktext] == pytest.approx(list(axis.tickvals))
    lo, hi = axis.range
    assert all(lo <= np.log10(v) <= hi for v in axis.tickvals)


def test_size_quality_draws_every_model_visibly_with_latency_as_a_colour_in_ms():
    fig = charts.size_quality(FRAME, "NDCG@10", compare.pareto_mask(FRAME["params"], FRAME["NDCG@10"]))
    assert_readable(fig)
    # 18,600 .. 187,336 parameters, padded by 10^0.12 either side: 14.1k .. 247k; one tick per decade would
    # give only 100k, so 1-2-5 per decade
    assert fig.layout.xaxis.ticktext == ("20k", "50k", "100k", "200k")
    drawn = {}  # run -> (x, y, colour) of the markers that carry data
    for t in fig.data:
        if t.mode == "markers" and t.customdata is not None:
            for x, y, c, run in zip(t.x, t.y, np.broadcast_to(np.asarray(t.marker.color, dtype=object), len(t.x)),
                                    [row[1] for row in t.customdata]):
                drawn[run] = (x, y, c, t.marker.coloraxis)
    assert sorted(drawn) == sorted(FRAME["run"])  # every model once
    for _, row in FRAME.iterrows():
        x, y, c, axis = drawn[row["run"]]
        assert (x, y) == (row["params"], row["NDCG@10"])
        if pd.isna(row["ms_per_1k_users"]):
            assert c == charts.UNMEASURED and axis is None
        else:  # on the shared colour scale, which is log10(ms)
            assert axis == "coloraxis" and c == pytest.approx(np.log10(row["ms_per_1k_users"]))
    bar = fig.layout.coloraxis.colorbar
    assert "ms per 1,000 users" in bar.title.text
    # 2.0 .. 120 ms: 1-2-5 per decade from 2 to 100, at log10 of the value each label names
    assert bar.ticktext == ("2", "5", "10", "20", "50", "100")
    assert list(bar.tickvals) == pytest.approx(np.log10([_parse(t) for t in bar.ticktext]))
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["Pareto frontier", "teacher", "distilled student", "plain student"]


def test_size_quality_with_one_model_without_any_latency():
    one = FRAME.iloc[:1].assign(ms_per_1k_users=[None])
    fig = charts.size_quality(one, "NDCG@10", np.array([True]))
    assert_readable(fig)  # a lone point still gets two labelled ticks around it
    assert [t.marker.color for t in fig.data if t.customdata is not None] == [charts.UNMEASURED]


@pytest.mark.parametrize("lo, hi, want", [
    (14_000, 250_000, ["20k", "50k", "100k", "200k"]),
    (100, 1e7, ["100", "1k", "10k", "100k", "1M", "10M"]),  # wide: one tick per decade
    (1_200, 9_000, ["2k", "3k", "5k"]),
    (25_000, 40_000, ["30k", "40k"]),  # within a decade: 1..9
    (30_000, 31_000, ["30k", "31k"]),  # no round value inside: both ends
    (0.8, 3.0, ["1", "2", "3"]),
])
def test_log_ticks_pick_round_values_in_range_and_label_them_with_units(lo, hi, want):
    vals, text = charts.log_ticks(lo, hi)
    assert text == want
    assert vals == pytest.approx([_parse(t) for t in text])
    assert charts.human_count(1_500_000) == "1.5M" and charts.human_count(999) == "999"


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
