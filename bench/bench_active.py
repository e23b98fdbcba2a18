"""Benchmark: active-learning curves on product titles with the default model (``TextClassifier``).

Each strategy of ``crowdloop.active`` against random sampling and against modAL's and
scikit-activeml's uncertainty sampling, in the same run, on Flipkart (952 leaf paths) and Myntra
(170). Per seed: 20% of the *distinct* normalised titles held out with all their copies (a group
shuffle split), a pool of ``--pool`` training rows and ``--test`` held-out rows drawn from them; every
strategy starts from the same random seed batch and follows the same schedule of label counts
(``--schedule``), refitting a fresh ``TextClassifier()`` each round. The competitors see the same
model's probabilities of the same pool (wrapped so that their own query functions score and pick),
so only the selection rule differs.

Reported per strategy, medians over seeds: accuracy at every label count; the labels needed to
reach random sampling's final accuracy (linear between rounds) as a share of random's final budget
(target: <= 60%); Cohen's kappa between the last two rounds' predictions on a stop set (the
stopping rule's signal); CPU seconds of one run.

    python bench/bench_active.py                      # both datasets, 3 seeds (about 18 CPU minutes)
    python bench/bench_active.py --datasets myntra --seeds 1 --strategies random,margin

On a loaded machine the datasets and seeds can run side by side and be combined:

    python bench/bench_active.py --datasets flipkart --seeds 1 --name active.flipkart
    python bench/bench_active.py --datasets myntra --name active.myntra
    python bench/bench_active.py --merge bench/results/active.flipkart.json,bench/results/active.myntra.json

The competitors need ``bench/requirements-active.txt`` (run this file with that venv's python);
without them their rows are skipped. The data is read from ``../shared/data/products``
(``CROWDLOOP_DATA`` overrides it); a missing dataset is skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from _harness import command_line, fmt, machine_lines, markdown_table, write_results
from sklearn.model_selection import GroupShuffleSplit

from crowdloop.active import (
    QueryByCommittee,
    Strategy,
    TextFeatures,
    labels_to_reach,
    make_strategy,
    run_active_learning,
)
from crowdloop.models import normalize_text

DEFAULT_STRATEGIES = "random,least_confidence,margin,entropy,qbc,density,coreset,margin+kmeans++"
TARGET_SHARE = 0.60


class ModalUncertainty(Strategy):
    """modAL's ``uncertainty_sampling`` (least confidence, its default) on our model's probabilities."""

    name = "modAL uncertainty"
    needs = frozenset({"probs"})
    rowwise = False

    def select(self, batch_size, *, probs=None, features=None, labeled_features=None, random_state=None):
        from modAL.uncertainty import uncertainty_sampling

        rows = np.arange(len(probs), dtype=float)[:, None]
        picked, _ = uncertainty_sampling(_Lookup(probs), rows, n_instances=batch_size)
        return np.asarray(picked, dtype=np.int64)


class SkactivemlUncertainty(Strategy):
    """scikit-activeml's ``UncertaintySampling`` (least_confident, its default) on our model's probabilities."""

    name = "skactiveml uncertainty"
    needs = frozenset({"probs"})
    rowwise = False

    def select(self, batch_size, *, probs=None, features=None, labeled_features=None, random_state=None):
        from skactiveml.pool import UncertaintySampling

        rows = np.arange(len(probs), dtype=float)[:, None]
        clf = _skactiveml_lookup(probs)
        seed = int(np.random.default_rng(random_state).integers(2**31))
        picked = UncertaintySampling(random_state=seed).query(
            rows, np.full(len(probs), np.nan), clf, fit_clf=False, batch_size=batch_size
        )
        return np.asarray(picked, dtype=np.int64)


class _Lookup:
    """A fitted classifier whose ``predict_proba`` of row numbers returns precomputed probabilities."""

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = probs

    def predict_proba(self, rows):
        return self.probs[np.asarray(rows)[:, 0].astype(np.int64)]


def _skactiveml_lookup(probs: np.ndarray):
    from skactiveml.base import SkactivemlClassifier

    class Lookup(SkactivemlClassifier):
        def __init__(self, probs=None, classes=None, missing_label=np.nan):
            super().__init__(classes=classes, missing_label=missing_label)
            self.probs = probs

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X):
            return self.probs[np.asarray(X)[:, 0].astype(np.int64)]

        def predict(self, X):
            return self.predict_proba(X).argmax(axis=1)

    clf = Lookup(probs, classes=np.arange(probs.shape[1]))
    clf.classes_ = np.arange(probs.shape[1])
    return clf


COMPETITORS = {"modal": (ModalUncertainty, "modAL"), "skactiveml": (SkactivemlUncertainty, "skactiveml")}


def competitor_versions(names: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Competitors that import, their versions, and notes on those that do not."""
    from importlib.metadata import PackageNotFoundError, version

    ok, versions, notes = [], {}, []
    for name in names:
        module = COMPETITORS[name][1]
        try:
            __import__(module)
            ok.append(name)
            versions[module] = version({"modal": "modAL-python", "skactiveml": "scikit-activeml"}[name])
        except (ImportError, PackageNotFoundError) as exc:
            notes.append(f"{module} not run: {exc} (install bench/requirements-active.txt)")
    return ok, versions, notes


