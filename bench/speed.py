"""Engine speed: training throughput against a minimal hand-written loop, full-ranking evaluation
(time, peak memory, largest users x items block), and how epoch time and memory grow with the data.

    .venv/bin/python bench/speed.py            # full run (about 11 minutes on 2 cores, longer when shared)
    .venv/bin/python bench/speed.py --quick    # a short run while developing

Throughput: the engine runs as the dashboard runs it (``train_model`` inside a ``JobRunner`` job,
with the runner's progress callback writing a snapshot every step, validation every epoch, the
soft-label lookup of the distilled student); the minimal loop is the same model, loss, batches and
optimizer written out by hand in this file. Both start from the same seed, so their first-epoch
mean losses must agree: the check that they do the same work.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import _common as C
import torch
import torch.nn.functional as F

from distill_core import RunConfig, evaluate, train_model
from distill_core.models import build_model
from distill_core.runner import JobRunner
from distill_core.trainer import TrainerControl, seeded

TARGET = 1.15  # engine time per epoch / minimal loop's


class EpochTimer:
    """Trainer callback: seconds of each epoch's training steps, and of the whole epoch (with
    validation); optionally stops the run after ``budget_s`` (the scaling runs)."""

    def __init__(self, control: TrainerControl | None = None, budget_s: float | None = None) -> None:
        self.train: list[float] = []
        self.epoch: list[float] = []
        self.steps_done = 0
        self.steps_per_epoch = 0
        self.control, self.budget_s = control, budget_s

    def on_event(self, name: str, p: dict[str, Any]) -> None:
        now = time.perf_counter()
        if name == "train_start":
            self.t0 = self.t_epoch = now
            self.steps_per_epoch = p["steps_per_epoch"]
        elif name == "step_end":
            self.steps_done += 1
            self.t_step = now
            if p["step"] == p["steps_per_epoch"]:
                self.train.append(now - self.t_epoch)
            if self.budget_s is not None and now - self.t0 > self.budget_s:
                self.control.should_stop = True  # type: ignore[union-attr]
        elif name == "epoch_end":
            self.epoch.append(now - self.t_epoch)
            self.t_epoch = now


def engine_run(split, spec, train, teacher=None, distill=None) -> dict[str, Any]:
    timer = EpochTimer()
    runner = JobRunner()
    role = "student_kd" if teacher is not None else "teacher"
    jid = runner.submit("bench", lambda ctx: train_model(split, spec, train, role=role, teacher=teacher,
                                                         distill=distill, callbacks=[ctx.callback, timer],
                                                         control=ctx.control))
    snap = runner.wait(jid)
    if snap.status != "done":
        raise RuntimeError(f"engine run {snap.status}: {snap.error}")
    tm = snap.result
    return {"train": timer.train, "epoch": timer.epoch, "loss1": tm.fit.history[0]["total"], "model": tm.model,
            "snapshot_steps": len(snap.steps)}


def teacher_log_p(teacher, split, temperature: float) -> torch.Tensor:
    """By hand: ``log_softmax(teacher / T)`` of every user after their training sequence."""
    teacher.set_context(*split.context("train"))
    with torch.no_grad():
        t = torch.cat([teacher.score_all(torch.arange(s, min(s + 1024, split.n_users)))
                       for s in range(0, split.n_users, 1024)])
        return F.log_softmax(t / temperature, dim=-1)


def minimal_run(split, spec, train, log_p=None, alpha=1.0, T=1.0) -> dict[str, Any]:
    """The hand-written loop: same model, loss, batches, optimizer; validation timed apart."""
    with seeded(train.seed):
        model = build_model(spec, split)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    gen = torch.Generator().manual_seed(train.seed)
    if model.window_training:
        x, y = (torch.as_tensor(a) for a in split.train_windows(model.max_len)[1:])
        n, B = len(x), max(1, train.batch_size // model.max_len)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            seq, tgt = x[idx], y[idx]
            valid = tgt >= 0
            return F.cross_entropy(model.forward_all(seq)[valid], tgt[valid])
    else:
        users, items = torch.as_tensor(split.train_users), torch.as_tensor(split.train_items)
        n, B = len(items), train.batch_size

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            u = users[idx]
            s = model(u)  # (B, n_items)
            ce = F.cross_entropy(s, items[idx])
            if log_p is None:
                return ce
            kl = F.kl_div(F.log_softmax(s / T, dim=-1), log_p[u], reduction="batchmean", log_target=True)
            return alpha * ce + (1.0 - alpha) * T ** 2 * kl

    out: dict[str, Any] = {"train": [], "valid": [], "losses": []}
    for _ in range(train.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, B):
            idx = perm[s:s + B]
            loss = loss_of(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        out["train"].append(time.perf_counter() - t0)
        out["losses"].append(total / n)
        t1 = time.perf_counter()
        evaluate(model, split, "valid", ks=(10,))  # what any loop with early stopping does
        out["valid"].append(time.perf_counter() - t1)
    out["loss1"] = out["losses"][0]
    return out


def throughput(split, cfg: RunConfig, args) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    epochs, repeats = (1, args.repeats or 2) if args.quick else (2, args.repeats or 5)
    t_train = replace(cfg.teacher_train, epochs=epochs, patience=0, device="cpu")
    s_train = replace(cfg.student_train, epochs=epochs, patience=0, device="cpu")
    rows, teacher, models = [], None, {}
    n_targets = int((split.train_windows(cfg.teacher.max_len)[2] >= 0).sum())
    for role in ("teacher", "student_kd"):
        if role == "teacher":
            res = C.interleave({"engine": lambda: engine_run(split, cfg.teacher, t_train),
                                "minimal": lambda: minimal_run(split, cfg.teacher, t_train)}, repeats)
            teacher = res["engine"][-1]["model"]
            spec, examples = cfg.teacher, n_targets
        else:
            d = cfg.distill
            log_p = teacher_log_p(teacher, split, d.temperature)
            res = C.interleave({
                "engine": lambda: engine_run(split, cfg.student, s_train, teacher=teacher, distill=d),
                "minimal": lambda: minimal_run(split, cfg.student, s_train, log_p, d.alpha, d.temperature)}, repeats)
            spec, examples = cfg.student, len(split.train_items)
        models[role] = res["engine"][-1]["model"]
        e_train = C.median([t for r in res["engine"] for t in r["train"]])
        e_epoch = C.median([t for r in res["engine"] for t in r["epoch"]])
        m_train = C.median([t for r in res["minimal"] for t in r["train"]])
        m_valid = C.median([t for r in res["minimal"] for t in r["valid"]])
        m_epoch = C.median([a + b for r in res["minimal"] for a, b in zip(r["train"], r["valid"])])
        paired = [C.median(e["train"]) / C.median(m["train"]) for e, m in zip(res["engine"], res["minimal"])]
        loss_diff = max(abs(e["loss1"] - m["loss1"]) for e, m in zip(res["engine"], res["minimal"]))
        rows.append({"model": f"{role} ({spec.family} dim {spec.dim})", "examples": examples,
                     "engine ex/s": examples / e_train, "minimal ex/s": examples / m_train,
                     "train ratio": e_train / m_train, "paired min-max": f"{min(paired):.3f}-{max(paired):.3f}",
                     "epoch ratio (with validation)": e_epoch / m_epoch, "validation s": m_valid,
                     "engine train s": e_train, "minimal train s": m_train, "engine epoch s": e_epoch,
                     "minimal epoch s": m_epoch,
                     "epoch-1 loss |diff|": loss_diff,
                     "target <= 1.15": C.verdict(e_train / m_train <= TARGET and e_epoch / m_epoch <= TARGET),
                     "runs": repeats, "epochs/run": epochs})
    return rows, models


def evaluation(split, models: dict[str, Any], args) -> list[dict[str, Any]]:
    chunks = [128, 512] if args.quick else [64, 256, 512, 2048]
    rows = []
    for name, model in models.items():
        ref = None
        for chunk in chunks:
            times = [C.timed(lambda: evaluate(model, split, "test", chunk=chunk)) for _ in range(2 if args.quick else 3)]
            with C.PeakRSS() as mem, ItemsRows(split.n_items) as big:
                m = evaluate(model, split, "test", chunk=chunk)
            ref = ref or m
            n_users = int(m["users"])
            rows.append({"model": name, "chunk": chunk, "users": n_users, "items": split.n_items,
                         "seconds": C.median(times), "peak tensor MiB": C.mib(big.peak),
                         "peak RSS rise MiB": C.mib(mem.rise),
                         "largest users x items block": f"{big.rows} x {split.n_items}",
                         "dense matrix MiB (float64)": C.mib(n_users * split.n_items * 8),
                         "block <= chunk": C.verdict(big.rows <= chunk),
                         "metrics |diff| vs first chunk": max(abs(m[k] - ref[k]) for k in ref)})
    return rows


class ItemsRows(C.LargestTensor):
    """Also the most rows of any ``(rows, n_items)`` tensor an op creates (a users x items block)."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.n_items, self.rows = n_items, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = super().__torch_dispatch__(func, types, args, kwargs)
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[1] == self.n_items:
                self.rows = max(self.rows, t.shape[0])
        return out


