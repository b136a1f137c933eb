"""The run store's files (distill_core.store): weights written whole under a temporary name and renamed,
corrupt or foreign weight files refused without trusting a pickle, nothing written or deleted outside
the store's folder.
"""
from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest
import torch

from distill_core import RunStore
from distill_core.errors import StoreError
from distill_core.store import load_state_dict_file


def test_store_roundtrip_delete_and_refusals(tmp_path):
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "fp", "ds", {"a": 1})
    sd = {"w": torch.arange(4.0)}
    store.finish_run(rid, "done", metrics={"ndcg@10": 0.1}, state_dict=sd)
    assert torch.equal(store.load_weights(rid)["w"], sd["w"])
    assert not list((tmp_path / "weights").glob("*.tmp"))
    weights = tmp_path / "weights" / store.get(rid).weights
    store.delete(rid)
    assert not weights.exists() and store.runs() == []
    with pytest.raises(StoreError, match="no run"):
        store.get(rid)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(StoreError, match="cannot be loaded"):
        load_state_dict_file(bad)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(StoreError, match="not a state dict"):
        load_state_dict_file(tmp_path / "list.pt")


def test_weights_are_written_to_a_temporary_name_and_renamed(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src).name, Path(dst).name, Path(src).stat().st_size))
        real_replace(src, dst)
    monkeypatch.setattr("distill_core.store.os.replace", spy)
    rid = store.create_run("teacher", "fp", "ds", {})
    store.finish_run(rid, "done", state_dict={"w": torch.arange(1000.0)})
    (tmp_name, final_name, size), = renames
    assert tmp_name.startswith(".") and tmp_name.endswith(".tmp") and final_name == store.get(rid).weights
    assert size == (tmp_path / "weights" / final_name).stat().st_size  # whole before the rename

    # a crash between the write and the rename: no file under the final name, the run is not "done"
    def crash(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("distill_core.store.os.replace", crash)
    rid2 = store.create_run("teacher", "fp", "ds", {})
    with pytest.raises(StoreError, match="cannot write weight file"):
        store.finish_run(rid2, "done", state_dict={"w": torch.ones(3)})
    rec = store.get(rid2)
    assert rec.status == "failed" and "No space left on device" in rec.error and rec.weights is None
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [final_name]  # the tmp was removed
    with pytest.raises(StoreError, match="has no weights"):
        store.load_weights(rid2)

    # a leftover temporary file (a process killed mid-write) is never what a run points to
    leftover = tmp_path / "weights" / f".{rid2}.pt.0badc0de.tmp"
    leftover.write_bytes(b"half a file")
    assert store.get(rid2).weights is None and store.load_weights(rid)["w"].shape == (1000,)
    # a truncated weight file is refused with a message, never half-loaded
    final = tmp_path / "weights" / final_name
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    with pytest.raises(StoreError, match="cannot be loaded safely"):
        store.load_weights(rid)


class _Payload:
    """Unpickling this calls open(marker, "w"): the marker file exists iff the pickle was trusted."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_corrupt_or_foreign_weight_files_are_refused_and_never_unpickled_with_trust(tmp_path):
    marker = tmp_path / "PWNED"
    evil_torch, evil_pickle = tmp_path / "evil.pt", tmp_path / "evil.pkl"
    torch.save({"w": torch.ones(2), "x": _Payload(marker)}, evil_torch)
    with open(evil_pickle, "wb") as f:
        pickle.dump(_Payload(marker), f)
    # the payload is live: a trusting load runs it (so the test below could fail)
    torch.load(evil_torch, weights_only=False)
    assert marker.exists()
    marker.unlink()

    store = RunStore(tmp_path / "home")
    rid = store.create_run("teacher", "fp", "ds", {})
    store.finish_run(rid, "done", state_dict={"w": torch.ones(2)})
    stored = store.home / "weights" / store.get(rid).weights
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    torch.save({"w": torch.ones(2), "step": 3}, tmp_path / "mixed.pt")
    torch.save({1: torch.ones(2)}, tmp_path / "intkeys.pt")
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    cases = {evil_torch: "cannot be loaded safely", evil_pickle: "cannot be loaded safely",
             tmp_path / "list.pt": "not a state dict", tmp_path / "mixed.pt": "not a state dict",
             tmp_path / "intkeys.pt": "not a state dict", tmp_path / "random.pt": "cannot be loaded safely"}
    for path, message in cases.items():
        with pytest.raises(StoreError, match=message):
            load_state_dict_file(path)
        stored.write_bytes(path.read_bytes())  # the same file in the store, as a run's weights
        with pytest.raises(StoreError, match=message):
            store.load_weights(rid)
        assert not marker.exists(), path.name


def test_the_store_never_writes_outside_its_folder(tmp_path):
    home, outside = tmp_path / "home", tmp_path / "outside.pt"
    outside.write_bytes(b"keep me")
    store = RunStore(home)
    before = {p for p in tmp_path.rglob("*")}
    nasty = ["../../../evil", "/etc/passwd", "..\\..\\x", "a/../../b", "nul\x00byte", "ü" * 300, ".", ""]
    for name in nasty:
        rid = store.create_run(name, "fp", name, {"name": name})
        store.finish_run(rid, "done", state_dict={"w": torch.ones(1)})
        assert store.load_weights(rid)["w"].item() == 1.0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(home in p.parents for p in new), sorted(map(str, new))
    assert all(p.parent == home / "weights" for p in new if p.suffix == ".pt")
    # a tampered row cannot point a load or a delete outside the folder
    rid = store.runs()[0].id
    for target in ("../../outside.pt", str(outside), "../weights/../../outside.pt"):
        with sqlite3.connect(home / "runs.sqlite") as db:
            db.execute("UPDATE runs SET weights = ? WHERE id = ?", (target, rid))
        with pytest.raises(StoreError, match="would leave the store's folder"):
            store.load_weights(rid)
    (home / "weights" / "link.pt").symlink_to(outside)
    with pytest.raises(StoreError, match="would leave"):
        store._weights_path("link.pt")
    with pytest.raises(StoreError, match="would leave"):
        store.delete(rid)
    assert outside.read_bytes() == b"keep me"
