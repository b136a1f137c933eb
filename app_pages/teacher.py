"""Teacher: choose a model and its size, train it in the background, watch it learn."""
from dataclasses import replace

import streamlit as st

from distill_core import ModelSpec, RunConfig, sizing, text_embed, views
from distill_core.config import MODEL_FAMILIES
from distill_core.workflows import teacher_job
from distill_core.runs import model_label
from ui import jobs, live, registry, session

ds = session.active_dataset()
job = jobs.current_job("teacher", ds)
snap = jobs.snapshot(job)
running = snap is not None and snap.active

st.title("Teacher")
st.caption(f"The teacher is the large model whose soft labels the student learns from. It is trained on "
           f"**{ds.name}** to predict each user's next item (a softmax over all {ds.n_items:,} items), with early "
           f"stopping on validation NDCG@10.")

d = RunConfig()  # the shipped defaults: the family with the best validation NDCG@10 on the sample
lm = text_embed.available()  # the "text" family needs the optional extra requirements-lm.txt
families = [f for f in MODEL_FAMILIES if f != "text" or lm]
c = st.columns(5)
family = c[0].selectbox("Model family", families, index=families.index(d.teacher.family),
                        key="teacher_family", persist_state="session",
                        help="mf: matrix factorisation (user and item embeddings). two_tower: an MLP over the user "
                             "and their recent items. sasrec: self-attention over the recent items. text: sasrec "
                             "whose item embeddings add a frozen language-model embedding of the title and genres.")
dim = c[1].number_input("Embedding dim", 1, 1024, d.teacher.dim, key="teacher_dim", persist_state="session",
                        help="Width of the embeddings: the teacher's size. Parameters grow linearly with it in the "
                             "embedding tables, and with its square in attention blocks and MLP layers.")
layers = c[2].number_input("Layers", 0, 8, d.teacher.layers, key="teacher_layers", persist_state="session",
                           help="Hidden layers of the two_tower user tower, or attention blocks of sasrec (≥ 1) and "
                                "text (0: a user id embedding instead). mf has none and ignores it.")
epochs = c[3].number_input("Epochs (max)", 1, 500, d.teacher_train.epochs, key="teacher_epochs", persist_state="session",
                           help=f"Upper bound; training stops early after {d.teacher_train.patience} epochs (and at least "
                                f"{d.teacher_train.patience_steps:,} steps) without a better validation NDCG@10 and "
                                "keeps the best epoch's weights.")
lr = c[4].number_input("Learning rate", 1e-5, 1.0, d.teacher_train.lr, step=1e-3, format="%.4f", key="teacher_lr",
                       persist_state="session", help="Adam's step size.")

if not lm:
    st.caption(f"The **text** family (a teacher that reads the items' titles and genres) is hidden: its optional "
               f"extra is not installed (`{text_embed.INSTALL_HINT}`).")
elif family == "text" and not text_embed.is_cached(ds.titles, ds.genres, registry.store().home):
    st.caption(f"First text model on {ds.name}: its {ds.n_items:,} item texts are embedded once with "
               f"{text_embed.MODEL_NAME} before training (a progress bar counts the items; the time grows with "
               f"the catalogue), then cached.")

max_len = sizing.auto_max_len(ds)
if family in ("two_tower", "sasrec", "text"):
    st.caption(f"A {family} teacher reads each user's last **{max_len}** items: the users' mean history on "
               f"{ds.name}, rounded up to 10, within 20-200 (a longer window is mostly padding, a shorter one cuts "
               f"off context).")
c = st.columns([1, 1, 6])
if c[0].button("Train", type="primary", key="teacher_train", disabled=running,
               help="Train this teacher in the background; you can switch pages meanwhile."):
    jobs.start_job("teacher", ds, lambda: teacher_job(ds, ModelSpec(family, int(dim), int(layers), max_len=max_len),
                                                     replace(d.teacher_train, epochs=int(epochs), lr=float(lr)), registry.store()),
                   f"Teacher {family} dim {dim} on {ds.name}")
if c[1].button("Stop", key="teacher_stop", disabled=not running,
               help="Stop at the next mini-batch. A stopped teacher is not stored for distillation."):
    jobs.cancel(job)

text_key = text_embed.texts_key(text_embed.item_texts(ds.titles, ds.genres)) if lm else None


def body(snap) -> None:  # the item texts' embedding (first text model on a dataset), then the training
    emb = text_embed.progress(text_key) if text_key else None
    if emb is not None and emb.active:
        st.progress(emb.fraction, text=f"Embedding the item texts with {text_embed.MODEL_NAME}: "
                                      f"{emb.done:,} / {emb.total:,}")
    live.teacher_progress(snap)


live.show(job, body)

result = jobs.job_runs(snap).get("Teacher") if snap is not None and not snap.active else None
if result is not None:
    st.success(f"Trained {model_label(result)} in {result.info['train_seconds']:.1f} s "
               f"(best epoch {result.info['best_epoch']}).")
    c = st.columns(5)
    c[0].metric("NDCG@10 (test)", f"{result.metrics['ndcg@10']:.4f}", help="Normalised discounted cumulative "
                "gain of the held-out test item in the top 10, averaged over users (0-1).")
    c[1].metric("HR@10 (test)", f"{result.metrics['hr@10']:.4f}",
                help="Share of users whose test item is in the top 10.")
    c[2].metric("Parameters", f"{result.info['params']:,}", help="Trainable numbers in the model.")
    c[3].metric("Size", views.human_bytes(result.info["bytes"]), help="Bytes of the stored weights (float32).")
    c[4].metric("Train time", f"{result.info['train_seconds']:.1f} s", help="Wall time of the training loop.")
elif snap is None:
    st.info(f"Choose a model and click **Train** (the default is {d.teacher.family}, dim {d.teacher.dim}; mf is the "
            "fastest family to train). A progress bar shows the time left.")

st.subheader(f"Teachers trained on {ds.name}")
found = registry.teachers(ds)
if found:
    st.dataframe(views.runs_table(found), hide_index=True, key="teacher_runs")
else:
    st.caption("None yet.")
