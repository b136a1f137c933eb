"""The Data page (app_pages/data.py) through AppTest, on the bundled sample: uploads, folders and the sample,
the active dataset kept on errors, and where each user's order comes from. Bad uploads and typed paths in
detail: test_uploads.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from ui import registry

from _pages import caption, chart_specs, metrics, open_page


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # the registry of this test's private store


def test_data_page_loads_uploads_and_folders_and_keeps_the_dataset_on_errors(tiny_dir: Path):
    at = open_page("app_pages/data.py")
    assert metrics(at)["Users"] == "1,000" and "**ml-latest**" in caption(at, "Format detected")
    assert [d.value.shape[0] for d in at.dataframe] == [3, 3, 50]  # split sizes, training plan, preview
    specs = chart_specs(at)
    assert [s["layout"]["title"]["text"] for s in specs] == ["Item popularity (long tail)", "User activity"]

    at.file_uploader(key="data_upload").set_value(("bad.csv", b"a;b\nnot,really;data\n", "text/csv")).run()
    assert len(at.error) == 1 and "bad.csv" in at.error[0].value and "stays active" in at.error[0].value
    assert "recdistill-upload" not in at.error[0].value  # the message names the file, not a temp folder
    assert metrics(at)["Users"] == "1,000" and "sample" in at.sidebar.caption[0].value

    data = (tiny_dir / "ratings.csv").read_bytes()
    at.file_uploader(key="data_upload").set_value(("ratings.csv", data, "text/csv")).run()
    assert not at.error and metrics(at)["Users"] == "80"
    assert "**csv**" in caption(at, "Format detected")
    assert at.sidebar.caption[0].value.startswith("ratings (csv): 80 users")

    at.text_input(key="data_folder").set_value(str(tiny_dir / "missing")).run()
    at.button(key="data_load").click().run()
    assert "path does not exist" in at.error[0].value and metrics(at)["Users"] == "80"
    at.text_input(key="data_folder").set_value(str(tiny_dir)).run()
    at.button(key="data_load").click().run()
    assert not at.error and "**ml-latest**" in caption(at, "Format detected")

    at.button(key="data_sample").click().run()
    assert metrics(at)["Users"] == "1,000"


def test_data_page_says_where_each_users_order_comes_from():
    at = open_page("app_pages/data.py")
    assert caption(at, "Order within each user") == "Order within each user: by timestamp (ties keep file order)"
    lines = "".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 8))  # SASRec layout: no header, no time
    at.file_uploader(key="data_upload").set_value(("ml-1m.txt", lines.encode(), "text/plain")).run()
    assert not at.error and metrics(at)["Interactions"] == "35"
    assert "**sequences**" in caption(at, "Format detected")
    assert caption(at, "Order within each user") == "Order within each user: by file order (no timestamps)"


def test_data_page_says_which_path_a_large_catalogue_takes_and_times_it(tmp_path: Path):
    """The sample trains on the full softmax; a catalogue above catalogue.FULL_MAX_ITEMS on the sampled one with
    top-K soft labels; the timing button fills in each model's epoch estimate."""
    from distill_core import catalogue
    from distill_core.data.synthetic import SyntheticSpec, write

    at = open_page("app_pages/data.py")
    plan = at.dataframe[1].value
    assert plan["training path"].str.startswith("full softmax").all()
    assert plan["epoch (s, estimate)"].isna().all()

    write(tmp_path / "big", SyntheticSpec(n_users=3000, n_items=12000, mean_activity=8))  # 6,059 items seen
    assert catalogue.FULL_MAX_ITEMS < 6059
    at.text_input(key="data_folder").set_value(str(tmp_path / "big")).run()
    at.button(key="data_load").click().run()
    assert not at.error
    plan = at.dataframe[1].value
    assert plan["training path"].str.startswith("sampled softmax").all()
    assert "top-128" in plan["training path"][1] and "top-" not in plan["training path"][2]  # KD, plain
    at.button(key="data_time").click().run()
    plan = at.dataframe[1].value
    assert (plan["epoch (s, estimate)"] > 0).all() and (plan["steps per epoch"] > 0).all()
