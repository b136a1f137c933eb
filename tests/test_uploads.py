"""Uploads and typed paths (ui/uploads.py), also through the Data page: a bad file shows its message and
keeps the active dataset; an upload is written only under its own sanitised name; a typed path is
resolved and checked before anything reads it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import DataError, load_dataset
from ui import registry, session, uploads
from ui.uploads import resolve_path

from conftest import ROOT


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # jobs an AppTest started in this test's private store


def data_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / "data.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_bad_uploads_show_the_message_and_keep_the_active_dataset(tiny_dir, tmp_path):
    at = data_page()
    good = (tiny_dir / "ratings.csv").read_bytes()
    at.file_uploader(key="data_upload").set_value(("ratings.csv", good, "text/csv")).run()
    fp = at.session_state[session.DATASET_KEY]
    assert not at.error and {m.label: m.value for m in at.metric}["Users"] == "80"
    parquet = tmp_path / "t.parquet"
    import pandas as pd
    pd.DataFrame({"user_id": ["1", "2"], "item_id": ["a", "b"]}).to_parquet(parquet)
    # a name of another type: Streamlit itself refuses it (the uploader's type list) before RecDistill reads it;
    # a browser does not even offer it (the file dialog filters by type), so this takes a crafted request
    at.file_uploader(key="data_upload").set_value(("model.zip", b"PK\x03\x04", "application/zip")).run()
    assert "Invalid file extension: `.zip`" in at.exception[0].message
    at.run()  # the next rerun shows the page again, with the dataset it had
    assert not at.exception and at.session_state[session.DATASET_KEY] == fp
    bad = [("model.csv", b"PK\x03\x04" + os.urandom(300), "binary data"),  # wrong type under a csv name
           ("data.csv", os.urandom(2000).replace(b"\x00", b"\x01") + b"\x00", "binary data"),  # unreadable
           ("data.parquet", parquet.read_bytes()[:40], "cannot read as Parquet"),  # truncated
           ("empty.csv", b"", "file is empty"),
           # one line of prose: with whitespace sniffed (headerless SASRec-style files) it reads as a header
           ("notes.txt", "naïve text without columns\n".encode(), "header only, no data rows"),
           ("notes.csv", "naïve,text\n".encode(), "header only, no data rows"),
           ("one.csv", "naive\nwords\n".encode(), "only one column")]
    for name, data, message in bad:
        at.file_uploader(key="data_upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert len(at.error) == 1 and message in at.error[0].value, (name, [e.value for e in at.error])
        assert "stays active" in at.error[0].value and "recdistill-upload" not in at.error[0].value
        assert at.session_state[session.DATASET_KEY] == fp  # the active dataset is unchanged
        assert {m.label: m.value for m in at.metric}["Users"] == "80"


def test_an_upload_is_written_only_under_its_own_sanitised_name_in_a_private_folder(tmp_path):
    """Streamlit refuses names without an allowed suffix, but load_upload is the last line: ".." named the
    temporary folder's parent (an IsADirectoryError escaped), "../x.csv" must not climb out."""
    rows = b"user,item\n" + b"".join(b"u%d,i%d\n" % (u, i) for u in range(3) for i in range(25))
    for name in ("..", ".", "", "../../../../tmp/evil.csv", "/etc/cron.d/x.csv", "a\x00b.csv"):
        try:
            ds = uploads.load_upload(name, rows)
        except DataError as e:  # a name without a known suffix: refused with the loader's message
            assert "cannot tell the dataset format" in str(e), (name, str(e))
        else:
            assert ds.n_users == 3 and ds.n_items == 25, name
    assert not Path("/tmp/evil.csv").exists() and not Path("/etc/cron.d/x.csv").exists()


def test_typed_paths_are_resolved_and_checked(tmp_path, monkeypatch, tiny_dir):
    monkeypatch.chdir(tiny_dir.parent)
    assert resolve_path(f"  {tiny_dir.name}  ") == tiny_dir.resolve()  # relative, stripped -> absolute
    monkeypatch.setenv("HOME", str(tiny_dir.parent))
    assert resolve_path(f"~/{tiny_dir.name}") == tiny_dir.resolve()
    link = tmp_path / "link"
    link.symlink_to(tiny_dir)
    assert resolve_path(str(link)) == tiny_dir.resolve()  # links followed: the real folder is what loads
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # reading it would block forever
    cases = {"": "empty", "a\x00b": "NUL", "x" * 5000: "cannot use this path", "~no-such-user-xyz/d": "cannot use",
             str(tmp_path / "missing"): "path does not exist", str(loop): "cannot use this path",
             str(fifo): "neither a folder nor a regular file", "/dev/zero": "neither a folder nor a regular file"}
    for text, message in cases.items():
        with pytest.raises(DataError, match=message):
            resolve_path(text)
    for text in ("x" * 5000, "a\x00b"):  # and straight into the loader: a DataError, not an OSError
        with pytest.raises(DataError):
            load_dataset(text)

    at = data_page()  # through the page: each bad path is shown, the sample stays active
    fp = at.session_state[session.DATASET_KEY] if session.DATASET_KEY in at.session_state else None
    for text in ("a\x00b", "x" * 5000, "~no-such-user-xyz/d", str(fifo)):
        at.text_input(key="data_folder").set_value(text).run()
        at.button(key="data_load").click().run()
        assert not at.exception, (text[:20], [e.value for e in at.exception])
        assert at.error and "stays active" in at.error[0].value
        assert (at.session_state[session.DATASET_KEY] if session.DATASET_KEY in at.session_state else None) == fp
    at.text_input(key="data_folder").set_value(f"~/{tiny_dir.name}").run()
    at.button(key="data_load").click().run()
    assert not at.error and {m.label: m.value for m in at.metric}["Users"] == "80"
