"""Export a trained model for serving, and check that the exported file ranks like the original.

The exported module has one signature for every family: ``forward(users, seq) -> scores`` with
``users`` ``(batch,)`` int64 user indices, ``seq`` ``(batch, max_len)`` int64 item indices of each
user's most recent items, newest last, left-padded with ``n_items`` (``mf`` ignores ``seq``; pass
any ``(batch, 1)`` tensor), and ``scores`` ``(batch, n_items)`` logits. The indices are the dataset's
contiguous ones; the TorchScript file carries ``recdistill.json`` (family, sizes, the original user
and item ids) among its extra files.

TorchScript is made with ``torch.jit.trace`` in eval mode (dropout off). The trace records the
operations run on the example input, which is right here because no model branches on the data;
the ranking check below is what proves it for a given run: the file is loaded back from its bytes
and its top-K lists and scores are compared with the original model's on a sample of test users,
each with their test-time history (training items plus the validation item).
"""
from __future__ import annotations

import copy
import importlib.util
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from distill_core.data.dataset import Dataset, Split
from distill_core.errors import ConfigError
from distill_core.models import Recommender
from distill_core.models.base import recent_history
from distill_core.store import RunRecord

log = logging.getLogger(__name__)

META_FILE = "recdistill.json"
SERVING_FORMAT = "recdistill-serving/1"
Scores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (users, seq) -> (batch, n_items)


