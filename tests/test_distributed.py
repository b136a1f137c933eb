"""Training under torchrun (distill_core.distributed): two gloo ranks on this machine.

* The DDP step, in two spawned ranks: the averaged gradient (of the model and of a weight of the loss's own, as
  DE's experts) and the logged loss are those of the whole global batch computed in one process by autograd, also
  for a last batch of 5 examples (3 + 2) and of 1 (one rank without an example); only rank 0 validates and every
  rank gets its metrics; ``agree`` is rank 0's flag.
* ``distributed.shutdown`` frees the fits' DDP wrappers before it destroys the group.
* ``torchrun --nproc_per_node 2 -m distill_core run`` on the sample for 1 epoch: the same test metrics as one
  process, ``config.world_size`` 2 and each rank's measured share of the examples in the report.
"""
from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist

from distill_core import distributed
from distill_core.cli import main
from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput

from conftest import ROOT

RUN = ["run", "--teacher", "mf", "--teacher-dim", "8", "--student-dim", "4", "--epochs", "1", "--device", "cpu"]
ROLES = ("teacher", "student_kd", "student_plain")


# ----------------------------------------------------------------------------- the DDP step, by hand
def _problem() -> tuple[torch.nn.Module, torch.nn.Parameter, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 6)  # 6 "items"
    w = torch.nn.Parameter(torch.tensor(0.5))  # a weight of the loss's own (as DE's experts are)
    return model, w, torch.randn(7, 4), torch.randint(0, 6, (7,))


def _loss_fn(model, w, x, y):
    def loss(idx: torch.Tensor) -> KDLossOutput:
        ce = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        return KDLossOutput(ce=ce, kl=ce * 0, total=ce * w)
    loss.parameters = (w,)  # what distill._loss_maker lists for the trainer
    return loss


