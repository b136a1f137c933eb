"""The Recommendations page (app_pages/recommendations.py) through AppTest."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ui import registry, session

from _helpers import make_runs
from conftest import ROOT


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()


def test_recommendations_page_caps_k_at_a_catalogue_smaller_than_50(tmp_path):
    """A 20-item catalogue: the K slider stops at 20 (not 50), a K kept from a larger dataset is lowered to it,
    a user id typed for the previous dataset is replaced by one of this dataset, and the lists stop at the
    user's unseen items: no error reaches the page."""
    from distill_core.data import build_dataset
    from distill_core.data.loaders import load_raw
    from distill_core.data.sample import SampleSpec, write_sample
    write_sample(tmp_path, SampleSpec(n_users=40, n_items=20, mean_activity=8, n_niches=4, n_taste_groups=2, seed=3))
    small = build_dataset(load_raw(tmp_path), name="small")
    assert small.n_items == 20
    make_runs(small, registry.store(), teacher_dim=8)
    at = AppTest.from_file(str(ROOT / "app_pages/recommendations.py"), default_timeout=60)
    registry.datasets().put(small)
    at.session_state[session.DATASET_KEY] = small.fingerprint
    at.session_state["rec_k"] = 40  # as if chosen on the sample
    at.session_state["rec_user"] = "999"  # a sample user id, typed before the switch; not a user of `small`
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    k = at.slider(key="rec_k")
    assert k.max == 20 and k.value == 20
    assert "999" not in small.user_ids and at.text_input(key="rec_user").value in small.user_ids
    hist = at.dataframe[0].value
    assert len(set(small.titles)) == small.n_items  # titles identify the items in the lists
    history_items = set(hist.loc[hist["part"] != "test (held out)", "title"])  # seen: never recommended
    unseen = 20 - len(history_items)
    assert 0 < unseen < 20
    for lst in at.dataframe[1:4]:  # a full 20 would have to repeat seen items: the lists stop at the unseen ones
        assert lst.value.shape[0] == unseen and not history_items & set(lst.value["title"])
