"""Benchmark: the default text classifier (``crowdloop.models.TextClassifier``) on product titles.

Flipkart (952 leaf paths, 32 top-level categories) and Myntra (170 / 7). Models: the flat
``TextClassifier`` (the reference), the ``HierarchicalClassifier`` (a top-level head and the leaf
head, path-scored) and, with the ``embeddings`` extra, the ``EmbeddingClassifier``. One split per repeat:
20% of the *distinct* (normalised) titles held out with every copy of them (a group shuffle split,
seed = repeat number), since duplicate titles inflate accuracy. Reported: leaf accuracy, top-level
accuracy (the argmax of ``ancestor_proba(probs, taxonomy, 1)``), log-loss (over held-out items
whose leaf occurs in training; the share of unseen leaves is given), ECE of the top label (15
uniform bins) of the leaf and of the top level, "sure branch": among held-out items whose leaf
confidence is below 0.5, the share whose top-level confidence is at least 0.9 and the top-level
accuracy of those; fit time and predict time; medians over repeats, beside the reference TF-IDF +
linear SVM numbers of the data README.

    python bench/bench_text_model.py                                   # both datasets, both calibrations
    python bench/bench_text_model.py --datasets myntra --calibrations temperature --repeats 3
    python bench/bench_text_model.py --models flat hierarchical embeddings --calibrations temperature
    python bench/bench_text_model.py --tune --datasets myntra flipkart   # CV on the training split only

``--tune`` changes one ``TextClassifier`` parameter at a time from the defaults (``TUNE_GRID``) and
scores each by leaf accuracy in ``--tune-folds`` group folds of the *training* split (distinct titles
never straddle folds; the test split is not read); the SVM's argmax does not depend on the
temperature, so the folds fit vectorizer and SVM only. It rewrites ``results/text_model.tuning.<dataset>.md``
after every variant.

The data is read from ``../shared/data/products`` beside the project (``CROWDLOOP_DATA`` overrides
it); a missing dataset is skipped.
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

from crowdloop.aggregation.calibration import expected_calibration_error
from crowdloop.labels import Taxonomy
from crowdloop.models import HierarchicalClassifier, TextClassifier, align_proba, ancestor_proba, normalize_text
from crowdloop.models.embeddings import EmbeddingClassifier, embeddings_available
from crowdloop.models.text import group_folds

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = {"flipkart": {"leaf": 0.874, "top": 0.947}, "myntra": {"leaf": 0.974, "top": None}}
CALIBRATIONS = ("temperature", "sigmoid", "isotonic")
MODELS = ("flat", "hierarchical", "embeddings")
TUNE_GRID: list[dict] = [  # the likeliest gains first: a run stopped early keeps the rows it wrote
    {},
    {"C": 1.0},
    {"char_ngrams": (1, 6)},
    {"word_ngrams": (1, 3)},
    {"class_weight": "balanced"},
    {"char_min_df": 1},
    {"C": 0.25},
    {"sublinear_tf": False},
]


def split_of(titles: np.ndarray, paths: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows: 20% of the distinct normalised titles held out with all their copies."""
    split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
    return next(split.split(titles, paths, groups=normalize_text(titles)))


def tune(name: str, n_folds: int, args: argparse.Namespace, seed: int = 0) -> None:
    """Leaf accuracy of each ``TUNE_GRID`` variant in group folds of the training split only; the
    table is rewritten after every variant."""
    frame = product_data.load(name)
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    train, _ = split_of(titles, paths, seed)
    texts, labels = titles[train], paths[train]
    folds = group_folds(normalize_text(texts), n_folds, seed)
    features: dict[str, list] = {}
    rows = []
    for change in TUNE_GRID:
        model = TextClassifier(**change)
        key = json.dumps([model.word_ngrams, model.char_ngrams, model.char_min_df, model.sublinear_tf])
        start = time.perf_counter()
        if key not in features:
            features[key] = []
            for f in range(n_folds):
                fit_rows = folds != f
                vectorizer = model.make_vectorizer(int(fit_rows.sum())).fit(texts[fit_rows])
                features[key].append((vectorizer.transform(texts[fit_rows]), vectorizer.transform(texts[~fit_rows])))
        accuracy = []
        for f, (X_fit, X_val) in enumerate(features[key]):
            svm = model.make_svm().fit(X_fit, labels[folds != f])
            accuracy.append(float((svm.predict(X_val) == labels[folds == f]).mean()))
        rows.append({"change": json.dumps(change) if change else "defaults", "cv_acc": float(np.mean(accuracy)),
                     "folds": accuracy, "n_train": len(train), "seconds": time.perf_counter() - start})  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        write_tuning(name, rows, args)


