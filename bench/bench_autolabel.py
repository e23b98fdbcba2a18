"""Benchmark: auto-labeling thresholds with a lower confidence bound against SageMaker Ground Truth's
point estimate, on product titles.

Per dataset the default ``TextClassifier`` is fitted once on half of the distinct (normalised)
titles (a group split, seed 0) and scores the other half, the pool. Then, for each of ``--splits``
random splits of the pool, ``--val`` items play the gold/validation set and the rest the items to
label. Each method picks a threshold on the validation items; on the rest we measure the share
automated (confidence at or above the threshold) and the accuracy of the automated items, and
count a *failure* when that accuracy is below the target:

- ``lower bound`` (ours, ``crowdloop.models.autolabel.choose_threshold`` with its defaults): fixed-sequence
  testing from high to low confidence, each threshold accepted only if the one-sided Clopper-Pearson
  bound at ``--confidence`` (0.95) reaches the target, so at most 5% failures are expected; the
  sequence starts at the threshold holding 200 gold items (half the gold when that is fewer) and
  steps down in 20 equal counts;
- ``lower bound, start at n0``: the same test started at the fewest items an all-right sample passes
  with (59 at 0.95) and 100 steps (``min_items=0, chance_errors=0, n_steps=100``), the previous rule;
- ``point estimate`` (SageMaker Ground Truth's rule): the lowest threshold whose observed
  validation accuracy reaches the target;
- ``oracle``: the lowest threshold whose accuracy *on the rest itself* reaches the target (not
  available in practice: the most that could be automated).

    python bench/bench_autolabel.py                      # both datasets, targets 0.95 and 0.98
    python bench/bench_autolabel.py --datasets myntra --splits 200 --val 500

The data is read from ``../shared/data/products`` (``CROWDLOOP_DATA`` overrides); missing data is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from sklearn.model_selection import GroupShuffleSplit

from crowdloop.labels import Taxonomy
from crowdloop.models import TextClassifier, align_proba, normalize_text
from crowdloop.models.autolabel import choose_threshold, clopper_pearson_lower, point_estimate_threshold
from crowdloop.models.calibrate import apply_calibrator, fit_gold_calibrator, model_reliability
from crowdloop.models.prelabels import anchoring_effect
from crowdloop.simulation.suggestions import simulate_suggestion_answers

RESULTS = Path(__file__).resolve().parent / "results"


def pool(frame, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The model's probabilities on the held-out half (on the taxonomy's codes), the true codes, whether
    its top label is right, and the fit time."""
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    split = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
    train, test = next(split.split(titles, paths, groups=normalize_text(titles)))
    start = time.perf_counter()
    model = TextClassifier(random_state=seed).fit(titles[train], paths[train])
    fit_s = time.perf_counter() - start
    taxonomy = Taxonomy.from_paths(sorted(set(paths)))
    probs = align_proba(model.predict_proba(titles[test]), model.classes_, taxonomy)
    truth = taxonomy.encode(paths[test])
    return probs, truth, probs.argmax(axis=1) == truth, fit_s


def gold_fix(probs: np.ndarray, truth: np.ndarray, n_val: int) -> dict:
    """ECE on the rest before and after a ``TopLabelCalibrator`` fitted on ``n_val`` random gold items."""
    order = np.random.default_rng(7).permutation(len(truth))
    val, rest = order[:n_val], order[n_val:]
    before = model_reliability(probs[rest], truth[rest])
    after = model_reliability(apply_calibrator(fit_gold_calibrator(probs[val], truth[val]), probs[rest]), truth[rest])
    return {"n_gold": n_val, "ece_before": before.ece, "ece_after": after.ece, "table_before": before.table,
            "table_after": after.table}  # fmt: skip


