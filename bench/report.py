"""Write BENCHMARKS.md at the top level from the latest bench/results/*.json.

    .venv/bin/python bench/report.py            # writes BENCHMARKS.md
    .venv/bin/python bench/report.py --check    # exit 1 when BENCHMARKS.md is not what the JSON files give

Nothing is measured here: every figure comes from a results file, which names the machine, the commit and
the time it was measured; the report repeats them above each section.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C

OUT = C.ROOT / "BENCHMARKS.md"


def _t(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    return C.table(title, rows, columns, echo=False)


def _memory(text: Any) -> str:
    parts = str(text).split()
    if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
        return f"{int(parts[0]) / 2**20:.1f} GiB"
    return str(text)


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    load = m.get("load_average_at_start") or [float("nan")]
    return (f"*Measured {m.get('time', '?')} at commit `{m.get('git_commit', '?')}` on {m.get('cpu', '?')}, "
            f"{m.get('usable_cores', '?')} usable cores, {_memory(m.get('memory', '?'))} memory, torch {m.get('torch', '?')} "
            f"({m.get('torch_threads', '?')} thread(s), device {m.get('device', '?')}), load average "
            f"{load[0]:.2f} at the start; run took {doc.get('wall_seconds', float('nan')):.0f} s.*")


def quality(doc: dict[str, Any]) -> str:
    ds = doc["dataset"]
    head = (f"Dataset **{ds['name']}** ({ds['users']:,} users, {ds['items']:,} items, {ds['interactions']:,} "
            f"interactions), seeds {', '.join(map(str, doc['seeds']))}"
            + (" (quick run: short training)" if doc.get("quick") else "") + ".")
    return head + "\n" + doc["markdown"]


def speed(doc: dict[str, Any]) -> str:
    parts = [f"Target: engine / minimal-loop time at most {doc['targets']['train_ratio_max']}x."]
    if "throughput" in doc:
        parts.append(_t("Training throughput: engine vs minimal loop (medians, interleaved runs)", doc["throughput"]))
    if "evaluation" in doc:
        parts.append(_t("Full-ranking evaluation (test split, all items, seen items masked)", doc["evaluation"]))
    if "scaling" in doc:
        parts.append(_t("Scaling: one epoch and one validation pass per model", doc["scaling"]))
    return "\n".join(parts)


def inference(doc: dict[str, Any]) -> str:
    p = doc["params"]
    head = (f"Teacher {p['teacher']:,} parameters, student {p['student']:,} ({p['student'] / p['teacher']:.3f} of "
            f"the teacher); {doc['n_users']:,} users scored against {doc['items']:,} items; weights "
            f"{doc['weights']}.")
    return "\n".join([head, _t("Latency per 1,000 users (medians of interleaved repeats)", doc["latency"]),
                      _t("Top-10 retrieval vs reading the score matrix once (batch 256)", doc["retrieval"])])


def live(doc: dict[str, Any]) -> str:
    run = doc["run"]
    head = (f"Poller every {doc['poll_interval_s']} s; targets: overhead at most "
            f"{doc['targets']['overhead_max']:.0%}, first loss within {doc['targets']['first_loss_max_s']} s.")
    return "\n".join([head, _t("Start -> first progress snapshot with a loss value", doc["first_loss"]),
                      _t(f"Distillation run ({run['epochs']} epoch(s) of {run['model']}, {run['repeats']} repeats): "
                         "headless vs background runner", doc["overhead"])])


def cross_family(doc: dict[str, Any]) -> str:
    c = doc["chosen"]
    head = (quality(doc).split("\n")[0] + f" Students trained for up to {doc['student_train']['epochs']} epochs "
            f"(patience {doc['student_train']['patience']}); refresh: {doc['refresh_epochs']} epochs of fine-tuning "
            f"on the advanced split. alpha {c['alpha']:g}, T {c['T']:g} chosen on the first seed's validation "
            "NDCG@10. *As trained*: the student's soft labels end before each user's validation interaction, "
            "which the teacher reads at test time; *refreshed*: all models know it (the test item never reaches "
            "a soft label).")
    return head + "\n" + doc["markdown"]


def fair(doc: dict[str, Any]) -> str:
    c = doc["chosen"]
    head = (quality(doc).split("\n")[0] + f" Chosen on the first seed's validation NDCG@10: distilled alpha "
            f"{c['kd']['alpha']:g}, T {c['kd']['T']:g} (lagged selection); plain lr {c['plain']['lr']:g}, weight "
            f"decay {c['plain']['weight_decay']:g}. *defaults* rows ran the defaults of their day "
            + (f"(alpha {doc['defaults']['alpha']:g}, T {doc['defaults']['T']:g}, lr {doc['defaults']['lr']:g}). "
               if "defaults" in doc else  # results from before fair.py recorded them, measured on 2026-12-01
               "(alpha 0.5, T 2, lr 0.005, weight decay 0; at most 60 epochs, patience 5). ")
            + "*gain* is the distilled student's test NDCG@10 over the tuned "
            "plain student's, computed per seed (mean, standard deviation, lowest seed). The refreshed rows are "
            f"**transductive**: after the validation interactions arrive ({doc['refresh_epochs']} epochs of "
            "fine-tuning), each soft label is the teacher's forecast for the very position that is then scored; "
            "*uneven*: the teacher is not refreshed while the students are fine-tuned on the new items; *even*: "
            "the teacher is fine-tuned on the same items too and the student distils the refreshed teacher.")
    return head + "\n" + doc["markdown"]


def methods(doc: dict[str, Any]) -> str:
    t = doc["student_train"]
    head = (quality(doc).split("\n")[0] + f" {doc['cells_per_method']} cells per method and as many for the plain "
            f"student, chosen on the first seed's validation NDCG@10; students up to {t['epochs']} epochs (patience "
            f"{t['patience']}). *retention* = the student's test NDCG@10 / its teacher's; *gain* = / the tuned plain "
            "student's of the same teacher and seed (mean, standard deviation, lowest seed); *epoch_s* = training "
            "seconds (validation and both fits of a lagged selection included) / epochs run. The targets are judged "
            "on ml-100k only" + (" (quick run: short training, not the measurement)." if doc.get("quick") else "."))
    if "n_boot" in doc:
        head += (" *retention_95%* and *gain_95%*: paired bootstrap 95% intervals of the mean over seeds, over the "
                 f"test users ({doc['n_boot']:,} draws, the same users for every seed and model of a draw): the "
                 "test set's noise alone, the seeds' training noise is in the std; a target is *resolved* only "
                 "when its whole interval is on one side of it.")
    else:
        head += " (Stored before the bench kept per-user figures: no intervals.)"
    if doc.get("refresh"):
        head += (" Two test protocols: *as trained*, and *refreshed*: the validation interactions arrive and every "
                 f"chosen student is fine-tuned on them for {doc['refresh_epochs']} epochs (`refresh_student`: soft "
                 "labels recomputed, the plain student on the new hard labels; the mf teacher refreshed plainly "
                 "first), so every model knows the same interactions when it ranks the test item; the cells stay "
                 "those chosen as trained. The refreshed rows are transductive (each recomputed soft label is the "
                 "teacher's forecast for the very position then scored, so a distilled student imitates the "
                 "teacher's answer to the test query): what a deployed, refreshed student serves, printed and not "
                 "judged; the targets are judged as trained.")
    return head + "\n" + doc["markdown"]


def segments(doc: dict[str, Any]) -> str:
    pairs = "; ".join(f"*{name}*: sasrec teacher ({p['teacher_params']:,} params) -> {p['student']} ({p['params']:,}), "
                      f"alpha {p['alpha']:g}, T {p['T']:g}, up to {p['epochs']} epochs (patience {p['patience']})"
                      for name, p in doc["pairs"].items())
    head = (quality(doc).split("\n")[0] + f" Pairs: {pairs}. *gain* = distilled - plain test NDCG@10 in the bucket "
            "(mean over seeds, its standard deviation and lowest seed; the first seed's paired bootstrap 95% interval "
            "over the bucket's users); *share of gain* = the bucket's part of the mean gain, n x gain / sum of n x gain.")
    return head + "\n" + doc["markdown"]


def scale_out(doc: dict[str, Any]) -> str:
    head = ("Sweeps on Ray and training under torchrun (issue #19) on this machine"
            + (" (quick run: 1-2 epochs, one seed; the quality target needs the full run)" if doc.get("quick") else "")
            + ". The ratios are of 2 cores; what changes on a cluster is said below the tables.")
    return head + "\n" + doc["markdown"]


def scale(doc: dict[str, Any]) -> str:
    head = ("How cost grows with the catalogue (issue #16): synthetic catalogues, users and interactions scaled with "
            "them; each row in a child process of its own (peak RSS is its own). *epoch_measured* False: the epoch "
            "is the median of 20 timed steps x the steps per epoch. The distilled student's soft labels come from an "
            "untrained MF teacher of dim 32 (building them costs what a trained one's does); *soft_label_seconds* "
            "is that build, a pass of the teacher over users x items, the one part that grows with both."
            + (" Quick run: small catalogues only." if doc.get("quick") else ""))
    return head + "\n" + doc["markdown"]


def sampled_step(doc: dict[str, Any]) -> str:
    head = ("The sampled path's step with the engine's fused masked log-sum-exp (`sampled.masked_logsumexp`) against "
            "the torch composition it replaced, side by side (issue #16): each model's step on the 55k run's dataset "
            "as the Data page times it (`estimate.timed`; the distilled student on stand-in top-K labels), median of "
            "the steps of each round, rounds interleaved. *seconds_saved_there*: the difference times the steps the "
            "stored `scale_run` took (its epochs run x steps per epoch)."
            + (" Quick run: a check of the script, not the measurement." if doc.get("quick") else ""))
    return head + "\n" + doc["markdown"]


def _engine_since(stored: dict[str, Any]) -> str:
    n = stored.get("engine_code_lines_changed_since")
    return ("`distill_core` not compared" if n is None else "no code line of `distill_core` changed since"
            if n == 0 else f"{n} code lines of `distill_core` CHANGED since")


def scale_quality(doc: dict[str, Any]) -> str:
    if doc.get("teachers_only"):
        st = doc.get("stored") or {}
        new = [s for s in doc["seeds"] if s not in st.get("seeds", [])]
        head = (f"The judged teacher pair alone (issue #16): the full-softmax teacher against the sampled one at "
                f"the shipped {doc['negatives']} negatives, on more seeds than the run above can afford"
                + (f": seeds {', '.join(map(str, st['seeds']))} are that run's rows ({st['git_commit']}; per-user "
                   f"NDCG@10 from its file; {_engine_since(st)}), seeds "
                   f"{', '.join(map(str, new))} trained here" if st else "")
                + ". The seed count was fixed before these seeds were trained. Ratio, interval and *resolved* as "
                  "above, over all the seeds.")
        return head + "\n" + doc["markdown"]
    stress = doc.get("stress_negatives")
    head = (f"Where both fit, does the large-catalogue path cost quality (issue #16)? The sampled teacher uses "
            f"{doc['negatives']} negatives per batch; the top-K student the sampled softmax with as many and the "
            f"teacher's top-{doc['top_k']} soft labels plus the rest's mass, against full KD from the same full "
            f"teacher. Ratios are per seed, then the mean and the lowest seed; the target is within 5% (>= 0.95)."
            + (f" The target is judged at these, the product's defaults (`--loss sampled` as shipped); the rows "
               f"at {stress} negatives, a smaller share of these small catalogues, show how quality falls with "
               f"fewer and are not judged. *catalogue share drawn*: the expected share of the catalogue among "
               f"one batch's draws." if stress else "")
            + (" *ratio 95%*: the mean's paired bootstrap interval over the test users (the same users for every "
               "seed and model of a draw; the test set's noise alone), *draws at 0.95* the share of the draws at the "
               "target, *resolved* whether the whole interval lies on one side of it." if "n_boot" in doc else "")
            + (" Quick run (1 seed, 2 epochs): not the measurement." if doc.get("quick") else ""))
    return head + "\n" + doc["markdown"]


def scale_run(doc: dict[str, Any]) -> str:
    head = (f"`python {doc['command']}`: the defaults, nothing tuned, wall time and peak RSS of the whole process "
            "(data loading, three models, their test evaluation and segments). The wall time depends on the host: "
            "the same code (ee77a0b, the same models to the last digit) took 28.8 minutes on one 2-core AMD EPYC host "
            "and 10.4 on another, so read it beside the `baseline-` run of an earlier commit on the same host."
            + (" Quick run (1 epoch per model): not the target measurement." if doc.get("quick") else ""))
    return head + "\n" + doc["markdown"]


SUPERSEDED = ("*Measured before the fair protocol of issue 14 (the section above): the plain student was not "
              "tuned, distilled students were selected directly on validation (which their soft labels forecast), "
              "and ties counted in a model's favour in MRR. Its gain columns and the target tables built on them are therefore left out; retention and "
              "the other rows stand as measured until the script is run again.*")


def _drop_columns(md: str, names: set[str]) -> str:
    """``md`` with the markdown-table columns called ``names`` removed."""
    out, drop = [], None
    for line in md.split("\n"):
        if not line.startswith("|"):
            out.append(line)
            drop = None
            continue
        cells = line.strip().strip("|").split("|")
        if drop is None:
            drop = {i for i, cell in enumerate(cells) if cell.strip() in names}
        out.append("|" + "|".join(cell for i, cell in enumerate(cells) if i not in drop) + "|")
    return "\n".join(out)


def _drop_tables(md: str, titles: tuple[str, ...]) -> str:
    """``md`` without the ``### title`` tables whose title starts with one of ``titles``."""
    parts = md.split("\n### ")
    return "\n### ".join(p for i, p in enumerate(parts) if i == 0 or not p.startswith(titles))