def make_model(kind: str, calibration: str, seed: int):
    if kind == "flat":
        return TextClassifier(calibration=calibration, random_state=seed)
    if kind == "hierarchical":
        return HierarchicalClassifier(TextClassifier(calibration=calibration, random_state=seed), depths=(1,))
    return EmbeddingClassifier()


def evaluate(frame, calibration: str, seed: int, kind: str = "flat") -> dict:
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    taxonomy = Taxonomy.from_paths(sorted(set(paths)))
    train, test = split_of(titles, paths, seed)
    model = make_model(kind, calibration, seed)
    start = time.perf_counter()
    model.fit(titles[train], paths[train])
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    probs = align_proba(model.predict_proba(titles[test]), model.classes_, taxonomy)
    predict_s = time.perf_counter() - start
    truth = taxonomy.encode(paths[test])
    pred = probs.argmax(axis=1)
    top_probs = ancestor_proba(probs, taxonomy, 1)
    top, top_conf = top_probs.argmax(axis=1), top_probs.max(axis=1)
    top_right = top == taxonomy.ancestor_at(truth, 1)
    unsure = probs.max(axis=1) < 0.5
    sure_branch = unsure & (top_conf >= 0.9)
    seen = np.isin(truth, taxonomy.encode(model.classes_))
    p_true = probs[np.arange(len(truth)), truth]
    return {
        "leaf_acc": float((pred == truth).mean()),
        "top_acc": float(top_right.mean()),
        "log_loss": float(-np.log(np.clip(p_true[seen], 1e-15, 1)).mean()),
        "unseen_leaf": float(1 - seen.mean()),
        "ece": expected_calibration_error(probs.max(axis=1), pred == truth),
        "top_ece": expected_calibration_error(top_conf, top_right),
        "unsure_leaf": float(unsure.mean()),
        "sure_branch": float(sure_branch.sum() / max(unsure.sum(), 1)),
        "sure_branch_acc": float(top_right[sure_branch].mean()) if sure_branch.any() else float("nan"),
        "fit_s": fit_s,
        "predict_s": predict_s,
        "temperature": getattr(model, "temperature_", float("nan")),
        "n_train": len(train),
        "n_test": len(test),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(product_data.FILES), choices=list(product_data.FILES))
    parser.add_argument("--calibrations", nargs="+", default=["temperature", "sigmoid"], choices=CALIBRATIONS)
    parser.add_argument("--models", nargs="+", default=["flat"], choices=MODELS, help="flat is the reference")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--merge", action="store_true", help="keep earlier runs' rows (other datasets or models)")
    parser.add_argument("--tune", action="store_true", help="cross-validate TUNE_GRID on the training split")
    parser.add_argument("--tune-folds", type=int, default=2)
    args = parser.parse_args()
    present = [name for name in args.datasets if name in product_data.available()]
    if not present:
        print(f"no product data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    if args.tune:
        for name in present:
            tune(name, args.tune_folds, args)
        return 0
    rows = []
    for name in present:
        frame = product_data.load(name)
        for kind, calibration in runs_of(args):
            runs = [evaluate(frame, calibration, seed, kind) for seed in range(args.repeats)]
            row = {"dataset": name, "model": kind, "calibration": calibration, "command": command_line()}
            row |= {"rows": len(frame), "leaves": frame["path"].nunique()}
            row |= {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            row["reference_leaf_acc"] = REFERENCE[name]["leaf"]
            row["reference_top_acc"] = REFERENCE[name]["top"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.merge and (RESULTS / "text_model.json").is_file():
        earlier = json.loads((RESULTS / "text_model.json").read_text())
        old = [{"command": earlier.get("command", "?"), "model": "flat"} | r for r in earlier["rows"] if "top_ece" in r]
        rows = merged(old, rows)
    table = markdown(rows)
    print(table)
    if not args.no_write:
        write(rows, table, args)
    return 0


def runs_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(model, calibration) pairs: the flat model with every calibration asked, the others with the first."""
    pairs = []
    for kind in args.models:
        if kind == "embeddings" and not embeddings_available()[0]:
            print(f"skipping embeddings: {embeddings_available()[1]}", file=sys.stderr)
            continue
        calibrations = args.calibrations if kind == "flat" else args.calibrations[:1]
        pairs += [(kind, "-" if kind == "embeddings" else c) for c in calibrations]
    return pairs


def markdown(rows: list[dict]) -> str:
    ref = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "| dataset | model | calibration | leaf acc | ref leaf | top-level acc | ref top | log-loss | leaf ECE "
        "| top ECE | leaf < 0.5 | of those, top >= 0.9 | their top acc | unseen leaf | T | fit (s) | predict (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        temperature = "-" if r["temperature"] != r["temperature"] else f"{r['temperature']:.3f}"
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['calibration']} | {r['leaf_acc']:.4f} "
            f"| {ref(r['reference_leaf_acc'])} | {r['top_acc']:.4f} | {ref(r['reference_top_acc'])} "
            f"| {r['log_loss']:.4f} | {r['ece']:.4f} | {r['top_ece']:.4f} | {r['unsure_leaf']:.3f} "
            f"| {r['sure_branch']:.3f} | {r['sure_branch_acc']:.3f} "
            f"| {r['unseen_leaf']:.4f} | {temperature} | {r['fit_s']:.1f} | {r['predict_s']:.2f} |"
        )
    return "\n".join(lines)


def command_line() -> str:
    return ("python bench/bench_text_model.py " + " ".join(sys.argv[1:])).strip()


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """Earlier rows, each replaced by a new row of the same dataset, model and calibration; new ones added."""
    key = lambda r: (r["dataset"], r.get("model", "flat"), r["calibration"])  # noqa: E731
    fresh = {key(r): r for r in new}
    out = [fresh.pop(key(r), r) for r in old]
    return sorted(out + list(fresh.values()), key=lambda r: (r["dataset"], MODELS.index(r.get("model", "flat"))))


def write(rows: list[dict], table: str, args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    commands = list(dict.fromkeys(r.get("command", command_line()) for r in rows))
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    text = "\n".join(
        [
            "# Text classifier on product titles",
            "",
            "`TextClassifier()` defaults (TF-IDF word 1-2 + char_wb 2-5, sublinear tf; LinearSVC C=0.5; calibration 3",
            "folds of distinct titles). Split: 20% of the distinct normalised titles held out with all their copies",
            f"(group shuffle split, seeds 0..{args.repeats - 1}; medians over {args.repeats} repeat(s)).",
            "Top-level accuracy sums the leaf probabilities with `ancestor_proba`. Log-loss over held-out items",
            "whose leaf occurs in training (`unseen leaf` is the share that does not); ECE of the top label,",
            "15 uniform bins. Fit time is the whole `fit` (vectorizer, SVM, calibration) on one core; the",
            "reference is the data README's.",
            "`hierarchical` is `HierarchicalClassifier(TextClassifier(), depths=(1,))`:",
            "a top-level head and the leaf head, path-scored (its top level is the top head's distribution).",
            "`embeddings` is `EmbeddingClassifier()` (all-MiniLM-L6-v2 sentence embeddings + logistic regression).",
            "",
            table,
            "",
            "Command"
            + ("s (each row names its own in the JSON)" if len(commands) > 1 else "")
            + ": "
            + ", ".join(f"`{c}`" for c in commands),
            "",
            f"Machine: {machine}, {platform.system()} {platform.release()} (shared with other jobs: read medians).",
            "",
        ]
    )
    (RESULTS / "text_model.md").write_text(text)
    payload = {"commands": commands, "rows": rows}
    (RESULTS / "text_model.json").write_text(json.dumps(payload, indent=2) + "\n")


def write_tuning(name: str, rows: list[dict], args: argparse.Namespace) -> None:
    lines = ["| dataset | change from the defaults | CV leaf acc | minus defaults | folds | seconds |",
             "|---|---|---:|---:|---|---:|"]  # fmt: skip
    for r in rows:
        folds = ", ".join(f"{a:.4f}" for a in r["folds"])
        lines.append(f"| {name} | {r['change']} | {r['cv_acc']:.4f} | {r['cv_acc'] - rows[0]['cv_acc']:+.4f} "
                     f"| {folds} | {r['seconds']:.0f} |")  # fmt: skip
    table = "\n".join(lines)
    print(table, flush=True)
    if args.no_write:
        return
    text = "\n".join([
        f"# Text classifier on {name}: one parameter at a time, cross-validated on the training split",
        "",
        f"Leaf accuracy of the SVM (vectorizer + LinearSVC; the temperature does not move the argmax) in "
        f"{args.tune_folds} group folds",
        "of the training split of `bench/bench_text_model.py` (80% of the distinct titles, seed 0); the test split",
        "is never read. Defaults: C=0.5, word 1-2 and char_wb 2-5 grams, char min_df 2, sublinear tf, no class",
        "weights. Seconds: vectorizing (once per feature set) and fitting the folds, on a shared machine.",
        "",
        table,
        "",
        f"Command: `{command_line()}`",
        "",
    ])  # fmt: skip
    (RESULTS / f"text_model.tuning.{name}.md").write_text(text)
    payload = {"command": command_line(), "dataset": name, "rows": rows}
    (RESULTS / f"text_model.tuning.{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