def make_arm(name: str, args: argparse.Namespace) -> Strategy:
    if name in ("qbc", "qbc_kl"):
        return QueryByCommittee("vote_entropy" if name == "qbc" else "kl", n_members=args.qbc_members)
    return make_strategy(name)


def split(frame: pd.DataFrame, seed: int, pool_size: int, test_size: int):
    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    train, test = next(
        GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed).split(
            titles, paths, groups=normalize_text(titles)
        )
    )
    rng = np.random.default_rng(seed)
    train = np.sort(rng.choice(train, min(pool_size, len(train)), replace=False))
    test = np.sort(rng.choice(test, min(test_size, len(test)), replace=False))
    return titles[train], paths[train], titles[test], paths[test]


def run_dataset(name: str, args: argparse.Namespace, competitors: list[str]) -> Iterator[dict]:
    """One run per seed and arm (random first, then the competitors, then our other strategies)."""
    frame = product_data.load(name)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        pool, pool_labels, test, test_labels = split(frame, seed, args.pool, args.test)
        features = TextFeatures().fit_transform(pool)
        ours = [make_arm(s, args) for s in args.strategies]
        arms = ours[:1] + [COMPETITORS[c][0]() for c in competitors] + ours[1:]
        for strategy in arms:
            started = time.process_time()
            curve = run_active_learning(
                pool, pool_labels, strategy, args.schedule, test_texts=test, test_labels=test_labels,
                features=features, stop_set_size=args.stop_set, random_state=seed,
            )  # fmt: skip
            cpu = time.process_time() - started
            acc = curve.curve["accuracy"].round(4).tolist()
            print(f"{name} seed {seed} {curve.strategy}: {acc} ({cpu:.0f} CPU s)", file=sys.stderr, flush=True)
            yield {"dataset": name, "seed": seed, "strategy": curve.strategy, "cpu_s": cpu,
                   "curve": curve.curve.to_dict("list")}  # fmt: skip


def summarize(runs: list[dict], schedule: list[int]) -> list[dict]:
    rows = []
    frame = pd.DataFrame(runs)
    for (dataset, strategy), group in frame.groupby(["dataset", "strategy"], sort=False):
        shares, kappas = [], []
        for run in group.itertuples():
            random_run = frame[(frame.dataset == dataset) & (frame.seed == run.seed) & (frame.strategy == "random")]
            final = random_run.iloc[0]["curve"]["accuracy"][-1] if len(random_run) else float("nan")
            needed = labels_to_reach(pd.DataFrame(run.curve), final)
            shares.append(needed / schedule[-1] if needed == needed else float("inf"))
            kappas.append(run.curve["kappa"][-1])
        accs = np.array([run["accuracy"] for run in group["curve"]])
        share = statistics.median(shares)
        rows.append({
            "dataset": dataset, "strategy": strategy, "seeds": len(group),
            "accuracy": np.median(accs, axis=0).tolist(), "share_to_random_final": share,
            "shares": shares, "target_met": bool(share <= TARGET_SHARE) if strategy != "random" else None,
            "kappa_last": statistics.median(kappas), "cpu_s": statistics.median(group["cpu_s"]),
        })  # fmt: skip
    return rows


