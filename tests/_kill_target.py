"""The process that tests/test_store_liveness.py kills with SIGKILL in the middle of a training run.

    python tests/_kill_target.py HOME DATA_DIR

Trains a small teacher to the end in the run store at HOME and prints ``DONE <run id> <sum of its
weights>``; then starts a long teacher and prints ``TRAINING <run id>`` once its first epoch is in
the store (at the first step of epoch 2), and trains on until it is killed.
"""
from __future__ import annotations

import sys

from distill_core import ModelSpec, RunStore, TrainConfig, load_dataset
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job


def main(home: str, data: str) -> None:
    store, runner, ds = RunStore(home), JobRunner(), load_dataset(data)
    done = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", 8), TrainConfig(
        epochs=1, batch_size=256, device="cpu"), store)))
    rid = done.result
    total = sum(float(v.double().sum()) for v in store.load_weights(rid).values())
    print(f"DONE {rid} {total!r}", flush=True)

    fn = teacher_job(ds, ModelSpec("mf", 8), TrainConfig(epochs=10_000, batch_size=16, patience=0, device="cpu"),
                     store)

    def job(ctx):  # tee the trainer's events: announce the first step of epoch 2 (epoch 1 is in the store then)
        real, said = ctx.callback, []

        class Tee:
            def on_event(self, name: str, payload: dict) -> None:
                real.on_event(name, payload)
                if name == "step_end" and payload["epoch"] == 2 and not said:
                    said.append(1)
                    print(f"TRAINING {ctx._job.snap.runs['teacher']}", flush=True)
        ctx.callback = Tee()
        return fn(ctx)
    runner.wait(runner.submit("teacher", job))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
