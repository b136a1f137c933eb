"""Plotly figures of the dashboard, and the frames they are drawn from.

Every figure has axis titles with units and ``uirevision`` set, so a live chart that is redrawn
with new points keeps the user's zoom.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from distill_core.compare import ROLES
from distill_core.runs import ROLE_LABELS
from distill_core.views import HEAD_SHARE, SoftLabelView

KIND_COLORS = {"teacher": "#1f77b4", "student_kd": "#ff7f0e", "student_plain": "#7f7f7f"}
COLORS = {ROLE_LABELS[kind]: color for kind, color in KIND_COLORS.items()}  # by display name ("Teacher")
# the step rows keep the KD term under "kl" whatever the method (distillers.base); term_label names it
TERMS = {"ce": "CE (hard labels)", "kl": "KL (soft labels)", "total": "total loss"}
HEIGHT = 340


def term_label(term_name: str = "KL") -> str:
    """The KD term as a chart or a metric names it: ``KL (soft labels)`` for Hinton KD, else the method's
    ``distillers.TERM_NAMES`` entry, e.g. ``RRD (method term)``."""
    return TERMS["kl"] if term_name == "KL" else f"{term_name} (method term)"


def _series(kind: str, term: str) -> str:
    return f"{ROLE_LABELS[kind]}: {TERMS[term]}"  # as steps_frame names them


# one colour per loss series, whatever else is in the chart (a colour must not move as phases start); the KD
# term keeps its colour under any method's name (loss_curves)
KD_TERM_COLOR = "#d62728"
SERIES_COLORS = {_series("teacher", "ce"): KIND_COLORS["teacher"],
                 _series("student_kd", "ce"): KIND_COLORS["student_kd"],
                 _series("student_kd", "kl"): KD_TERM_COLOR, _series("student_kd", "total"): "#8c564b",
                 _series("student_plain", "ce"): KIND_COLORS["student_plain"]}
LIVE_POINTS = 400  # points per loss series in a live chart (more are averaged in buckets)
PALETTE = px.colors.qualitative.Plotly


def _style(fig: go.Figure, x: str, y: str, title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=HEIGHT, uirevision="keep",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend_title_text="")
    return fig


def steps_frame(steps: Iterable[Mapping[str, Any]], term_name: str = "KL") -> pd.DataFrame:
    """Step losses in long form: step, model, term, series, loss. The KD term (``kl``) and the total are kept
    only where there is a teacher's signal (the distilled student); elsewhere the total is the CE. ``term_name``:
    what the distilled student's KD term is (``distillers.TERM_NAMES``: "KL" for Hinton KD, "RRD", ...)."""
    df = pd.DataFrame(list(steps), columns=["phase", "t", "ce", "kl", "total"])
    long = df.melt(id_vars=["phase", "t"], value_vars=["ce", "kl", "total"], var_name="term", value_name="loss")
    long = long[(long["term"] == "ce") | (long["phase"] == "student_kd")]
    long = long.assign(model=long["phase"].map(lambda p: ROLE_LABELS.get(p, p)))
    long = long.assign(series=long["model"] + ": " + long["term"].map(TERMS | {"kl": term_label(term_name)}))
    return long.rename(columns={"t": "step"})[["step", "model", "term", "series", "loss"]]


def epochs_frame(rows: Iterable[Mapping[str, Any]], model: str | None = None) -> pd.DataFrame:
    """Per-epoch rows (a job's ``epochs_log`` or a stored history): epoch, model, val NDCG@10, val HR@10."""
    df = pd.DataFrame(list(rows))
    if df.empty or "val_ndcg@10" not in df:
        return pd.DataFrame(columns=["epoch", "model", "val_ndcg@10", "val_hr@10"])
    names = df["phase"].map(lambda p: ROLE_LABELS.get(p, p)) if model is None else model
    return pd.DataFrame({"epoch": df["epoch"].astype(int), "model": names, "val_ndcg@10": df["val_ndcg@10"],
                         "val_hr@10": df.get("val_hr@10", np.nan)})


def thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: beyond that, consecutive points are averaged in equal buckets
    (the x of a bucket is its last x, so the last point stays where training is)."""
    n = len(x)
    if n <= max_points:
        return x, y
    edges = np.linspace(0, n, max_points + 1).round().astype(int)
    starts, ends = edges[:-1], edges[1:]
    sums = np.add.reduceat(np.asarray(y, dtype=float), starts)
    return np.asarray(x)[ends - 1], sums / (ends - starts)


def _series_traces(df: pd.DataFrame, x: str, y: str, by: str, colors: Mapping[str, str], max_points: int | None,
                   **trace: Any) -> list[go.Scatter]:
    """One line per value of ``by``, in order of appearance (built directly: the live charts are redrawn
    every second in the script thread, and plotly express costs ~10x more per figure)."""
    traces = []
    for i, (name, part) in enumerate(df.groupby(by, sort=False)):
        xs, ys = part[x].to_numpy(), part[y].to_numpy()
        if max_points:
            xs, ys = thin(xs, ys, max_points)
        color = colors.get(name, PALETTE[i % len(PALETTE)])
        traces.append(go.Scatter(x=xs, y=ys, name=str(name), line={"color": color}, **trace))
    return traces


def loss_curves(steps: pd.DataFrame, title: str = "Training loss", max_points: int = LIVE_POINTS) -> go.Figure:
    """Loss per training step (log scale: CE is a few nats, KL a fraction of one); a series longer than
    ``max_points`` is drawn as means of consecutive steps."""
    kd_terms = steps.loc[steps["term"] == "kl", "series"].unique() if "term" in steps else []
    colors = SERIES_COLORS | {name: KD_TERM_COLOR for name in kd_terms}  # "…: RRD (method term)" as the KL's
    fig = go.Figure(_series_traces(steps, "step", "loss", "series", colors, max_points, mode="lines"))
    fig.update_traces(line={"width": 1.5})
    fig.update_yaxes(type="log")
    return _style(fig, "training step (mini-batches since the job started)", "loss (nats, log scale)", title)


def val_curves(epochs: pd.DataFrame, references: Mapping[str, float] | None = None,
               title: str = "Validation NDCG@10") -> go.Figure:
    """Validation NDCG@10 per epoch of each model; ``references`` are drawn as dashed lines."""
    fig = go.Figure(_series_traces(epochs, "epoch", "val_ndcg@10", "model", COLORS, None, mode="lines+markers"))
    for name, value in (references or {}).items():
        fig.add_hline(y=value, line_dash="dash", line_color=COLORS.get(name, "#333"),
                      annotation_text=f"{name} (best {value:.4f})", annotation_position="bottom right")
    fig.update_xaxes(rangemode="tozero")
    return _style(fig, "epoch", "NDCG@10 on the validation split (0-1)", title)


def long_tail(popularity: pd.DataFrame, max_points: int = 600) -> go.Figure:
    """Interactions per item against the item's popularity rank (log-log), head marked."""
    n = len(popularity)
    idx = np.unique(np.round(np.geomspace(1, n, min(n, max_points))).astype(int) - 1) if n else np.array([], int)
    pts = popularity.iloc[idx]
    fig = px.line(pts, x="rank", y="interactions", log_x=True, log_y=True, hover_data=["title", "genres"])
    n_head = max(1, int(round(HEAD_SHARE * n)))
    if n:
        share = float(popularity["cumulative_share"].iloc[n_head - 1])
        fig.add_vline(x=n_head, line_dash="dash", line_color="#d62728",
                      annotation_text=f"top {HEAD_SHARE:.0%} of items: {share:.0%} of interactions")
    return _style(fig, "item popularity rank (1 = most popular, log scale)", "interactions per item (log scale)",
                  "Item popularity (long tail)")


def user_activity(hist: pd.DataFrame) -> go.Figure:
    """Users per activity bin (log-spaced bins)."""
    labels = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(hist["bin_start"], hist["bin_end"])]
    fig = px.bar(hist.assign(interactions=labels), x="interactions", y="users")
    return _style(fig, "interactions per user (log-spaced bins)", "users", "User activity")


def soft_labels(view: SoftLabelView) -> go.Figure:
    """Each model's probability of each shown item at temperature T, bars side by side."""
    df = view.items.assign(label=[f"{t[:28]}…" if len(t) > 29 else t for t in view.items["title"]])
    long = df.melt(id_vars=["label", "title", "genres", "seen"], value_vars=list(view.models),
                   var_name="model", value_name="probability")
    fig = px.bar(long, x="label", y="probability", color="model", barmode="group", color_discrete_map=COLORS,
                 hover_data={"title": True, "genres": True, "seen": True, "label": False})
    fig.update_xaxes(tickangle=-35)
    return _style(fig, "item (sorted by the teacher's probability)",
                  f"probability, softmax(logits / {view.temperature:g}) (0-1)",
                  f"Soft labels at T = {view.temperature:g}")


def compare(table: pd.DataFrame) -> go.Figure:
    """Test NDCG@10 and HR@10 of each model, grouped."""
    long = table.melt(id_vars=["model", "params"], value_vars=["NDCG@10", "HR@10"], var_name="metric")
    fig = px.bar(long, x="metric", y="value", color="model", barmode="group", color_discrete_map=COLORS,
                 hover_data=["params"], text_auto=".3f")
    return _style(fig, "metric on the test split (@10 items)", "value (0-1)", "Teacher vs distilled vs plain student")


ROLE_COLORS = {ROLES[kind]: color for kind, color in KIND_COLORS.items()}  # by compare's role ("teacher")
ROLE_SYMBOLS = {"teacher": "star", "distilled student": "diamond", "plain student": "circle"}
MARKER_SIZE = 15  # every model the same readable size: latency is the marker's colour, not its area
MIN_MARKER_SIZE = 10  # smallest marker a chart here may draw (a 2-pixel dot is missed at a glance)
LATENCY_SCALE = "Viridis_r"  # fast: bright yellow, slow: dark purple
UNMEASURED = "#d9d9d9"