def markdown(rows: list[dict], schedule: list[int]) -> str:
    headers = ["dataset", "strategy", "seeds", *[f"acc @ {n}" for n in schedule], "labels to random's final",
               "target <= 60%", "kappa (last 2 rounds)", "CPU s / run"]  # fmt: skip
    body = []
    for r in rows:
        share = r["share_to_random_final"]
        share_text = "never" if share == float("inf") else f"{share:.0%} ({share * schedule[-1]:,.0f})"
        met = "-" if r["target_met"] is None else ("yes" if r["target_met"] else "no")
        body.append([r["dataset"], r["strategy"], r["seeds"], *[fmt(a) for a in r["accuracy"]], share_text, met,
                     fmt(r["kappa_last"]), f"{r['cpu_s']:.0f}"])  # fmt: skip
    return markdown_table(headers, body, right=[False, False] + [True] * (len(headers) - 2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="flipkart,myntra")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES)
    parser.add_argument("--competitors", default="modal,skactiveml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--schedule", default="500,800,1200,2000", help="labels after each round")
    parser.add_argument("--pool", type=int, default=12_000, help="pool rows drawn from the training split")
    parser.add_argument("--test", type=int, default=2_500, help="held-out rows drawn for accuracy")
    parser.add_argument("--stop-set", type=int, default=1_000, help="unlabelled pool rows for the stopping rule")
    parser.add_argument("--qbc-members", type=int, default=3, help="bootstrap committee size of qbc")
    parser.add_argument("--name", default="active", help="stem of the result files under bench/results")
    parser.add_argument("--merge", default="", help="result JSON files of earlier runs to combine (runs nothing)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.merge:
        return merge(args)
    args.strategies = [s for s in args.strategies.split(",") if s]
    args.schedule = [int(n) for n in args.schedule.split(",")]
    if "random" not in args.strategies:
        args.strategies.insert(0, "random")
    present = [d for d in args.datasets.split(",") if d in product_data.available()]
    if not present:
        print(f"no product data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    competitors, versions, notes = competitor_versions([c for c in args.competitors.split(",") if c])
    started = time.process_time()
    runs: list[dict] = []
    for name in present:  # the result files are rewritten after each run, so a long run keeps what it did
        for run in run_dataset(name, args, competitors):
            runs.append(run)
            report(runs, args, notes, versions, time.process_time() - started, done=False)
    report(runs, args, notes, versions, time.process_time() - started, done=True)
    return 0


def merge(args: argparse.Namespace) -> int:
    """One table from the runs of several result files (e.g. one per dataset, run side by side)."""
    loaded = [json.loads(Path(path).read_text()) for path in args.merge.split(",")]
    saved = argparse.Namespace(**loaded[0]["args"])
    saved.name, saved.no_write = args.name, args.no_write
    runs = [run for result in loaded for run in result["runs"]]
    versions = {k: v for result in loaded for k, v in result.get("versions", {}).items()}
    notes = [note for result in loaded for note in result.get("notes", [])]
    saved.commands = [
        c
        for result in loaded
        for c in result.get("commands")
        or [f"python bench/bench_active.py --datasets {','.join(dict.fromkeys(r['dataset'] for r in result['runs']))}"]
    ]
    saved.commands.append(command_line("bench_active.py"))
    counts = pd.DataFrame(runs).groupby(["dataset", "strategy"])["seed"].nunique()
    if counts.groupby(level=0).nunique().gt(1).any():
        notes.append(
            "rows with fewer seeds were not run on every seed (runs stopped for time): their accuracy medians "
            "cover fewer seeds than random's row, while `labels to random's final` always compares with random "
            "on the same seed"
        )
    saved.datasets = ",".join(dict.fromkeys(run["dataset"] for run in runs))
    report(runs, saved, list(dict.fromkeys(notes)), versions, sum(r["cpu_s"] for r in runs), done=True)
    return 0


def report(runs: list[dict], args: argparse.Namespace, notes: list[str], versions: dict, total_cpu: float,
           done: bool) -> None:  # fmt: skip
    rows = summarize(runs, args.schedule)
    table = markdown(rows, args.schedule)
    if done or args.no_write:
        print(table)
    if args.no_write:
        return
    lines = [
        "# Active learning on product titles",
        "",
        f"`TextClassifier()` refitted every round; pool of {args.pool:,} training rows and {args.test:,} held-out",
        "rows per seed (20% of the distinct normalised titles held out with their copies); every arm starts",
        f"from the same {args.schedule[0]}-item random batch and labels up to {args.schedule} items.",
        "Medians over the seeds (0, 1, ...; column `seeds`). `labels to random's final`: labels at which",
        "the curve reaches random sampling's final accuracy (same seed; linear between rounds), as a share",
        "of random's budget",
        "(`never`: not within the budget). modAL and scikit-activeml pick with their own uncertainty-sampling",
        "functions from the same model's probabilities (their default least-confidence measure).",
        f"`qbc`: vote entropy over a {args.qbc_members}-member bootstrap committee; `density`: entropy x mean",
        "cosine similarity to the pool (beta 1); `coreset`: greedy k-center on TF-IDF; `margin+kmeans++`:",
        "k-means++ seeding among the 10 x batch most uncertain items by margin.",
        "",
        table,
        "",
        *[f"- {note}" for note in notes],
        *[f"- command: `{c}`" for c in getattr(args, "commands", [command_line("bench_active.py")])],
        f"- total CPU: {total_cpu / 60:.1f} min" + ("" if done else " (run still going: datasets so far)"),
        *machine_lines({}),
    ]
    if versions:
        lines.append("- competitors: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    markdown_text = "\n".join(lines)
    commands = getattr(args, "commands", [command_line("bench_active.py")])
    saved = {k: v for k, v in vars(args).items() if k not in ("commands", "merge")}
    write_results(args.name, markdown_text, {"args": saved, "rows": rows, "runs": runs, "versions": versions,
                                             "notes": notes, "commands": commands})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