def scaling(cfg: RunConfig, args) -> list[dict[str, Any]]:
    """One epoch (or ``--epoch-budget`` seconds of it) and one validation pass per model and scale.

    ``users``: users and interactions x k, the sample's catalogue kept; ``items``: ``SampleSpec().scaled(k)``,
    users, items and interactions x k (a users x items table grows as k^2)."""
    factors = [1, 4] if args.quick else [1, 4, 16]
    budget = 20.0 if args.quick else args.epoch_budget
    rows = []
    for mode in args.scaling_modes:
        for k in factors:
            if k == 1 and mode != args.scaling_modes[0]:
                continue  # 1x is the same data in every mode
            t0 = time.perf_counter()
            ds, split = C.scaled_split(k, scale_items=(mode == "items"))
            load_s = time.perf_counter() - t0
            # time and memory do not depend on the weights: an untrained teacher gives the soft labels
            with seeded(0):
                teacher = build_model(cfg.teacher, split)
            for role, spec, tcfg in (("teacher", cfg.teacher, cfg.teacher_train),
                                     ("student_kd", cfg.student, cfg.student_train)):
                control = TrainerControl()
                timer = EpochTimer(control, budget)
                kw = {"teacher": teacher, "distill": cfg.distill} if role == "student_kd" else {}
                with C.PeakRSS() as mem:
                    t1 = time.perf_counter()
                    tm = train_model(split, spec, replace(tcfg, epochs=1, patience=0, device="cpu"), role=role,
                                     callbacks=[timer], control=control, **kw)
                steps = timer.steps_per_epoch
                if timer.train:
                    epoch_s, how = timer.train[0], "measured"
                else:  # stopped after the budget: the epoch's time from its steps so far
                    epoch_s = (timer.t_step - timer.t0) / timer.steps_done * steps
                    how = f"est. from {timer.steps_done} steps"
                with C.PeakRSS() as emem, ItemsRows(split.n_items) as big:
                    te = time.perf_counter()
                    evaluate(tm.model, split, "valid", ks=(10,))
                    eval_s = time.perf_counter() - te
                rows.append({"scale": f"{k}x" + ("" if k == 1 else f" {mode}"), "users": ds.n_users,
                             "items": ds.n_items, "interactions": ds.n_interactions, "model": role,
                             "setup s": timer.t0 - t1, "steps/epoch": steps, "epoch s": epoch_s, "epoch": how,
                             "examples/s": len(split.train_items) / epoch_s, "train peak RSS MiB": C.mib(mem.peak),
                             "train RSS rise MiB": C.mib(mem.rise), "eval s": eval_s,
                             "eval peak tensor MiB": C.mib(big.peak), "eval block rows": big.rows,
                             "load+split s": load_s})
                del tm
    return rows


