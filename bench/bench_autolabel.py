"""Benchmark: auto-labeling thresholds with a lower confidence bound against SageMaker Ground Truth's
point estimate, on product titles.

Per dataset the default ``TextClassifier`` is fitted once on half of the distinct (normalised)
titles (a group split, seed 0) and scores the other half, the pool. Then, for each of ``--splits``
random splits of the pool, ``--val`` items play the gold/validation set and the rest the items to
label. Each method picks a threshold on the validation items; on the rest we measure the share
automated (confidence at or above the threshold) and the accuracy of the automated items, and
count a *failure* when that accuracy is below the target:

- ``lower bound`` (ours, ``crowdloop.models.autolabel.choose_threshold``): fixed-sequence testing
  from high to low confidence, each threshold accepted only if the one-sided Clopper-Pearson bound
  at ``--confidence`` (0.95) reaches the target; so at most 5% failures are expected;
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from sklearn.model_selection import GroupShuffleSplit

from crowdloop.models import TextClassifier, normalize_text
from crowdloop.models.autolabel import choose_threshold, point_estimate_threshold

RESULTS = Path(__file__).resolve().parent / "results"


def pool(frame, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Top-label confidence and correctness of the model on the held-out half, and the fit time."""
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    split = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
    train, test = next(split.split(titles, paths, groups=normalize_text(titles)))
    start = time.perf_counter()
    model = TextClassifier(random_state=seed).fit(titles[train], paths[train])
    fit_s = time.perf_counter() - start
    probs = model.predict_proba(titles[test])
    return probs.max(axis=1), model.classes_[probs.argmax(axis=1)] == paths[test], fit_s


def measure(confidence, correct, target, n_val, n_splits, level) -> list[dict]:
    rng = np.random.default_rng(12345)
    out = {name: {"fail": [], "share": [], "acc": []} for name in ("lower bound", "point estimate", "oracle")}
    for _ in range(n_splits):
        order = rng.permutation(len(confidence))
        val, rest = order[:n_val], order[n_val:]
        thresholds = {
            "lower bound": choose_threshold(confidence[val], correct[val], target, level).threshold,
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
            "failure_rate": float(np.mean(r["fail"])), "share_median": statistics.median(r["share"]),
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
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    present = [name for name in args.datasets if name in product_data.available()]
    if not present:
        print(f"no product data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    rows = []
    for name in present:
        confidence, correct, fit_s = pool(product_data.load(name))
        print(f"{name}: pool of {len(confidence)}, accuracy {correct.mean():.4f}, fit {fit_s:.0f} s", file=sys.stderr)
        for target in args.targets:
            for n_val in args.val:
                for row in measure(confidence, correct, target, n_val, args.splits, args.confidence):
                    rows.append({"dataset": name, "pool": len(confidence), "pool_acc": float(correct.mean()), **row})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table)
    if not args.no_write:
        write(rows, table, args)
    return 0


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | target | validation items | method | below target (share of splits) | share automated "
        "(median) | auto accuracy (median) | auto accuracy (5th pct) | splits automating nothing |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['target']:.2f} | {r['n_val']} | {r['method']} | {r['failure_rate']:.3f} "
            f"| {r['share_median']:.3f} | {r['acc_median']:.4f} | {r['acc_p05']:.4f} | {r['none_automated']:.3f} |"
        )
    return "\n".join(lines)


def write(rows: list[dict], table: str, args: argparse.Namespace) -> None:
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
        f"{1 - args.confidence:.0%} failures promised); `point estimate` is SageMaker Ground Truth's rule (lowest",
        "threshold whose validation accuracy reaches the target); `oracle` picks the threshold on the rest itself.",
        "",
        table,
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine}, {platform.system()} {platform.release()} (shared with other jobs).",
        "",
    ])  # fmt: skip
    (RESULTS / "autolabel.md").write_text(text)
    (RESULTS / "autolabel.json").write_text(json.dumps({"command": command.strip(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