def measure(confidence, correct, target, n_val, n_splits, level) -> list[dict]:
    rng = np.random.default_rng(12345)
    names = ("lower bound", "lower bound, start at n0", "point estimate", "oracle")
    out = {name: {"fail": [], "share": [], "acc": []} for name in names}
    for _ in range(n_splits):
        order = rng.permutation(len(confidence))
        val, rest = order[:n_val], order[n_val:]
        thresholds = {
            "lower bound": choose_threshold(confidence[val], correct[val], target, level).threshold,
            "lower bound, start at n0": choose_threshold(
                confidence[val], correct[val], target, level, n_steps=100, min_items=0, chance_errors=0
            ).threshold,
            "point estimate": point_estimate_threshold(confidence[val], correct[val], target),
            "oracle": point_estimate_threshold(confidence[rest], correct[rest], target),  # on the rest itself
        }
        for name, t in thresholds.items():
            auto = confidence[rest] >= t
            acc = float(correct[rest][auto].mean()) if auto.any() else float("nan")
            out[name]["fail"].append(bool(auto.any() and acc < target))
            out[name]["share"].append(float(auto.mean()))
            out[name]["acc"].append(acc)
    rows = []
    for name, r in out.items():
        acc = np.array(r["acc"])
        rows.append({
            "method": name, "target": target, "n_val": n_val, "splits": n_splits,
            "failure_rate": float(np.mean(r["fail"])),
            "failure_upper": float(1 - clopper_pearson_lower([n_splits - np.sum(r["fail"])], [n_splits], 0.05)[0]),
            "share_median": statistics.median(r["share"]),
            "share_mean": float(np.mean(r["share"])), "acc_median": float(np.nanmedian(acc)) if np.isfinite(acc).any()
            else float("nan"), "acc_p05": float(np.nanquantile(acc, 0.05)) if np.isfinite(acc).any() else float("nan"),
            "none_automated": float(np.mean(np.array(r["share"]) == 0)),
        })  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(product_data.FILES), choices=list(product_data.FILES))
    parser.add_argument("--targets", nargs="+", type=float, default=[0.95, 0.98])
    parser.add_argument("--val", nargs="+", type=int, default=[500, 2000], help="validation (gold) sizes")
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence of the lower bound")
    parser.add_argument("--annotator-accuracy", type=float, default=0.8, help="pre-label simulation")
    parser.add_argument("--anchoring", type=float, default=0.2, help="planted anchoring of the pre-label simulation")
    parser.add_argument("--hide-rate", type=float, default=0.1, help="share of items whose suggestions are hidden")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    present = [name for name in args.datasets if name in product_data.available()]
    if not present:
        print(f"no product data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    rows, fixes, effects = [], {}, {}
    for name in present:
        probs, truth, correct, fit_s = pool(product_data.load(name))
        confidence = probs.max(axis=1)
        fixes[name] = gold_fix(probs, truth, max(args.val))
        effects[name] = prelabel_effect(probs, truth, args)
        print(f"{name}: pool of {len(confidence)}, accuracy {correct.mean():.4f}, fit {fit_s:.0f} s", file=sys.stderr)
        for target in args.targets:
            for n_val in args.val:
                for row in measure(confidence, correct, target, n_val, args.splits, args.confidence):
                    rows.append({"dataset": name, "pool": len(confidence), "pool_acc": float(correct.mean()), **row})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table)
    if not args.no_write:
        write(rows, table, args, fixes, effects)
    return 0


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | target | validation items | method | below target (share of splits) | its 95% upper bound "
        "| share automated (median) | share automated (mean) | auto accuracy (median) | auto accuracy (5th pct) "
        "| splits automating nothing |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['target']:.2f} | {r['n_val']} | {r['method']} | {r['failure_rate']:.3f} "
            f"| {r['failure_upper']:.3f} | {r['share_median']:.3f} | {r['share_mean']:.3f} | {r['acc_median']:.4f} "
            f"| {r['acc_p05']:.4f} | {r['none_automated']:.3f} |"
        )
    return "\n".join(lines)


def prelabel_effect(probs: np.ndarray, truth: np.ndarray, args: argparse.Namespace) -> pd.DataFrame:
    """Simulated annotators (accuracy ``--annotator-accuracy``) shown the model's top suggestion on the
    pool, anchoring ``--anchoring`` planted, suggestions hidden on ``--hide-rate`` of the items; the
    estimate of what the suggestions did, from the answers alone."""
    answers = simulate_suggestion_answers(truth, probs.argmax(axis=1), probs.shape[1], answers_per_item=1,
                                          accuracy=args.annotator_accuracy, anchoring=args.anchoring,
                                          hide_rate=args.hide_rate, random_state=3)  # fmt: skip
    return anchoring_effect(answers)


