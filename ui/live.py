"""Live sections: a fragment that polls one job's progress snapshot about once a second while the
job runs (``st.fragment(run_every=...)``), and the bodies the pages draw in it.

Polling stops when the job ends (the fragment asks for one full rerun, after which ``run_every``
is None) or while the user pauses live updates (so a zoomed chart is left alone).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from distill_core.distillers import TERM_NAMES
from distill_core.runner import ProgressSnapshot
from distill_core.runs import ROLE_LABELS, best_val_ndcg, method_of
from distill_core.store import RunRecord

from ui import charts, registry, session

Body = Callable[[ProgressSnapshot], None]


def show(job_id: str | None, body: Body) -> None:
    """Draw ``body(snapshot)`` now and, while the job runs and live updates are on, every second."""
    if job_id is None:
        return
    every = session.live_interval(registry.runner().snapshot(job_id).active)

    @st.fragment(run_every=every)
    def poll() -> None:
        snap = registry.runner().snapshot(job_id)
        if snap.active and every is None:
            st.caption("Live updates are paused (sidebar); the job keeps running.")
        body(snap)
        if every is not None and not snap.active:
            st.rerun()  # the job just ended: one full run shows its results and stops the polling
    poll()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def progress_text(snap: ProgressSnapshot) -> str:
    """``Distilled student (1/2) · epoch 3/15 · 42% · ETA 0:31`` and the like."""
    phase = ROLE_LABELS.get(snap.phase, snap.phase or snap.kind)
    if snap.n_phases > 1:
        phase = f"{phase} ({snap.phase_index + 1}/{snap.n_phases})"
    if snap.status == "queued":
        return "waiting to start"
    if snap.status == "running" and (snap.epochs == 0 or snap.preparing):
        return f"{phase} · preparing" + (f": {snap.preparing}" if snap.preparing else "")
    if snap.status == "running":
        within = (f" · step {snap.step:,}/{snap.steps_per_epoch:,}, {snap.steps_per_s:.1f} steps/s, epoch ends in "
                  f"{_clock(snap.epoch_eta_s)}" if snap.steps_per_s else "")
        return (f"{phase} · epoch {snap.epoch}/{snap.epochs}{within} · {snap.fraction:.0%} · "
                f"ETA {_clock(snap.eta_s)} at most")
    took = _clock((snap.ended or time.time()) - snap.started)
    return {"done": f"done in {took}", "cancelled": f"stopped during {phase}, epoch {snap.epoch} ({took})",
            "failed": f"failed during {phase} ({took})"}.get(snap.status, snap.status)


def progress(snap: ProgressSnapshot) -> None:
    """The progress bar with ETA, then the job's error or its stop, if any."""
    st.progress(min(max(snap.fraction, 0.0), 1.0), text=f"{snap.description}: {progress_text(snap)}")
    if snap.status == "failed":
        st.error(f"The job failed: {snap.error}")
    elif snap.status == "cancelled":
        st.warning("Stopped. Runs that had finished are kept; the one that was training is stored as cancelled "
                   "(no weights).")
    elif snap.status == "done" and snap.note:
        st.info(snap.note)


def loss_metrics(snap: ProgressSnapshot, term_name: str = "KL") -> None:
    """The latest step's CE and KD term as metrics, naming the model that is training; ``term_name``: the
    method's term (``distillers.TERM_NAMES``), which the step rows keep under ``kl`` whatever the method."""
    latest = snap.latest
    if latest:
        st.caption(f"Last training step of the {ROLE_LABELS.get(snap.phase, snap.phase).lower()}:")
    kl = term_name == "KL"
    c = st.columns(3)
    c[0].metric("CE (hard labels)", f"{latest['ce']:.4f}" if latest else "–",
                help="Cross-entropy of the held item under the softmax over all items of the model in training, "
                     "last step (nats).")
    c[1].metric(charts.term_label(term_name), f"{latest['kl']:.4f}" if latest else "–",
                help="KL(teacher_T || student_T) of the last step, before the T² factor (nats); 0 without a teacher."
                if kl else f"The distillation method's term ({term_name}) of the last step, before alpha weighs it; "
                           "0 without a teacher.")
    c[2].metric("Total loss", f"{latest['total']:.4f}" if latest else "–",
                help="alpha·CE + (1 − alpha)·[T²]·KL of the last step (nats)." if kl else
                f"alpha·CE + (1 − alpha)·{term_name} of the last step.")


def _with_reused_plain(snap: ProgressSnapshot, epochs: pd.DataFrame) -> pd.DataFrame:
    """Add the stored curve of a plain student the job reused instead of training it (a job that
    trains its plain student goes through the phase "student_plain"; one that reuses it does not)."""
    plain = snap.runs.get("student_plain")
    rec = registry.store().find(plain) if plain is not None and snap.phase != "student_plain" else None
    if rec is None:  # trained by this job, or deleted since on the Run history page
        return epochs
    st.caption(f"The plain student with these settings was already stored ({plain}); it was reused.")
    return pd.concat([epochs, charts.epochs_frame(rec.history, ROLE_LABELS["student_plain"])], ignore_index=True)


def teacher_progress(snap: ProgressSnapshot) -> None:
    """Teacher page: progress, training loss and validation NDCG@10."""
    progress(snap)
    c = st.columns(2)
    c[0].plotly_chart(charts.loss_curves(charts.steps_frame(snap.steps), "Teacher training loss"),
                      key="teacher_live_loss")
    c[1].plotly_chart(charts.val_curves(charts.epochs_frame(snap.epochs_log)), key="teacher_live_val")


def job_term_name(snap: ProgressSnapshot, default: str = "KL") -> str:
    """The KD term's name (``distillers.TERM_NAMES``) of the method the job's distilled student trains by, read
    from its stored run (so a job another session started, or one started before the page's method was changed,
    is named right); ``default`` until that run exists."""
    rid = snap.runs.get("student_kd")
    rec = registry.store().find(rid) if rid is not None else None
    method = method_of(rec) if rec is not None else None
    return TERM_NAMES.get(method, default) if method is not None else default


def distill_body(teacher: RunRecord | None, term_name: str = "KL") -> Body:
    """Distill page: progress, current CE and KD term, the loss terms, and validation NDCG@10 of the
    distilled student beside the teacher's best and the plain student's curve. ``term_name``: the KD term of the
    page's method (``distillers.TERM_NAMES``), until the job's own distilled run says which it is."""
    def body(snap: ProgressSnapshot) -> None:
        name = job_term_name(snap, term_name)
        progress(snap)
        loss_metrics(snap, name)
        epochs = _with_reused_plain(snap, charts.epochs_frame(snap.epochs_log))
        ref = best_val_ndcg(teacher) if teacher is not None else None
        c = st.columns(2)
        c[0].plotly_chart(charts.loss_curves(charts.steps_frame(snap.steps, name), "Student training loss"),
                          key="distill_live_loss")
        c[1].plotly_chart(charts.val_curves(epochs, {"Teacher": ref} if ref is not None else None),
                          key="distill_live_val")
    return body


def demo_progress(snap: ProgressSnapshot) -> None:
    """Overview: the three phases of the demo, their losses and validation NDCG@10."""
    progress(snap)
    loss_metrics(snap)
    c = st.columns(2)
    c[0].plotly_chart(charts.loss_curves(charts.steps_frame(snap.steps)), key="demo_live_loss")
    c[1].plotly_chart(charts.val_curves(_with_reused_plain(snap, charts.epochs_frame(snap.epochs_log))),
                      key="demo_live_val")
