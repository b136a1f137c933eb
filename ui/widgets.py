"""Composite widgets the pages share: picking a user, picking a stored run, ranked lists side by side, and
the stop of a page that needs a teacher when there is none."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from distill_core import Dataset, RecDistillError, Split
from distill_core import catalogue, views
from distill_core.runs import Distillation, run_label
from distill_core.store import RunRecord

from ui import registry, session

SHARED_ALL = "background-color: #d4edda"  # in every list
SHARED_SOME = "background-color: #fff3cd"  # in some other list
TEST_ITEM = "font-weight: bold; color: #b02a37"
# One Material icon per page, for the navigation (app.py) and the links between pages: Streamlit ships the
# Material Symbols font, whereas emoji show as empty boxes in a browser without an emoji font.
PAGE_ICONS = {"app_pages/overview.py": ":material/home:", "app_pages/data.py": ":material/database:",
              "app_pages/teacher.py": ":material/school:", "app_pages/distill.py": ":material/science:",
              "app_pages/recommendations.py": ":material/format_list_numbered:",
              "app_pages/compare.py": ":material/straighten:", "app_pages/sweep.py": ":material/grid_on:",
              "app_pages/who_gains.py": ":material/groups:", "app_pages/loss_lab.py": ":material/functions:",
              "app_pages/history.py": ":material/history:"}
APP_ICON = PAGE_ICONS["app_pages/distill.py"]  # the browser tab's icon


def student_lr_input(col: DeltaGenerator, ds: Dataset, key: str, help: str) -> float:
    """The students' learning rate, defaulting to ``catalogue.student_lr`` on this dataset's auto path (5e-3 on the
    full softmax, more on the sampled one); each path keeps its own value, so a large dataset does not inherit a
    small one's."""
    lr = catalogue.student_lr("auto", ds.n_items)
    sampled = catalogue.loss_for("auto", ds.n_items) == "sampled"
    return col.number_input("Learning rate", 1e-5, 1.0, lr, step=1e-3, format="%.4f",
                            key=key + ("_sampled" if sampled else ""), persist_state="session",
                            help=help + f" Default {lr:g}: " + ("the sampled path's (catalogue.SAMPLED_STUDENT_LR), "
                                                                "since this catalogue trains on sampled softmax."
                                                                if sampled else "the full softmax's."))


def page_link(page: str, label: str, where: DeltaGenerator | None = None) -> None:
    """A link to another page with that page's icon (in ``where``, e.g. a column; by default the main area)."""
    (where or st).page_link(page, label=label, icon=PAGE_ICONS[page])


def require_teacher(ds: Dataset, message: str, links: Sequence[tuple[str, str]] = ()) -> list[RunRecord]:
    """The finished teachers of ``ds`` (newest first). With none, the page says ``message`` and what to do next
    (``links``: (page, label) pairs) and stops there."""
    found = registry.teachers(ds)
    if not found:
        st.info(message)
        for page, label in links:
            page_link(page, label)
        st.stop()
    return found


def _random_user(key: str, ds: Dataset, split: Split) -> None:
    st.session_state[key] = str(ds.user_ids[views.random_long_tail_user(ds, split, session.new_rng())])


def user_picker(ds: Dataset, split: Split, key: str) -> int | None:
    """A user-id box and a "random long-tail user" button; the user's index, or None (error shown)."""
    first = split.eval_users("test")
    default = str(ds.user_ids[first[0] if len(first) else 0])
    if st.session_state.get(f"{key}_dataset") != ds.fingerprint:
        # another dataset became active: a user id typed for the old one means nothing here
        st.session_state[key] = default
        st.session_state[f"{key}_dataset"] = ds.fingerprint
    st.session_state.setdefault(key, default)
    c = st.columns([3, 2])
    c[0].text_input("User id", key=key, help=f"An original user id of the dataset '{ds.name}' "
                    f"(e.g. {ds.user_ids[0]}).")
    c[1].button("🎲 Random long-tail user", key=f"{key}_random", on_click=_random_user, args=(key, ds, split),
                help="Pick a random user among the least active fifth of the users with a test item: "
                     "the users a small model tends to serve worst.")
    try:
        return views.user_index(ds, st.session_state[key])
    except RecDistillError as e:
        st.error(str(e))
        return None


def run_picker(label: str, runs: Sequence[RunRecord], key: str, help: str) -> RunRecord:
    """A selectbox over stored runs (newest first), labelled with their model and result."""
    by_id = {r.id: r for r in runs}
    if st.session_state.get(key) not in by_id:
        st.session_state.pop(key, None)  # a run of another dataset or one deleted: fall back to the newest
    rid = st.selectbox(label, list(by_id), format_func=lambda i: run_label(by_id[i]), key=key, help=help)
    return by_id[rid]


def distillation_picker(pairs: Sequence[Distillation], key: str, help: str) -> Distillation:
    """Pick a distilled student (newest first); it comes with its teacher and its plain twin."""
    kd = run_picker("Distilled student", [p.student_kd for p in pairs], key, help)
    return next(p for p in pairs if p.student_kd.id == kd.id)


def _style_list(df: pd.DataFrame, n_lists: int) -> pd.io.formats.style.Styler:
    def row_style(row: pd.Series) -> list[str]:
        src = df.loc[row.name]
        css = SHARED_ALL if src["in_lists"] == n_lists else SHARED_SOME if src["in_lists"] > 1 else ""
        if src["test"]:
            css = f"{css}; {TEST_ITEM}" if css else TEST_ITEM
        return [css] * len(row)
    shown = df.assign(mark=["🎯 test item" if t else "" for t in df["test"]])
    return shown[["rank", "title", "genres", "mark", "shared_with"]].style.apply(row_style, axis=1)


def ranked_lists(lists: Mapping[str, pd.DataFrame]) -> None:
    """Top-K lists side by side; items shared with every list green, with some list yellow, the
    held-out test item in bold red and marked 🎯."""
    cols = st.columns(len(lists))
    for col, (name, df) in zip(cols, lists.items()):
        col.markdown(f"**{name}**")
        col.dataframe(_style_list(df, len(lists)), hide_index=True, key=f"list_{name}",
                      column_config={"rank": st.column_config.NumberColumn("#", width="small"),
                                     "mark": st.column_config.TextColumn("test", width="small"),
                                     "shared_with": st.column_config.TextColumn("also in")})
    st.caption("Green: in all three lists. Yellow: in two. 🎯 and bold red: the user's held-out test item.")


def entropy_metrics(view: views.SoftLabelView) -> None:
    """Each model's entropy at T and the probability it puts on the items shown (and, for top-K soft labels,
    the teacher's mass on its top K)."""
    if view.top_k_mass is not None:
        st.caption(f"The distilled student learnt from the teacher's **top-{view.top_k}** soft labels: at "
                   f"T = {view.temperature:g} they hold {view.top_k_mass:.1%} of this user's probability; the other "
                   f"{1 - view.top_k_mass:.1%} was one \"rest\" bucket (its total kept, not how it spreads).")
    cols = st.columns(len(view.models))
    for col, name in zip(cols, view.models):
        col.metric(f"{name}: entropy", f"{view.entropy[name]:.2f} nats",
                   help=f"Entropy of the whole distribution over the catalogue at T = {view.temperature:g}: higher "
                        f"is softer (at most ln(n_items)). {view.mass[name]:.0%} of its probability is on the items "
                        f"shown.")
