"""The Who gains page's helpers: the segments of a stored distillation (computed once per process from the
weights, see ``distill_core.gains.pair_segments``), its gains, the grouped bars and the gain chart (Plotly on
the page, Matplotlib for the PNG download)."""
from __future__ import annotations

import io
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distill_core import Dataset, gains
from distill_core.runs import ROLE_LABELS, Distillation, run_label
from distill_core.store import default_home
from ui import registry
from ui.charts import COLORS, HEIGHT

METRICS = {"ndcg@10": "NDCG@10", "hr@10": "HR@10"}
AXES = {"users": "training interactions per user (bucket)", "items": "popularity of the held-out item (bucket)"}
MODELS = [ROLE_LABELS[r] for r in gains.ROLES]


def _ids(pair: Distillation) -> tuple[str, str, str]:
    return pair.teacher.id, pair.student_kd.id, pair.student_plain.id


@st.cache_resource(max_entries=16, show_spinner="Scoring the test users of each segment…")
def _segments(home: str, ids: tuple[str, str, str], fingerprint: str, _pair: Distillation,
              _ds: Dataset) -> gains.PairSegments:
    split = registry.split(_ds, _pair.teacher.config["split"])
    models = {role: registry.model(rid, _ds) for role, rid in zip(gains.ROLES, ids)}
    return gains.pair_segments(registry.store(), _pair, split, models)


def pair_segments(pair: Distillation, ds: Dataset) -> gains.PairSegments:
    """The pair's segments (stored ones where the runs have them; otherwise computed now and kept)."""
    return _segments(str(default_home()), _ids(pair), ds.fingerprint, pair, ds)


@st.cache_data(max_entries=64, show_spinner="Drawing the bootstrap…")
def _gains(ids: tuple[str, str, str], by: str, seed: int, n_boot: int, _seg: gains.PairSegments) -> pd.DataFrame:
    return gains.gains_frame(_seg.results, by, tuple(METRICS), n_boot=n_boot, seed=seed)


def gain_frames(pair: Distillation, seg: gains.PairSegments, seed: int, n_boot: int) -> dict[str, pd.DataFrame]:
    """``{"users": frame, "items": frame}`` of ``gains.gains_frame`` (cached by run ids, seed and draws)."""
    return {by: _gains(_ids(pair), by, int(seed), int(n_boot), seg) for by in gains.SECTIONS}


def describe(summary: dict[str, Any], by: str) -> str:
    """How the buckets of ``by`` were cut, in one caption."""
    if by == "users":
        u = summary["users"]
        return (f"Users with at most {u['cold_max']} training interactions are *cold*; the others are cut at the "
                f"{u['quantiles']}-quantiles of their activity (edges in the table). A bucket with fewer than "
                f"{u['min_users']} test users is merged with a neighbour, or marked *too few* and drawn without a bar.")
    it = summary["items"]
    head, _, tail = it["buckets"]
    return (f"Each test case counts in the bucket of its held-out item. *Head*: the most popular {head['items']:,} "
            f"items, holding {head['interaction_share']:.0%} of the training interactions (at least {head['lo']} "
            f"each); *tail*: the {tail['items']:,} least popular, holding {tail['interaction_share']:.0%}; *torso*: "
            f"the rest. A bucket with fewer than {it['min_cases']} test cases is marked *too few*.")


def _ticks(buckets: list[dict[str, Any]]) -> list[str]:
    return [f"{b['bucket']}<br>n={b['n']:,}" + (" · too few" if b["too_few"] else "") for b in buckets]


def _style(fig: go.Figure, x: str, y: str, title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=HEIGHT, uirevision="keep",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend_title_text="")
    return fig


def bars(summaries: dict[str, dict[str, Any]], by: str, metric: str) -> go.Figure:
    """Teacher, distilled and plain side by side per bucket; no bar where a bucket has too few users."""
    frame = gains.buckets_frame(summaries, by)
    fig = go.Figure()
    for model in MODELS:
        rows = frame[frame["model"] == model]
        y = [None if r["too_few"] else r[metric] for _, r in rows.iterrows()]
        fig.add_bar(x=_ticks(rows.to_dict("records")), y=y, name=model, marker_color=COLORS[model],
                    text=[f"{v:.3f}" if v is not None else "" for v in y], textposition="outside")
    fig.update_layout(barmode="group")
    return _style(fig, AXES[by], f"test {METRICS[metric]}", f"{METRICS[metric]} by {gains.SECTIONS[by]}")


def gain_chart(frame: pd.DataFrame, metric: str) -> go.Figure:
    """Distilled minus plain per bucket, with the bootstrap 95% interval."""
    rows = frame[frame["metric"] == metric]
    fig = go.Figure(go.Scatter(
        x=_ticks(rows.to_dict("records")), y=rows["gain"], mode="markers", marker={"size": 11,
                                                                                   "color": COLORS[MODELS[1]]},
        error_y={"type": "data", "array": rows["gain_hi"] - rows["gain"], "arrayminus": rows["gain"] - rows["gain_lo"]},
        name="distilled − plain"))
    fig.add_hline(y=0, line_dash="dot", line_color="#7f7f7f")
    return _style(fig, AXES[rows["section"].iloc[0]] if len(rows) else "bucket", f"gain in {METRICS[metric]}",
                  "Distilled − plain, with the bootstrap 95% interval")


@st.cache_data(max_entries=32, show_spinner=False)
def _png(ids: tuple[str, str, str], metric: str, seed: int, n_boot: int, title: str, _summaries: dict[str, Any],
         _frames: dict[str, pd.DataFrame]) -> bytes:
    fig = Figure(figsize=(13, 8.4), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(2, 2)
    for col, by in enumerate(gains.SECTIONS):
        frame = gains.buckets_frame(_summaries, by)
        buckets = _summaries["teacher"][by]["buckets"]
        x = range(len(buckets))
        labels = [t.replace("<br>", "\n") for t in _ticks(buckets)]
        ax = axes[0, col]
        for m, model in enumerate(MODELS):
            rows = frame[frame["model"] == model]
            y = [float("nan") if r["too_few"] or r[metric] is None else r[metric] for _, r in rows.iterrows()]
            ax.bar([i + (m - 1) * 0.27 for i in x], y, width=0.27, label=model, color=COLORS[model])
        ax.set(title=f"{METRICS[metric]} by {gains.SECTIONS[by]}", ylabel=f"test {METRICS[metric]}",
               xticks=list(x), xticklabels=labels)
        ax.legend(fontsize=8)
        g = _frames[by][_frames[by]["metric"] == metric]
        ax = axes[1, col]
        gain = g["gain"].astype(float)
        ax.errorbar(list(x), gain, yerr=[gain - g["gain_lo"].astype(float), g["gain_hi"].astype(float) - gain],
                    fmt="o", color=COLORS[MODELS[1]], capsize=5)
        ax.axhline(0, color="#7f7f7f", linestyle=":")
        ax.set(title=f"distilled − plain, bootstrap 95% (seed {seed}, {n_boot} draws)",
               ylabel=f"gain in {METRICS[metric]}", xticks=list(x), xticklabels=labels)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def png(pair: Distillation, seg: gains.PairSegments, frames: dict[str, pd.DataFrame], metric: str, seed: int,
        n_boot: int) -> bytes:
    """The four charts (bars and gains, users and items) as one PNG image."""
    title = f"{run_label(pair.student_kd)}\nteacher {run_label(pair.teacher)}"
    return _png(_ids(pair), metric, int(seed), int(n_boot), title, seg.summaries, frames)
