"""Benchmark: do pseudo-labels help the default text model when few titles are labeled?

Per repeat (seed r): 20% of the distinct titles are held out for testing (group split); of the rest,
a share ``--labeled`` is labeled (the humans' work) and the other titles are unlabeled. Variants,
all ``TextClassifier()`` defaults, scored on the same held-out titles (leaf accuracy and ECE):

- ``labeled only``: fitted on the labeled titles;
- ``+ pseudo (weight = confidence)``: plus the unlabeled titles whose confidence under the first
  model reaches a threshold, with the model's label, weighted by that confidence
  (``crowdloop.models.training.training_set``); the threshold is ``choose_threshold`` on the labeled
  titles' out-of-fold probabilities (target ``--target``, confidence 0.95);
- ``+ pseudo (weight 1)``: the same pseudo-labels at full weight;
- ``+ true labels, same items``: the same extra titles with their true labels (what paying humans
  for them would give: the ceiling of the pseudo-labels).

    python bench/bench_pseudo.py
    python bench/bench_pseudo.py --datasets myntra --labeled 0.05 --repeats 3

The data is read from ``../shared/data/products`` (``CROWDLOOP_DATA`` overrides); missing data is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from sklearn.model_selection import GroupShuffleSplit

from crowdloop.aggregation.calibration import expected_calibration_error
from crowdloop.labels import LabelSpace
from crowdloop.models import TextClassifier, normalize_text, out_of_fold_proba
from crowdloop.models.autolabel import choose_threshold
from crowdloop.models.training import pseudo_labels, train, training_set

RESULTS = Path(__file__).resolve().parent / "results"


def run(frame: pd.DataFrame, labeled_share: float, target: float, seed: int) -> list[dict]:
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    groups = normalize_text(titles)
    outer = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
    pool, test = next(outer.split(titles, paths, groups=groups))
    inner = GroupShuffleSplit(n_splits=1, train_size=labeled_share, random_state=seed)
    lab, unl = (pool[i] for i in next(inner.split(pool, groups=groups[pool])))
    items = pd.Index([f"i{k}" for k in range(len(titles))])
    texts = pd.Series(titles, index=items)
    gold = pd.Series(paths[lab], index=items[lab])

    def score(model) -> dict:
        probs = model.predict_proba(titles[test])
        pred = model.classes_[probs.argmax(axis=1)]
        right = pred == paths[test]
        return {"accuracy": float(right.mean()), "ece": expected_calibration_error(probs.max(axis=1), right)}

    base = train(TextClassifier(random_state=seed), training_set(texts, gold=gold))
    oof = out_of_fold_proba(TextClassifier(random_state=seed), titles[lab], paths[lab], n_folds=3, groups=groups[lab])
    classes = np.asarray(LabelSpace.from_values(paths[lab]).labels, dtype=object)  # out_of_fold_proba's columns
    threshold = choose_threshold(oof.max(axis=1), classes[oof.argmax(axis=1)] == paths[lab], target).threshold
    pseudo = pseudo_labels(base.predict_proba(titles[unl]), base.classes_, items[unl], min(threshold, 1.0))
    chosen = items.get_indexer(pseudo.index)
    pseudo_acc = float((pseudo["label"].to_numpy(object) == paths[chosen]).mean()) if len(pseudo) else float("nan")
    common = {"labeled": len(lab), "unlabeled": len(unl), "threshold": threshold, "pseudo": len(pseudo),
              "pseudo_acc": pseudo_acc, "test": len(test)}  # fmt: skip
    rows = [{"variant": "labeled only", **common, **score(base)}]
    if len(pseudo):
        weighted = train(TextClassifier(random_state=seed), training_set(texts, gold=gold, pseudo=pseudo))
        rows.append({"variant": "+ pseudo (weight = confidence)", **common, **score(weighted)})
        full = train(
            TextClassifier(random_state=seed), training_set(texts, gold=gold, pseudo=pseudo, pseudo_weight=1.0)
        )
        rows.append({"variant": "+ pseudo (weight 1)", **common, **score(full)})
        truth = pd.Series(paths[chosen], index=pseudo.index)
        human = train(TextClassifier(random_state=seed), training_set(texts, gold=pd.concat([gold, truth])))
        rows.append({"variant": "+ true labels, same items", **common, **score(human)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(product_data.FILES), choices=list(product_data.FILES))
    parser.add_argument("--labeled", type=float, default=0.1, help="share of the training titles that is labeled")
    parser.add_argument("--target", type=float, default=0.95, help="accuracy target of the pseudo-labels")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    present = [name for name in args.datasets if name in product_data.available()]
    if not present:
        print(f"no product data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    rows = []
    for name in present:
        frame = product_data.load(name)
        runs = [run(frame, args.labeled, args.target, seed) for seed in range(args.repeats)]
        for variant in dict.fromkeys(r["variant"] for rs in runs for r in rs):
            mine = [r for rs in runs for r in rs if r["variant"] == variant]
            row = {"dataset": name, "variant": variant, "repeats": len(mine)}
            row |= {key: statistics.median(r[key] for r in mine) for key in mine[0] if key != "variant"}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table)
    if not args.no_write:
        write(rows, table, args)
    return 0


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | variant | labeled | pseudo-labels | threshold | pseudo accuracy | test accuracy | test ECE |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['variant']} | {r['labeled']:.0f} | {r['pseudo']:.0f} | {r['threshold']:.3f} "
            f"| {r['pseudo_acc']:.4f} | {r['accuracy']:.4f} | {r['ece']:.4f} |"
        )
    return "\n".join(lines)


def write(rows: list[dict], table: str, args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    command = "python bench/bench_pseudo.py " + " ".join(sys.argv[1:])
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    text = "\n".join([
        "# Pseudo-labels: do the model's confident labels help it?",
        "",
        f"20% of the distinct titles held out; {args.labeled:.0%} of the rest labeled, the others unlabeled",
        f"(group splits, seeds 0..{args.repeats - 1}, medians). Pseudo-labels: unlabeled titles whose confidence",
        f"reaches the threshold chosen by `choose_threshold` (target {args.target}, confidence 0.95) on the labeled",
        "titles' out-of-fold probabilities. `pseudo accuracy` is theirs against the hidden true labels.",
        "",
        table,
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine}, {platform.system()} {platform.release()} (shared with other jobs).",
        "",
    ])  # fmt: skip
    (RESULTS / "pseudo.md").write_text(text)
    (RESULTS / "pseudo.json").write_text(json.dumps({"command": command.strip(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
