"""Benchmark: finding injected label errors in Flipkart product titles, crowdloop against cleanlab.

Data: Flipkart titles (``product_data.load_flipkart``), one row per distinct normalised title,
restricted to the leaf paths with at least ``--min-per-class`` titles whose parent has at least two
such children (so every class has a sibling): a realistic, fast slice of the catalogue. Noise is
injected into a share of the labels: *uniform* (any other class) or *sibling* (another child of the
same parent: the mistake annotators really make). Out-of-fold probabilities come once per setting
from ``crowdloop.models.out_of_fold_proba(TextClassifier(), ...)`` (5 folds) and both libraries
read the same array: crowdloop's ``review_list`` in this process, cleanlab's ``find_label_issues``
(default filter, ranked by self-confidence) in a child process with another venv's python (cleanlab
is AGPL and no dependency of crowdloop; ``bench/requirements-quality.txt``).

Review budgets: the number of items cleanlab flags, the true number of errors, and each method's
own default. At a budget, crowdloop reviews its lowest self-confidences (``review_list(...,
budget=B)``) and cleanlab its flagged items in its ranking, then its lowest quality scores;
precision, recall and F1 against the injected errors; medians over seeds.

    python -m venv .venv-quality && .venv-quality/bin/pip install -r bench/requirements-quality.txt
    python bench/bench_label_errors.py --cleanlab-python .venv-quality/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RATES = (0.05, 0.10, 0.20, 0.30)
NOISES = ("uniform", "sibling")
METRICS = ("precision", "recall", "f1")


def child(probs_path: str, labels_path: str) -> dict:
    """In cleanlab's venv: its flagged issues (ranked) and its quality-score order of all items."""
    import cleanlab
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs, labels = np.load(probs_path), np.load(labels_path)
    start = time.perf_counter()
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    seconds = time.perf_counter() - start
    order = np.argsort(get_label_quality_scores(labels, probs), kind="stable")
    return {"version": cleanlab.__version__, "ranked": ranked.tolist(), "order": order.tolist(), "seconds": seconds}


def catalogue_slice(min_per_class: int):
    import pandas as pd
    import product_data

    from crowdloop.models import normalize_text

    frame = product_data.load_flipkart()
    frame = frame[~pd.Series(normalize_text(frame["title"])).duplicated().to_numpy()]
    counts = frame["path"].value_counts()
    paths = pd.Series(counts[counts >= min_per_class].index)
    paths = paths[paths.str.contains(" > ")]
    parent = paths.str.rsplit(" > ", n=1).str[0]
    paths = paths[(parent.map(parent.value_counts()) >= 2).to_numpy()]
    return frame[frame["path"].isin(set(paths))].reset_index(drop=True)