def superseded(fn: Any) -> Any:
    """An old section: the caveat first, without gains and without the target tables they fed."""
    def render(doc: dict[str, Any]) -> str:
        return SUPERSEDED + "\n\n" + _drop_columns(_drop_tables(fn(doc), ("Targets", "#8 targets")), {"gain"})
    return render


SECTIONS = [("fair", "Fair protocol: same tuning budget, honest selection, even refresh (`bench/fair.py`)", fair),
            ("methods", "Distillation methods against the tuned plain student (`bench/methods.py`)", methods),
            ("segments", "Who gains: users by activity, items by popularity, the lists (`bench/segments.py`)", segments),
            ("quality", "Quality retained by distillation (`bench/quality.py`)", superseded(quality)),
            ("cross_family", "Cross-family distillation at 1/5 of the teacher (`bench/cross_family.py`)",
             superseded(cross_family)),
            ("scale", "Large catalogues: cost by catalogue size (`bench/scale.py`)", scale),
            ("scale_quality", "Large catalogues: sampled and top-K vs full (`bench/scale_quality.py`)", scale_quality),
            ("scale_run", "Large catalogues: the 55,000-item run end to end (`bench/scale_run.py`)", scale_run),
            ("sampled_step", "Large catalogues: the sampled step, fused vs composed (`bench/sampled_step.py`)",
             sampled_step),
            ("speed", "Engine speed (`bench/speed.py`)", speed),
            ("inference", "Inference speed (`bench/inference.py`)", inference),
            ("live", "Live-update overhead (`bench/live.py`)", live),
            ("scale_out", "Scale-out: sweeps on Ray, training under torchrun (`bench/scale_out.py`)", scale_out)]


def render(results: Path = C.RESULTS) -> str:
    out = ["# Benchmarks", "",
           "Generated by `bench/report.py` from `bench/results/*.json`; do not edit by hand. How to run each "
           "script and what each column means: [bench/README.md](bench/README.md). Every comparison was measured "
           "side by side in one process on a shared, noisy machine: read the ratios, not the absolute times.", ""]
    for name, title, fn in SECTIONS:
        files = sorted(results.glob(f"{name}.json")) + sorted(results.glob(f"{name}-*.json"))
        if not files:
            out += [f"## {title}", "", "*(no results yet: run the script)*", ""]
            continue
        for path in files:
            doc = json.loads(path.read_text())
            suffix = f": {path.stem.split('-', 1)[1]}" if "-" in path.stem else ""
            out += [f"## {title}{suffix}", "", machine_line(doc), "", fn(doc).strip(), ""]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare with the current BENCHMARKS.md")
    a = p.parse_args()
    text = render()
    if a.check:
        same = OUT.exists() and OUT.read_text() == text
        print("BENCHMARKS.md is current" if same else "BENCHMARKS.md is out of date: run bench/report.py")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(C.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