def prelabel_section(effects: dict[str, pd.DataFrame], args: argparse.Namespace) -> list[str]:
    lines = ["## Pre-labels: what suggestions do to answers (simulation)", "",
             f"One simulated annotator per pool item (right {args.annotator_accuracy:.0%} of the time alone), shown "
             f"the model's top label except on a random {args.hide_rate:.0%} of items; planted: takes the suggestion",
             f"with probability {args.anchoring} (anchoring) and answers 40% faster when taking it. Estimated by",
             "`anchoring_effect` from the answers and gold alone (95% intervals).", "",
             "| dataset | measure | shown | hidden | effect | interval | answers shown / hidden |",
             "|---|---|---:|---:|---:|---|---:|"]  # fmt: skip
    for name, table in effects.items():
        for r in table.itertuples():
            lines.append(f"| {name} | {r.measure} | {r.shown:.3f} | {r.hidden:.3f} | {r.effect:.3f} "
                         f"| [{r.low:.3f}, {r.high:.3f}] | {r.n_shown} / {r.n_hidden} |")  # fmt: skip
    return lines


def calibration_section(fixes: dict[str, dict]) -> list[str]:
    lines = ["## Calibration of the model's confidence, fixed on gold", "",
             "`model_reliability` (ECE, 15 uniform bins) on the pool minus gold, before and after",
             "`fit_gold_calibrator` (the aggregators' `TopLabelCalibrator`: confidence and margin) fitted on the gold",
             "items (one random split, seed 7).", "",
             "| dataset | gold items | ECE raw | ECE fixed on gold |", "|---|---:|---:|---:|"]  # fmt: skip
    for name, fix in fixes.items():
        lines.append(f"| {name} | {fix['n_gold']} | {fix['ece_before']:.4f} | {fix['ece_after']:.4f} |")
    for name, fix in fixes.items():
        for when in ("before", "after"):
            t = fix[f"table_{when}"]
            lines += ["", f"Reliability, {name}, {'raw' if when == 'before' else 'fixed on gold'}:", "",
                      "| confidence bin | items | mean confidence | accuracy |", "|---|---:|---:|---:|"]  # fmt: skip
            lines += [f"| [{b.left:.3f}, {b.right:.3f}) | {c} | {m:.3f} | {a:.3f} |" for b, c, m, a in
                      zip(t["bin"], t["count"], t["confidence"], t["accuracy"], strict=True)]  # fmt: skip
    return lines


def write(
    rows: list[dict], table: str, args: argparse.Namespace, fixes: dict[str, dict], effects: dict[str, pd.DataFrame]
) -> None:
    RESULTS.mkdir(exist_ok=True)
    command = "python bench/bench_autolabel.py " + " ".join(sys.argv[1:])
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    pools = sorted({(r["dataset"], r["pool"], round(r["pool_acc"], 4)) for r in rows})
    text = "\n".join([
        "# Auto-labeling: lower confidence bound against a point estimate",
        "",
        "`TextClassifier()` fitted on half of the distinct titles (group split, seed 0); the other half is the pool",
        "(" + "; ".join(f"{d}: {n} items, model accuracy {a:.4f}" for d, n, a in pools) + ").",
        f"{args.splits} random splits of the pool into validation (gold) items and the rest. A split *fails* when",
        "the accuracy of the items auto-labeled among the rest is below the target. `lower bound` is",
        f"`choose_threshold` (fixed-sequence Clopper-Pearson at confidence {args.confidence}: at most",
        f"{1 - args.confidence:.0%} failures promised; the sequence starts at the threshold holding 200 gold items",
        "and steps down in 20 equal counts); `lower bound, start at n0` is the same test started at the fewest",
        "items an all-right sample passes with, in 100 steps (the previous rule); `point estimate` is SageMaker",
        "Ground Truth's rule (lowest threshold whose validation accuracy reaches the target); `oracle` picks the",
        "threshold on the rest itself. The upper bound is Clopper-Pearson over the splits (which share one pool).",
        "",
        table,
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine}, {platform.system()} {platform.release()} (shared with other jobs).",
        "",
        *calibration_section(fixes),
        "",
        *prelabel_section(effects, args),
        "",
    ])  # fmt: skip
    (RESULTS / "autolabel.md").write_text(text)
    ece = {name: {k: v for k, v in fix.items() if not k.startswith("table")} for name, fix in fixes.items()}
    payload = {"command": command.strip(), "rows": rows, "calibration": ece}
    (RESULTS / "autolabel.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