def inject(labels: np.ndarray, parents: np.ndarray, rate: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Noisy copy of integer ``labels``: ``round(rate * n)`` items get another class, uniform or a sibling."""
    n, k = len(labels), int(labels.max()) + 1
    flip = rng.choice(n, size=round(rate * n), replace=False)
    noisy = labels.copy()
    if kind == "uniform":
        noisy[flip] = (labels[flip] + rng.integers(1, k, size=len(flip))) % k
        return noisy
    # sibling: a class with the same parent, drawn uniformly among the siblings
    siblings = parents[None, :] == parents[:, None]
    np.fill_diagonal(siblings, False)
    choice = siblings[labels[flip]] * rng.random((len(flip), k))
    noisy[flip] = choice.argmax(axis=1)
    return noisy


def top_at_budget(ranked: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """The first ``budget`` items of the flagged ranking, filled up from the score order."""
    rest = order[~np.isin(order, ranked)]
    return np.r_[ranked, rest][:budget]


def scores(picked: np.ndarray, errors: np.ndarray) -> dict[str, float]:
    hit = errors[picked].sum()
    precision = hit / max(len(picked), 1)
    recall = hit / max(errors.sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def one_setting(frame, kind: str, rate: float, seed: int, python: str) -> dict:
    import pandas as pd

    from crowdloop.models import TextClassifier, normalize_text, out_of_fold_proba
    from crowdloop.quality import review_list

    codes, classes = pd.factorize(frame["path"], sort=True)
    parents = pd.factorize(pd.Series(classes).str.rsplit(" > ", n=1).str[0])[0]
    noisy = inject(codes, parents, rate, kind, np.random.default_rng(seed))
    errors = noisy != codes
    titles = frame["title"].to_numpy(object)
    start = time.perf_counter()
    probs = out_of_fold_proba(
        TextClassifier(random_state=seed), titles, noisy, n_folds=5, groups=normalize_text(titles), random_state=seed
    )
    oof_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        probs_path, labels_path = Path(tmp) / "probs.npy", Path(tmp) / "labels.npy"
        np.save(probs_path, probs)
        np.save(labels_path, noisy.astype(np.int64))
        out = subprocess.run(
            [python, __file__, "child", str(probs_path), str(labels_path)], capture_output=True, text=True, check=True
        )
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    start = time.perf_counter()
    ours = review_list(noisy, probs, np.arange(len(classes)))  # its default budget: the items it flags
    ours_s = time.perf_counter() - start
    their_ranked, their_order = np.asarray(theirs["ranked"], dtype=np.int64), np.asarray(theirs["order"])
    row = {
        "noise": kind, "rate": rate, "seed": seed, "items": len(noisy), "classes": len(classes),
        "errors": int(errors.sum()), "model_acc": float((probs.argmax(axis=1) == codes).mean()),
        "cleanlab_flagged": len(their_ranked), "crowdloop_flagged": len(ours),
        "crowdloop_filter_flagged": int(ours["flagged"].sum()), "oof_s": oof_s,
        "crowdloop_s": ours_s, "cleanlab_s": theirs["seconds"], "cleanlab_version": theirs["version"],
    }  # fmt: skip
    for budget_name, budget in (("cleanlab", len(their_ranked)), ("true", int(errors.sum())), ("own", None)):
        picks = {
            "crowdloop": review_list(noisy, probs, np.arange(len(classes)), budget=budget)["item"].to_numpy(),
            "cleanlab": their_ranked if budget is None else top_at_budget(their_ranked, their_order, budget),
        }
        for name, picked in picks.items():
            for metric, value in scores(picked.astype(np.int64), errors).items():
                row[f"{name}_{metric}@{budget_name}"] = value
    return row


def markdown(rows: list[dict]) -> str:
    from _harness import fmt, markdown_table, median

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["noise"], row["rate"]), []).append(row)
    lines = []
    for budget in ("cleanlab", "true", "own"):
        table = []
        for (noise, rate), runs in groups.items():
            med = {key: median([r[key] for r in runs]) for key in runs[0] if isinstance(runs[0][key], (int, float))}
            table.append(
                [noise, f"{rate:.0%}", f"{med['errors']:.0f}",
                 f"{med['cleanlab_flagged']:.0f}" + (f" / {med['crowdloop_flagged']:.0f}" if budget == "own" else "")]
                + [fmt(med[f"{lib}_{m}@{budget}"]) for m in METRICS for lib in ("crowdloop", "cleanlab")]
                + ["yes" if med[f"crowdloop_f1@{budget}"] >= med[f"cleanlab_f1@{budget}"] else "no"]
            )  # fmt: skip
        title = {
            "cleanlab": "cleanlab's number of flagged items",
            "true": "the true number of errors",
            "own": "each method's own default (cleanlab's flagged set; crowdloop's default review list)",
        }[budget]
        lines += [f"### Review budget: {title}", ""]
        flags = "cleanlab flags" if budget != "own" else "cleanlab / ours"
        headers = ["noise", "rate", "errors", flags, "P ours", "P cleanlab", "R ours", "R cleanlab",
                   "F1 ours", "F1 cleanlab", "F1 >= cleanlab"]  # fmt: skip
        lines += [markdown_table(headers, table), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanlab-python", required=True, help="python of a venv with cleanlab installed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--noises", nargs="+", default=list(NOISES), choices=NOISES)
    parser.add_argument("--min-per-class", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import product_data

    if "flipkart" not in product_data.available():
        print(f"no Flipkart data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    frame = catalogue_slice(args.min_per_class)
    rows = []
    for seed in range(args.seeds):  # every setting once, then again: partial results cover them all
        for kind in args.noises:
            for rate in args.rates:
                rows.append(one_setting(frame, kind, rate, seed, args.cleanlab_python))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                if not args.no_write:
                    write(rows, args)
    print(markdown(rows))
    return 0


def write(rows: list[dict], args: argparse.Namespace) -> None:
    from _harness import command_line, machine_lines, write_results

    table = markdown(rows)
    seeds = sorted({r["seed"] for r in rows})
    command = command_line("bench_label_errors.py", redact=("--cleanlab-python",)).replace(
        "$CROWDKIT_PYTHON", "$CLEANLAB_PYTHON"
    )
    first = rows[0]
    text = "\n".join(
        [
            "# Label errors: injected noise in Flipkart product titles",
            "",
            f"{first['items']:,} distinct Flipkart titles in {first['classes']} leaf categories (each with at least "
            f"{args.min_per_class} titles and a sibling category). Noise injected into 5-30% of the labels: uniform "
            "(any other category) or sibling (another child of the same parent). One set of out-of-fold "
            "probabilities per setting (`out_of_fold_proba(TextClassifier(), ..., n_folds=5)`, grouped by "
            "normalised title), read by both libraries: crowdloop `review_list` (the items of lowest "
            "self-confidence; by default as many as confident learning, pruning by noise rate, flags) and cleanlab "
            f"{first['cleanlab_version']} `find_label_issues` (its default filter, ranked by self-confidence) in a "
            "child process of its own venv. At a review budget cleanlab reviews its flagged items first, then its "
            "lowest `get_label_quality_scores`. "
            f"Medians over {len(seeds)} seed(s) {seeds} (noise draw, folds and model seed).",
            "",
            table,
            f"Command: `{command}`",
            "",
            *machine_lines({}),
            "",
        ]
    )
    write_results("label_errors", text, {"command": command, "rows": rows})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])), flush=True)
    else:
        sys.exit(main())
