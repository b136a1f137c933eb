"""The sidebar of every page: active dataset, trained teacher, running jobs, the live-updates switch, settings
(the Ray address sweeps go to)."""
from __future__ import annotations

import streamlit as st

from distill_core.runs import model_label

from ui import live, registry, session


def _jobs() -> None:
    every = session.live_interval(any(s.active for s in registry.runner().snapshots()))

    @st.fragment(run_every=every)
    def jobs() -> None:
        running = [s for s in registry.runner().snapshots() if s.active]
        if not running:
            st.caption("No job running.")
        for snap in running:
            st.progress(min(max(snap.fraction, 0.0), 1.0), text=f"{snap.description}: {live.progress_text(snap)}")
        if every is not None and not running:
            st.rerun()  # the last job ended: refresh the page (and the teacher shown above)
    jobs()


def render() -> None:
    """Draw the sidebar (called by app.py before the page runs)."""
    ds = session.active_dataset()
    teacher = registry.latest_teacher(ds)
    with st.sidebar:
        st.markdown("**Active dataset**")
        st.caption(f"{ds.name} ({ds.format}): {ds.n_users:,} users, {ds.n_items:,} items, "
                   f"{ds.n_interactions:,} interactions")
        st.markdown("**Teacher**")
        if teacher is None:
            st.caption("None trained on this dataset yet: see the Teacher page, or run the demo.")
        else:
            ndcg = teacher.metrics.get("ndcg@10", float("nan"))
            st.caption(f"{model_label(teacher)}, test NDCG@10 {ndcg:.4f}, "
                       f"{teacher.info.get('params', 0):,} parameters ({teacher.id})")
        st.markdown("**Running jobs**")
        _jobs()
        st.toggle("Pause live updates", key=session.PAUSE_KEY,
                  help="Stop redrawing the live charts (e.g. to zoom in on one); the jobs keep running. "
                       "Switch it off to follow them again.")
        with st.expander("Settings"):
            st.text_input("Ray address for sweeps", key=session.RAY_ADDRESS_KEY, placeholder="off: sweeps run here",
                          help="Empty (the default): the Sweep page trains its cells here, one after another. "
                               "'local': a private Ray on this machine with 2 workers; 'auto': the Ray cluster this "
                               "machine belongs to (`ray start`); HOST:PORT: that cluster. Needs "
                               "requirements-dist.txt. Ray's own services listen on this machine's network "
                               "interfaces (token-authenticated) while it runs.")