def _free_port() -> str:
    """A port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _rank(rank: int, port: str, out: str) -> None:
    # the rendezvous torchrun and distributed.init_from_env use: env://, a TCP store on loopback (rank 0 hosts it)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    tdist.init_process_group("gloo", init_method="env://", world_size=2, rank=rank)
    dist = distributed.Distributed(rank, 2, rank, "gloo", torch.device("cpu"))
    distributed._current = dist
    model, w, x, y = _problem()
    step = dist.wrap(model, _loss_fn(model, w, x, y))
    results = []
    for idx in (torch.tensor([6, 0, 3, 5, 1]), torch.tensor([2])):
        ref_model, ref_w, _, _ = _problem()  # the reference: one process, the whole batch, autograd
        ref = _loss_fn(ref_model, ref_w, x, y)(idx)
        ref.total.backward()
        model.zero_grad()
        w.grad = None
        got = step(idx)
        got.total.backward()
        results.append({"total": [got.total.item(), ref.total.item()], "ce": [got.ce.item(), ref.ce.item()],
                        "grad": [[p.grad.tolist() for p in (*model.parameters(), w)],
                                 [p.grad.tolist() for p in (*ref_model.parameters(), ref_w)]]})
    calls = []

    def validate() -> dict[str, float]:
        calls.append(rank)
        return {"ndcg@10": 0.25}
    metrics = dist.validate(validate)()
    flag = distributed.agree(rank == 0)  # True on rank 0 only: rank 0's wins
    Path(out, f"{rank}.json").write_text(json.dumps({"steps": results, "validated": calls, "metrics": metrics,
                                                     "agree": flag, "fits": dist.fits}))
    # the DDP wrapper (in a reference cycle) must go before the group: freed after destroy_process_group, 2 runs
    # in 100 under pytest died in C++ teardown ("terminate called without an active exception", exit -6); with
    # distributed.shutdown collecting it first, 0 in 100
    del step
    distributed.shutdown()


def test_the_ddp_step_gives_the_global_batchs_gradient_and_loss_and_rank_0_validates(tmp_path: Path):
    # two fresh interpreters (not mp.spawn: it re-runs __main__, which an AppTest earlier in the session replaced)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_distributed as t; "
            "t._rank(int(sys.argv[2]), *sys.argv[3:])")
    port = _free_port()  # for rank 0's store
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tests"), str(r), port, str(tmp_path)], cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    # each rank's whole stderr (a list in the message would be cut short)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(
        f"--- rank {r}, exit {p.returncode}, stderr:\n{e}" for r, (p, e) in enumerate(zip(procs, errors)))
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        for s in r["steps"]:
            assert s["total"][0] == pytest.approx(s["total"][1], rel=1e-6)  # the global batch's mean loss
            assert s["ce"][0] == pytest.approx(s["ce"][1], rel=1e-6)
            for got, ref in zip(*s["grad"]):  # DDP's average = the one-process gradient of the whole batch
                torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-6, atol=1e-7)
        assert r["metrics"] == {"ndcg@10": 0.25} and r["agree"] is True
    assert ranks[0]["steps"][0]["grad"][0] == ranks[1]["steps"][0]["grad"][0]  # the same on every rank
    assert [r["validated"] for r in ranks] == [[0], []]  # only rank 0 ran the validation
    assert [r["fits"] for r in ranks] == [[3 + 1], [2 + 0]]  # [6, 3, 1] + [2]; [0, 5] + none


def test_shutdown_frees_the_ddp_wrappers_before_it_destroys_the_group(monkeypatch):
    # DDP sits in a reference cycle, so a fit's wrapper outlives the fit until the cyclic GC runs; left alive past
    # destroy_process_group (or to the interpreter's exit) its teardown can die in C++ (exit -6, see above)
    from torch.nn.parallel import DistributedDataParallel
    monkeypatch.setenv("MASTER_PORT", _free_port())
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    tdist.init_process_group("gloo", init_method="env://", world_size=1, rank=0)
    monkeypatch.setattr(distributed, "_current", distributed.Distributed(0, 1, 0, "gloo", torch.device("cpu")))

    def live() -> int:
        return sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    gc.disable()  # no collection by chance before the check
    try:
        model, w, x, y = _problem()
        step = distributed.current().wrap(model, _loss_fn(model, w, x, y))
        step(torch.tensor([0, 1, 2])).total.backward()
        box: list = [step]  # held by a cycle of its own, as DDP's own cycle holds it (whether torch's is formed
        box.append(box)     # depends on what ran before in the session), so only the cyclic GC can free it
        del step, box
        assert live() == 1  # the fit is over, its wrapper is still there
        destroyed = []
        real = tdist.destroy_process_group
        monkeypatch.setattr(tdist, "destroy_process_group", lambda: (destroyed.append(live()), real()))
        distributed.shutdown()
    finally:
        gc.enable()
    assert destroyed == [0] and distributed.current() is None and not tdist.is_initialized()


def test_a_single_process_is_not_distributed_and_bad_torchrun_variables_name_the_variable(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.init_from_env() is None and distributed.current() is None and distributed.agree(True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env() is None  # torchrun --nproc_per_node 1: a single process
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE='two' is not an integer"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not: start the command "
                                          "with torchrun"):
        distributed.init_from_env()


# ----------------------------------------------------------------------------- torchrun, end to end
def test_torchrun_with_two_processes_matches_one_process_and_reports_each_ranks_share(tmp_path: Path, capsys,
                                                                                     monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert main(RUN + ["--out", str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "distill_core", *RUN, "--out", str(tmp_path / "two.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert proc.stderr.count("training the teacher") == 1  # rank 1 is quiet: rank 0 speaks for both

    assert one["config"]["world_size"] == 1 and "distributed" not in one
    assert two["config"]["world_size"] == 2 and two["distributed"]["backend"] == "gloo"
    n = one["dataset"]["interactions"] - 2 * one["dataset"]["users"]  # training examples: all but valid + test
    per_fit = two["distributed"]["per_fit"]
    assert len(per_fit) == 3  # teacher, distilled student, plain student; 1 epoch each
    for k0, k1 in per_fit:
        assert k0 + k1 == n and abs(k0 - k1) <= 1  # each rank trained on its half of every batch
    assert two["distributed"]["share_per_rank"] == pytest.approx([0.5, 0.5], abs=1e-4)
    for role in ROLES:
        for metric in ("ndcg@10", "hr@10", "mrr"):
            # the same optimiser steps up to float summation order; 1e-3 is one user's hit among 1,000
            assert two[role]["metrics"][metric] == pytest.approx(one[role]["metrics"][metric], abs=1e-3), (role, metric)
    assert one["teacher"]["metrics"]["ndcg@10"] != one["student_plain"]["metrics"]["ndcg@10"]  # real numbers