def human_count(n: float) -> str:
    """``20k``, ``1.5M``, ``500``: a count as a tick label."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:g}{unit}"
    return f"{n:g}"


def log_ticks(lo: float, hi: float, fmt: Callable[[float], str] = human_count) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis over [lo, hi] (lo > 0): the sparsest of 1 / 1-2-5 / 1-2-3-5 /
    1..9 per decade that gives three ticks in range, so the labels read ``20k 50k 100k``, never plotly's
    bare mantissas ``2 3 4 ... 100k 2``; both ends (2 significant digits) if even 1..9 gives fewer than two."""
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    vals: list[float] = []
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 5), range(1, 10)):
        vals = [m * 10.0 ** e for e in decades for m in mantissas if lo <= m * 10.0 ** e <= hi]
        if len(vals) >= 3:
            break
    if len(vals) < 2:
        vals = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    return vals, [fmt(v) for v in vals]


def _log_range(values: pd.Series, pad: float = 0.12) -> tuple[float, float]:
    """The padded range of positive ``values`` on a log axis, as (low, high) in data units."""
    v = values[values > 0]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (1.0, 10.0)
    pad = max(pad, (0.5 - np.log10(hi / lo)) / 2)  # a lone point or a narrow spread: half a decade at least
    return lo / 10 ** pad, hi * 10 ** pad


def size_quality(frame: pd.DataFrame, metric: str, frontier: np.ndarray) -> go.Figure:
    """Quality vs parameters (log x) of every model: the marker's shape is its role, its colour the
    scoring latency (log scale, colour bar in ms per 1,000 users; grey: not measured), and the Pareto
    frontier is a dotted line. One size for every marker, so the small fast students are as visible as
    the teacher."""
    df = frame.assign(latency=pd.to_numeric(frame["ms_per_1k_users"], errors="coerce"))
    lat = df["latency"][df["latency"] > 0]
    c_lo, c_hi = (float(lat.min()), float(lat.max())) if len(lat) else (1.0, 10.0)
    if c_hi / c_lo < 1.5:  # all about as fast: a colour bar over a tiny range would exaggerate noise
        c_lo, c_hi = c_lo / 1.5, c_hi * 1.5
    c_vals, c_text = log_ticks(c_lo, c_hi, lambda v: f"{v:g}")
    fig = go.Figure()
    front = df[frontier].sort_values("params")
    if len(front) > 1:  # under the markers
        fig.add_trace(go.Scatter(x=front["params"], y=front[metric], mode="lines", name="Pareto frontier",
                                 line={"dash": "dot", "color": "#2ca02c"}, hoverinfo="skip"))
    outline = {"width": 1.5, "color": "#333"}
    order = {role: i for i, role in enumerate(ROLE_SYMBOLS)}  # teacher, distilled, plain: in the legend too
    for role, part in sorted(df.groupby("role", sort=False), key=lambda g: order.get(g[0], len(order))):
        symbol = ROLE_SYMBOLS.get(role, "circle")
        for measured, rows in part.groupby(part["latency"] > 0, sort=False):
            custom = np.stack([rows["model"], rows["run"], [f"{v:.1f} ms per 1,000 users" if measured else
                                                            "latency not measured" for v in rows["latency"]]], -1)
            # a colour scale has no colour for "unknown": a model without a latency is drawn grey
            color = np.log10(rows["latency"]) if measured else UNMEASURED
            fig.add_trace(go.Scatter(
                x=rows["params"], y=rows[metric], mode="markers", name=role, legendgroup=role, showlegend=False,
                customdata=custom, marker={"symbol": symbol, "size": MARKER_SIZE, "color": color,
                                           "coloraxis": "coloraxis" if measured else None, "line": outline},
                hovertemplate=f"<b>{role}</b> %{{customdata[0]}}<br>%{{x:,}} parameters<br>{metric} %{{y:.4f}}"
                              "<br>%{customdata[2]}<br>run %{customdata[1]}<extra></extra>"))
        # the legend's entry shows the role's shape only (a legend marker cannot show a colour scale)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=role, legendgroup=role,
                                 marker={"symbol": symbol, "size": MARKER_SIZE, "color": "white", "line": outline}))
    x_lo, x_hi = _log_range(pd.to_numeric(df["params"], errors="coerce").dropna())
    x_vals, x_text = log_ticks(x_lo, x_hi)
    fig.update_xaxes(type="log", range=[np.log10(x_lo), np.log10(x_hi)], tickvals=x_vals, ticktext=x_text)
    fig.update_layout(coloraxis={"colorscale": LATENCY_SCALE, "cmin": np.log10(c_lo), "cmax": np.log10(c_hi),
                                 "colorbar": {"title": {"text": "scoring latency<br>(ms per 1,000 users)",
                                                        "side": "right"},
                                              "tickvals": np.log10(c_vals).tolist(), "ticktext": c_text,
                                              "thickness": 14}},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    fig = _style(fig, "parameters (log scale)", f"test {metric}", f"{metric} vs model size (colour: scoring latency)")
    return fig.update_layout(height=HEIGHT + 80)  # room for the legend under the axis