def main() -> None:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--skip", nargs="*", default=[], choices=["throughput", "evaluation", "scaling"])
    p.add_argument("--epoch-budget", type=float, default=90.0,
                   help="scaling: seconds of training per model and scale before the epoch time is "
                        "estimated from the steps so far")
    p.add_argument("--scaling-modes", nargs="+", default=None, choices=["users", "items"],
                   help="scaling: 'users' multiplies users and interactions (catalogue kept); 'items' uses "
                        "SampleSpec().scaled(k), users, items and interactions (default: both; --quick: users)")
    args = p.parse_args()
    args.scaling_modes = args.scaling_modes or (["users"] if args.quick else ["users", "items"])
    started = C.start(args)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's one-time lazy imports, out of every timing
    cfg = RunConfig()
    ds, split = C.sample_split()
    print(f"sample: {ds.n_users} users, {ds.n_items} items, {len(split.train_items)} training pairs", flush=True)
    out: dict[str, Any] = {"targets": {"train_ratio_max": TARGET, "epoch_ratio_max": TARGET}}
    with C.quiet_logs():
        models: dict[str, Any] = {}
        if "throughput" not in args.skip:
            rows, models = throughput(split, cfg, args)
            out["throughput"] = rows
            C.table("Training throughput: engine vs minimal loop (medians, interleaved runs)", rows)
        if "evaluation" not in args.skip:
            for role, spec in (("teacher", cfg.teacher), ("student_kd", cfg.student)):
                if role not in models:  # untrained: time and memory do not depend on the weights
                    with seeded(0):
                        models[role] = build_model(spec, split)
            rows = evaluation(split, {f"teacher {cfg.teacher.family}": models["teacher"],
                                      f"student {cfg.student.family} dim {cfg.student.dim}": models["student_kd"]}, args)
            out["evaluation"] = rows
            C.table("Full-ranking evaluation (test split, all items, seen items masked)", rows)
        if "scaling" not in args.skip:
            rows = scaling(cfg, args)
            out["scaling"] = rows
            C.table("Scaling: one epoch and one validation pass per model", rows)
    C.write_json("speed", args, out, started)


if __name__ == "__main__":
    main()
