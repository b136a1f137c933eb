"""The Who gains page (app_pages/who_gains.py) through AppTest: the three models side by side per bucket with
counts, the gain with a seeded bootstrap interval, the list figures, the CSV and PNG downloads, and runs stored
before segments existed."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from distill_core.gains import bootstrap_gain
from distill_core.diversity import diversity_space
from distill_core.segments import model_segments
from distill_core.workflows import load_model
from ui import registry, session

from _helpers import make_runs
from _pages import open_page as open_app_page
from conftest import ROOT

PAGE = str(ROOT / "app_pages/who_gains.py")


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()


def open_page(ds) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    registry.datasets().put(ds)
    at.session_state[session.DATASET_KEY] = ds.fingerprint
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """What the page's download buttons serve, by file name (AppTest's media storage is gone after a run)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    served, real = {}, MemoryMediaFileStorage.load_and_get_id

    def keep(self, data, mimetype, kind, filename=None):
        served[filename] = data.encode() if isinstance(data, str) else data
        return real(self, data, mimetype, kind, filename)
    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return served


def test_page_without_a_distilled_student_says_what_to_do():
    at = open_app_page("app_pages/who_gains.py")  # through the app: the page links need its navigation
    assert at.title[0].value == "Who gains from distillation" and "no distilled student" in at.info[0].value
    assert [p.proto.label for p in at.get("page_link")] == ["Run the demo", "Distil a student"]


def test_page_shows_the_three_models_per_bucket_the_gain_and_the_downloads(tiny_ds, tiny_split, downloads):
    store = registry.store()
    ids = make_runs(tiny_ds, store)
    store.update_info(ids["student_plain"], {"segments": None})  # as if stored before segments existed
    at = open_page(tiny_ds)
    assert "Plain student" in at.info[0].value and "computed now from the stored weights" in at.info[0].value
    assert store.get(ids["student_plain"]).info["segments"]["k"] == 10  # kept with the run
    models = {role: load_model(store, rid, tiny_ds) for role, rid in ids.items()}
    space = diversity_space(tiny_split)
    ref = {role: model_segments(m, tiny_split, space=space) for role, m in models.items()}

    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 4  # bars and gains, for users and for items
    bars = charts[0]
    assert [t["name"] for t in bars["data"]] == ["Teacher", "Distilled student", "Plain student"]
    buckets = ref["teacher"].summary["users"]["buckets"]
    assert bars["data"][0]["x"] == [f"{b['bucket']}<br>n={b['n']:,}" + (" · too few" if b["too_few"] else "")
                                    for b in buckets]  # the counts are on the axis
    table = at.dataframe[0].value  # the user buckets at NDCG@10
    kd, plain = ref["student_kd"], ref["student_plain"]
    for j, row in table.iterrows():
        inside = kd.user_bucket == j
        assert row["n"] == inside.sum() == buckets[j]["n"]
        if row["too_few"]:
            assert pd.isna(row["gain"])
            continue
        a, b = kd.user_values["ndcg@10"][inside], plain.user_values["ndcg@10"][inside]
        assert row["gain"] == pytest.approx(a.mean() - b.mean())
        g = bootstrap_gain(a, b, 1000, seed=[0, 0, j])  # the page's seed 0, metric 0 (NDCG), bucket j
        assert (row["gain_lo"], row["gain_hi"]) == pytest.approx((g.lo, g.hi))
        assert row["gain_lo"] <= row["gain"] <= row["gain_hi"]
    lists = at.dataframe[2].value
    assert lists["figure"].tolist()[0] == "coverage@10"
    assert lists["Teacher"].iloc[0] == pytest.approx(ref["teacher"].summary["lists"]["coverage@10"])

    # reproducible: a rerun with the same seed draws the same interval, another seed another one
    again = open_page(tiny_ds).dataframe[0].value
    pd.testing.assert_frame_equal(again, table)
    at.number_input(key="gains_seed").set_value(7).run()
    moved = at.dataframe[0].value
    ok = ~table["too_few"]
    assert (moved.loc[ok, "gain"] == table.loc[ok, "gain"]).all()
    assert not np.allclose(moved.loc[ok, "gain_lo"].astype(float), table.loc[ok, "gain_lo"].astype(float))

    assert sorted(b.proto.label for b in at.get("download_button")) == ["Download CSV", "Download PNG"]
    name = f"who-gains-{tiny_ds.name}-{ids['student_kd']}"
    csv = pd.read_csv(io.BytesIO(downloads[f"{name}.csv"]))
    assert set(csv["section"]) == {"users", "items", "lists"}
    assert set(csv.loc[csv["section"] != "lists", "metric"]) == {"ndcg@10", "hr@10"}
    users = csv[(csv["section"] == "users") & (csv["metric"] == "ndcg@10")].reset_index(drop=True)
    np.testing.assert_allclose(users["gain_lo"].astype(float), moved["gain_lo"].astype(float))  # seed 7's
    assert downloads[f"{name}.png"][:8] == b"\x89PNG\r\n\x1a\n"