def onnx_available() -> bool:
    """Whether ``onnx`` and ``onnxscript`` (which torch's ONNX exporter needs) can be imported; ONNX export
    is offered only then."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


class _Serving(nn.Module):
    """``forward(users, seq)`` for every family: id-only models drop ``seq``."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model
        self.uses_seq = model.sequential

    def forward(self, users: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        return self.model(users, seq if self.uses_seq else None)  # (batch, n_items)


@dataclass(frozen=True)
class RankingCheck:
    """How the exported model's rankings compare with the original's on ``users`` sampled users."""

    users: int
    k: int
    identical_top_k: int  # users whose ordered top-K item lists are identical
    tie_equivalent_top_k: int  # ... identical up to swaps of items the original scores equally
    max_abs_diff: float  # largest |score difference| over every item of every sampled user
    allclose: bool  # torch.allclose(exported, original, rtol, atol)
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.allclose and self.tie_equivalent_top_k == self.users


@dataclass(frozen=True)
class Exported:
    """An exported model: the file's bytes, a name for it, what it carries, and its ranking check."""

    format: str  # "torchscript" | "onnx"
    data: bytes
    file_name: str
    meta: dict[str, Any]
    check: RankingCheck | None  # None: nothing here could run the file (ONNX without onnxruntime)


def serving_meta(model: Recommender, ds: Dataset, rec: RunRecord | None = None) -> dict[str, Any]:
    """What a server needs besides the weights: sizes, the input convention and the original ids."""
    return {"format": SERVING_FORMAT, "run": rec.id if rec else None, "kind": rec.kind if rec else None,
            "dataset": ds.name, "fingerprint": ds.fingerprint, "family": model.family, "dim": model.spec.dim,
            "n_users": model.n_users, "n_items": model.n_items, "max_len": _seq_len(model),
            "pad_item": model.n_items, "inputs": {"users": "(batch,) int64 user index",
                                                  "seq": "(batch, max_len) int64 recent item indices, newest "
                                                         "last, left-padded with pad_item (ignored by mf)"},
            "output": "(batch, n_items) float32 scores; higher ranks first",
            "user_ids": ds.user_ids.tolist(), "item_ids": ds.item_ids.tolist()}


def _seq_len(model: Recommender) -> int:
    return max(model.max_len, 1)


def sample_users(split: Split, n: int = 200, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` test users, drawn without replacement, in index order."""
    users = split.eval_users("test")
    if len(users) == 0:
        raise ConfigError("the ranking check needs users with a test item, and this split has none")
    pick = np.random.default_rng(seed).choice(users, size=min(n, len(users)), replace=False)
    return torch.as_tensor(np.sort(pick), dtype=torch.long)


def serving_inputs(model: Recommender, split: Split, users: torch.Tensor, part: str = "test"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(users, seq)`` as a server would pass them: each user's history as of ``part``'s ranking."""
    seq = recent_history(*split.context(part), split.n_items, _seq_len(model))  # (n_users, max_len)
    return users, seq[users]


def check_ranking(original: Recommender, exported: Scores, users: torch.Tensor, seq: torch.Tensor, k: int = 10,
                  rtol: float = 1e-4, atol: float = 1e-5) -> RankingCheck:
    """Score ``users`` with both models and compare their top-``k`` lists and their scores."""
    device = next(original.parameters()).device
    with torch.no_grad():
        ref = original.score_all(users.to(device), seq.to(device) if original.sequential else None).cpu()
        got = exported(users, seq)  # (batch, n_items) each
    if got.shape != ref.shape:
        raise ConfigError(f"the exported model returned scores of shape {tuple(got.shape)}, "
                          f"the original {tuple(ref.shape)}")
    got = got.to(ref.dtype)
    k = min(k, ref.shape[1])
    top_ref, top_got = ref.topk(k).indices, got.topk(k).indices  # (batch, k)
    identical = (top_ref == top_got).all(1)
    # a swap of two items the original scores equally is not a different ranking
    tied = torch.isclose(ref.gather(1, top_got), ref.gather(1, top_ref), rtol=rtol, atol=atol).all(1)
    return RankingCheck(users=len(users), k=k, identical_top_k=int(identical.sum()),
                        tie_equivalent_top_k=int((identical | tied).sum()),
                        max_abs_diff=float((got - ref).abs().max()) if ref.numel() else 0.0,
                        allclose=bool(torch.allclose(got, ref, rtol=rtol, atol=atol)), rtol=rtol, atol=atol)


def _prepared(model: Recommender) -> _Serving:
    # a copy on the CPU: a served file must not depend on this machine's GPU, and the caller's model
    # (often a shared, cached one) keeps its device and mode
    m = copy.deepcopy(model).cpu().eval()
    if m.sequential:  # the stored context is not served (``seq`` is an input): keep it out of the file
        m.history = m.history[:0]
    return _Serving(m).eval()


def export_torchscript(model: Recommender, split: Split, meta: dict[str, Any], *, n_check: int = 200, k: int = 10,
                       seed: int = 0) -> Exported:
    """Trace ``model`` to TorchScript, save it with ``meta``, load the bytes back and check its rankings."""
    serving = _prepared(model)
    users, seq = serving_inputs(serving.model, split, sample_users(split, n_check, seed))
    example = (users[:8], seq[:8])
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # torch 2.13 marks jit deprecated (it still works, and TorchScript is what C++ servers load), and
        # the embedding's padding_idx bounds check reads a size as a Python bool; neither changes the trace
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(serving, example, check_trace=False)
        torch.jit.save(traced, buf, _extra_files={META_FILE: json.dumps(meta)})
    data = buf.getvalue()
    loaded = load_torchscript(data)[0]
    check = check_ranking(model, loaded, users, seq, k=k)
    log.info("TorchScript export of %s: %d bytes, top-%d identical for %d/%d users, max |diff| %.3g",
             meta.get("run"), len(data), check.k, check.identical_top_k, check.users, check.max_abs_diff)
    return Exported("torchscript", data, f"{meta.get('run') or model.family}.torchscript.pt", meta, check)


def load_torchscript(data: bytes) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """A TorchScript file's module (on the CPU, eval mode) and its ``recdistill.json``."""
    extra = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    raw = extra[META_FILE]
    return module.eval(), json.loads(raw) if raw else {}


def export_onnx(model: Recommender, split: Split, meta: dict[str, Any], *, n_check: int = 200, k: int = 10,
                seed: int = 0) -> Exported:
    """ONNX export (needs ``onnx`` and ``onnxscript``); its ranking check runs when ``onnxruntime`` is installed.

    The batch dimension is dynamic; ``seq`` must be ``(batch, max_len)``. ``meta`` is not embedded
    (ONNX has no extra files); it travels in the run's JSON bundle and the TorchScript file.
    """
    if not onnx_available():
        raise ConfigError("ONNX export needs the 'onnx' and 'onnxscript' packages, which are not installed here; "
                          "export TorchScript instead, or install onnx and onnxscript (and onnxruntime to check "
                          "the file)")
    serving = _prepared(model)
    users, seq = serving_inputs(serving.model, split, sample_users(split, n_check, seed))
    with tempfile.TemporaryDirectory(prefix="recdistill-onnx-") as d, torch.no_grad():
        path = Path(d) / "model.onnx"
        # torch.export-based exporter: the TorchScript-based one (dynamo=False, deprecated) cannot export
        # SASRec (the fused transformer layer, a bool EyeLike onnxruntime lacks); one self-contained file
        batch = torch.export.Dim("batch")
        torch.onnx.export(serving, (users[:8], seq[:8]), str(path), dynamo=True, external_data=False,
                          input_names=["users", "seq"], output_names=["scores"],
                          dynamic_shapes=({0: batch}, {0: batch}), verbose=False)
        data = path.read_bytes()
    check = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort  # optional dependency

        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        # feed only the inputs the graph declares: an exporter may drop one it never reads (mf's ``seq``)
        wanted = {i.name for i in session.get_inputs()}

        def run(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            feed = {name: t.numpy() for name, t in (("users", u), ("seq", s)) if name in wanted}
            return torch.from_numpy(session.run(["scores"], feed)[0])
        check = check_ranking(model, run, users, seq, k=k)
    return Exported("onnx", data, f"{meta.get('run') or model.family}.onnx", meta, check)
