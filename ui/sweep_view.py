"""The sweep page's heatmap, its live section and its cell picker (the grid is read from the run store,
so cells fill in as the background sweep stores them)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from distill_core import Dataset, RunStore
from distill_core import sweep, sweep_ray, sweep_results
from distill_core.runner import ProgressSnapshot
from distill_core.workflows import JobFn

from ui import live, registry, session

HEATMAP_KEY = "sweep_heatmap"
CELL_KEY = "sweep_cell"
_RERUN = "sweep_selected_by_click"
SHORT = {"val_ndcg@10": "validation NDCG@10", "ndcg@10": "test NDCG@10", "hr@10": "test HR@10",
         "final_kl": "final KL"}


def backend(address: str | None) -> bool:
    """Say where the cells will train (here, or on Ray at the sidebar's address); False when they cannot
    (an address is set but Ray is not installed): Start is then disabled."""
    if address is None:
        return True
    if not sweep_ray.available():
        st.warning(f"The sidebar's settings send sweeps to Ray at **{address}**, but Ray is not installed: "
                   f"{sweep_ray.INSTALL}. Clear the address there to train the cells here.")
        return False
    st.caption(f"Cells are sent to Ray at **{address}** (the sidebar's settings), each as a task; each result is "
               f"stored here as its cell ends, so the heatmap fills in as they come.")
    return True


def job(ds: Dataset, teacher: str, spec: sweep.SweepSpec, store: RunStore,
        address: str | None) -> Callable[[], JobFn[dict[str, Any]]]:
    """What the Start button submits: the sweep here, or on Ray at ``address`` (connected when it is built, so
    a bad address is refused before anything starts)."""
    if address is None:
        return lambda: sweep.sweep_job(ds, teacher, spec, store)
    return lambda: sweep_ray.ray_sweep_job(ds, teacher, spec, store, sweep_ray.check_address(address, "Ray address"))


def _ticks(values: Any) -> dict[str, Any]:
    return {"tickvals": list(range(len(values))), "ticktext": [f"{v:g}" for v in values]}


def heatmap(grid: pd.DataFrame, metric: str, best: dict[str, Any] | None = None,
            selected: str | None = None) -> go.Figure:
    """``metric`` per (alpha, T) cell, with each finished cell's value written in it; the best cell
    (by validation NDCG@10) starred in its corner, the selected run's cell framed. Cells sit at integer
    positions (row = alpha index, column = T index) so marks can be placed inside a cell; each finished
    cell has an invisible marker at its centre carrying its run id, so a click selects it."""
    alphas, temps = sorted(grid["alpha"].unique()), sorted(grid["temperature"].unique())
    z = grid.pivot(index="alpha", columns="temperature", values=metric).reindex(index=alphas, columns=temps)
    status = grid.pivot(index="alpha", columns="temperature", values="status").reindex(index=alphas, columns=temps)
    text = [[f"{v:.4f}" if np.isfinite(v) else ("training…" if s == "running" else "–") for v, s in zip(zr, sr)]
            for zr, sr in zip(z.to_numpy(dtype=float), status.to_numpy())]
    col, row = {t: j for j, t in enumerate(temps)}, {a: i for i, a in enumerate(alphas)}
    hover = [[f"alpha {a:g}, T {t:g}" for t in temps] for a in alphas]
    fig = go.Figure(go.Heatmap(z=z.to_numpy(dtype=float), text=text, texttemplate="%{text}", customdata=hover,
                               colorscale="Viridis", hoverongaps=False,
                               colorbar={"title": {"text": sweep.METRICS[metric], "side": "right"}},
                               hovertemplate="%{customdata}<br>%{z:.4f}<extra></extra>"))
    done = grid[grid["run"].notna()]
    fig.add_trace(go.Scatter(x=done["temperature"].map(col).tolist(), y=done["alpha"].map(row).tolist(),
                             customdata=done["run"].tolist(), mode="markers", marker={"size": 34, "opacity": 0},
                             showlegend=False, name="cells",
                             hovertemplate="%{customdata}<extra>click to select</extra>"))
    if best is not None:
        fig.add_trace(go.Scatter(x=[col[best["temperature"]] + 0.38], y=[row[best["alpha"]] + 0.3], mode="markers",
                                 name="best cell (validation NDCG@10)", hoverinfo="skip",
                                 marker={"symbol": "star", "size": 15, "color": "white",
                                         "line": {"color": "black", "width": 1.5}}))
    sel = grid[grid["run"] == selected] if selected is not None else grid.iloc[:0]
    for r in sel.to_dict("records"):
        x, y = col[r["temperature"]], row[r["alpha"]]
        fig.add_shape(type="rect", x0=x - 0.48, x1=x + 0.48, y0=y - 0.46, y1=y + 0.46, name="selected run",
                      showlegend=True, line={"color": "#d62728", "width": 3})
    fig.update_xaxes(title="temperature T (logits divided by T; unitless)", range=[-0.5, len(temps) - 0.5],
                     showgrid=False, zeroline=False, **_ticks(temps))
    fig.update_yaxes(title="alpha (CE weight, 0-1)", range=[-0.5, len(alphas) - 0.5], showgrid=False,
                     zeroline=False, **_ticks(alphas))
    fig.update_layout(title=f"{SHORT[metric]} per cell", height=180 + 60 * len(alphas), uirevision="keep",
                      margin={"l": 10, "r": 10, "t": 60, "b": 10},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0})
    return fig


def _run_of(point: dict[str, Any]) -> str | None:
    cd = point.get("customdata")
    rid = cd[0] if isinstance(cd, (list, tuple)) and cd else cd
    return rid if isinstance(rid, str) and rid else None


def _on_chart_select() -> None:
    """A click on a finished cell selects its run (for the Distill and Recommendations pages)."""
    event = st.session_state.get(HEATMAP_KEY) or {}
    runs = [r for p in (event.get("selection") or {}).get("points", []) if (r := _run_of(p))]
    if runs:
        session.select_student(runs[0])
        st.session_state[CELL_KEY] = runs[0]
        st.session_state[_RERUN] = True  # the chart sits in a fragment: the page's other parts follow after


def _summary(grid: pd.DataFrame, plain: pd.DataFrame, budget: str) -> None:
    cmp = sweep_results.comparison(grid, plain)
    best, base, done = cmp["best"], cmp["best_plain"], cmp["finished"]
    c = st.columns(4)
    c[0].metric("Cells finished", f"{done['distilled']} / {len(grid)}",
                help="Cells with a finished distilled student stored for these settings (the plain cells are "
                     "counted below the metrics).")
    c[1].metric("Best cell", f"alpha {best['alpha']:g}, T {best['temperature']:g}" if best else "–",
                help="The finished cell with the highest validation NDCG@10 (chosen on validation, not on test). "
                     "Starred in the heatmap.")
    c[2].metric("Best cell: test NDCG@10", f"{best['ndcg@10']:.4f}" if best else "–",
                delta=f"{best['ndcg@10'] - base['ndcg@10']:+.4f} vs tuned plain" if best and base else None,
                help="Test NDCG@10 of the best cell, and its difference from the tuned plain student's (the same "
                     "student trained without the teacher, its learning rate and weight decay chosen on "
                     "validation over as many cells).")
    c[3].metric("Tuned plain student: test NDCG@10", f"{base['ndcg@10']:.4f}" if base else "–",
                help="The baseline: the plain cell (learning rate × weight decay) with the highest validation "
                     "NDCG@10, tuned with the same number of cells as the distilled student.")
    gain = cmp["gain_ndcg@10"]
    st.caption(f"Tuning budget: {budget}; {done['plain']} of {done['of']} plain cells finished"
               + (f"; the tuned plain student has lr {base['lr']:g} and weight decay {base['weight_decay']:g}"
                  if base else "")
               + (f"; gain of the best distilled cell over it on test NDCG@10: x{gain:.3f}" if math.isfinite(gain) else "")
               + ".")


def body(ds: Dataset, teacher: str, spec: sweep.SweepSpec, metric: str) -> Callable[[ProgressSnapshot | None], None]:
    """The live section: the sweep's progress (when there is a job), a summary, the heatmap, both tables."""
    def draw(snap: ProgressSnapshot | None) -> None:
        if snap is not None:
            live.progress(snap)
        grid = sweep_results.grid_frame(registry.store(), ds, teacher, spec)
        plain = sweep_results.plain_frame(registry.store(), ds, teacher, spec)
        _summary(grid, plain, spec.budget())
        st.plotly_chart(heatmap(grid, metric, sweep_results.best_cell(grid), session.selected_student()), key=HEATMAP_KEY,
                        on_select=_on_chart_select, selection_mode="points")
        if st.session_state.pop(_RERUN, False):
            st.rerun()  # a full run, so the cell picker below shows the clicked cell
        numbers = {m: st.column_config.NumberColumn(SHORT[m], format="%.4f") for m in sweep.METRICS}
        st.dataframe(grid, hide_index=True, key="sweep_table", column_config=numbers)
        st.caption("The plain cells: the same student without the teacher, over learning rate × weight decay.")
        st.dataframe(plain, hide_index=True, key="sweep_plain_table",
                     column_config={m: c for m, c in numbers.items() if m in plain.columns}
                     | {"lr": st.column_config.NumberColumn("learning rate", format="%g"),
                        "weight_decay": st.column_config.NumberColumn("weight decay", format="%g")})
    return draw


def _on_cell() -> None:
    session.select_student(st.session_state.get(CELL_KEY))


def cell_picker(grid: pd.DataFrame) -> str | None:
    """A selectbox over the finished cells; choosing one selects its run for the other pages."""
    labels = {r["run"]: f"{sweep.cell_label(r['alpha'], r['temperature'])} · validation NDCG@10 "
                        f"{r['val_ndcg@10']:.4f} · test NDCG@10 {r['ndcg@10']:.4f}"
              for r in grid[grid["run"].notna()].to_dict("records")}
    if st.session_state.get(CELL_KEY) not in labels:
        st.session_state.pop(CELL_KEY, None)
        if session.selected_student() in labels:
            st.session_state[CELL_KEY] = session.selected_student()
    return st.selectbox("Open a cell's student", list(labels), index=None, format_func=labels.get, key=CELL_KEY,
                        placeholder="Choose a finished cell", on_change=_on_cell,
                        help="Selects the cell's distilled student: the Distill page (soft labels) and the "
                             "Recommendations page then show it, with its teacher and plain twin. Clicking a "
                             "cell in the heatmap does the same.")
