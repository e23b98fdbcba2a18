"""Product categorization on Flipkart: five labeling policies, measured as accuracy against cost.

Items: the distinct Flipkart titles (``../shared/data/products/flipkart``) with their full category
paths (a taxonomy built from the paths). The model's vote: out-of-fold probabilities of the default
``TextClassifier`` (TF-IDF + linear SVM, temperature-calibrated), folds split by distinct normalised
title. The crowd: synthetic annotators (``simulate_taxonomy_crowd``) whose wrong answers are mostly
sibling categories, in two scenarios: ``uniform`` (every annotator 75-90% accurate: skill ~
Beta(96, 20)) and ``mixed`` (``PRODUCT_ARCHETYPES``: experts, good, sloppy, spammers, a colluding
ring). ``crowdloop.simulation.products.compare_policies`` replays each seed's crowd to every policy:
human-only fixed overlap 3 (MV), dynamic consensus on humans, the model alone, "1 human + model >= t"
for several t, and dynamic consensus with the model as a voter.

    python bench/bench_products.py
    python bench/bench_products.py --scenarios uniform --seeds 2 --probs-cache flipkart_oof.npy
    python bench/bench_products.py --crowd-items 4000 --probs-cache flipkart_oof.npy

The model is cross-fitted on the ``--items`` titles (all by default); the crowd labels all of them
or, with ``--crowd-items``, a random sample, so a smaller crowd run keeps the model as trained on
every title. A relative ``--probs-cache`` lives in the system temp folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import product_data
from _harness import command_line, fmt, machine_lines, markdown_table, write_results

from crowdloop.consensus import ConsensusPolicy, Prices
from crowdloop.labels import Taxonomy
from crowdloop.models import TextClassifier, normalize_text, out_of_fold_proba
from crowdloop.simulation.products import ProductSetup, compare_policies
from crowdloop.simulation.taxonomy_crowd import PRODUCT_ARCHETYPES, Archetype

SCENARIOS = {
    "uniform": (Archetype("annotator", 1.0, 96.0, 20.0),),  # mean .83, 95% of annotators in [.75, .89]
    "mixed": PRODUCT_ARCHETYPES,
}
GOAL_ACCURACY = 0.97
GOAL_ANSWERS = 1.4


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="uniform,mixed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--thresholds", default="0.6,0.7,0.8,0.9,0.95")
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--extra-targets", default="0.90", help="the dynamic policies again at these targets")
    parser.add_argument("--max-overlap", type=int, default=5)
    parser.add_argument("--workers", type=int, default=150)
    parser.add_argument("--gold-share", type=float, default=0.05)
    parser.add_argument("--expert-price", type=float, default=10.0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--items", type=int, default=0, help="a random sample of this many titles (0: all), for the model and the crowd"
    )
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run in parallel processes")
    parser.add_argument(
        "--crowd-items", type=int, default=0, help="the crowd labels a random sample of this many of the items (0: all)"
    )
    parser.add_argument(
        "--probs-cache",
        type=Path,
        default=None,
        help="a .npy file (relative: in the temp folder): read if present, else written",
    )
    return parser.parse_args()


def model_probs(titles: np.ndarray, paths: np.ndarray, taxonomy: Taxonomy, args: argparse.Namespace) -> np.ndarray:
    cache = None if args.probs_cache is None else Path(tempfile.gettempdir()) / args.probs_cache
    if cache is not None and cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(titles), len(taxonomy)):
            print(f"model probabilities from {cache.name}", file=sys.stderr)
            return probs
    start = time.perf_counter()
    probs = out_of_fold_proba(
        TextClassifier(), titles, paths, n_folds=args.folds, groups=normalize_text(titles), label_space=taxonomy
    )
    print(f"out-of-fold probabilities in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if cache is not None:
        np.save(cache, probs)
    return probs


def honeypot_overhead(n_items: int, args: argparse.Namespace) -> float:
    """Crowd answers on honeypots (all ``max_overlap`` of them) per evaluated item."""
    n_gold = round(args.gold_share * n_items)
    return args.max_overlap * n_gold / (n_items - n_gold)


def main() -> None:
    args = parse()
    if "flipkart" not in product_data.available():
        print(f"no Flipkart titles under {product_data.PRODUCTS.name}/ (set CROWDLOOP_DATA): nothing to run")
        return
    frame = product_data.load_flipkart().drop_duplicates("title").reset_index(drop=True)
    n_titles = len(frame)
    taxonomy = Taxonomy.from_paths(sorted(set(frame["path"])))
    if 0 < args.items < len(frame):
        frame = frame.iloc[np.sort(np.random.default_rng(0).choice(len(frame), args.items, replace=False))]
    titles, paths = frame["title"].to_numpy(dtype=object), frame["path"].to_numpy(dtype=object)
    probs = model_probs(titles, paths, taxonomy, args)
    model_accuracy = float((probs.argmax(axis=1) == taxonomy.encode(paths)).mean())
    n_model = len(paths)
    if 0 < args.crowd_items < n_model:
        pick = np.sort(np.random.default_rng(1).choice(n_model, args.crowd_items, replace=False))
        paths, probs = paths[pick], probs[pick]
    thresholds = tuple(float(t) for t in args.thresholds.split(",") if t)
    policy = ConsensusPolicy(
        args.target, 1, args.max_overlap, partial=False, prices=Prices(crowd=1.0, expert=args.expert_price)
    )
    results: dict[str, Any] = {}
    rows = []
    start = time.perf_counter()
    names = [s for s in args.scenarios.split(",") if s]
    setups = [
        ProductSetup(
            archetypes=SCENARIOS[scenario],
            n_workers=args.workers,
            inner_share=0.0,
            branch_spread=0.0,
            policy=policy,
            thresholds=thresholds,
            gold_share=args.gold_share,
            extra_targets=tuple(float(t) for t in args.extra_targets.split(",") if t),
        )
        for scenario in names
    ]
    run = partial(compare_policies, taxonomy, paths, probs, seeds=range(args.seeds))
    if args.jobs > 1:  # one process per scenario
        with ProcessPoolExecutor(min(args.jobs, len(setups))) as pool:
            comparisons = list(pool.map(run, setups))
    else:
        comparisons = [run(setup) for setup in setups]
    for scenario, comparison in zip(names, comparisons, strict=True):
        results[scenario] = {
            "summary": comparison.summary.to_dict("records"),
            "per_seed": comparison.per_seed.to_dict("records"),
        }
        for row in comparison.summary.to_dict("records"):
            met = row["accuracy"] >= GOAL_ACCURACY and row["answers_per_item"] <= GOAL_ANSWERS
            with_reviews = row["answers_per_item"] + row["escalation_rate"]  # an expert review is a paid answer too
            met_expert = row["accuracy_expert"] >= GOAL_ACCURACY and with_reviews <= GOAL_ANSWERS
            rows.append(
                [
                    scenario,
                    row["policy"],
                    f"{fmt(row['accuracy'])} [{fmt(row['accuracy_lo'])}, {fmt(row['accuracy_hi'])}]",
                    fmt(row["accuracy_expert"]),
                    fmt(row["accepted_accuracy"]),
                    f"{fmt(row['answers_per_item'], 2)} [{fmt(row['answers_per_item_lo'], 2)}, "
                    f"{fmt(row['answers_per_item_hi'], 2)}]",
                    fmt(row["cost_per_item"], 2),
                    f"{100 * row['escalation_rate']:.1f}%",
                    f"{100 * row['one_answer_share']:.1f}%",
                    ("**yes**" if met else "no") + (" (**yes** with expert)" if met_expert and not met else ""),
                ]
            )
    total = time.perf_counter() - start
    table = markdown_table(
        [
            "crowd",
            "policy",
            "accuracy [95% CI]",
            "acc. if expert",
            "accepted acc.",
            "human answers/item [95% CI]",
            "cost/item",
            "escalated",
            "one human answer",
            "goal",
        ],
        rows,
        right=[False, False, *[True] * 8],
    )
    lines = [
        "# Product categorization: accuracy against cost on Flipkart titles",
        "",
        f"- command: `{command_line('bench_products.py')}`",
        *machine_lines({}),
        f"- items: {len(paths):,} distinct Flipkart titles"
        + (f" (a random sample of the {n_titles:,})" if len(paths) < n_titles else "")
        + f" with {len(set(paths)):,} category paths; taxonomy: the {len(taxonomy):,} nodes of all titles' "
        f"paths (depth up to {taxonomy.max_depth}); model: `TextClassifier()` out-of-fold over {args.folds} "
        f"folds of the distinct normalised titles of {n_model:,} titles"
        + (" (all)" if n_model == n_titles else "")
        + f", leaf accuracy {model_accuracy:.3f} on them",
        f"- crowd: {args.workers} annotators per seed, {args.max_overlap} answers per item generated and revealed "
        "on demand in a random order; wrong answers: a sibling category 60%, a cousin 25%, any category 15%; "
        "`uniform`: every annotator's skill ~ Beta(96, 20) (mean .83, 95% in [.75, .89]); `mixed`: 5% experts "
        "(.96), 55% good (.85), 22% sloppy (.70), 10% spammers, 8% a colluding ring sharing one wrong answer per "
        "item",
        f"- policy: target {args.target} (`@ t`: the dynamic policies at target t), min overlap 1, "
        f"max overlap {args.max_overlap}, escalation to an expert "
        f"(price {args.expert_price:g} crowd answers) when the target is out of reach; {100 * args.gold_share:.0f}% "
        "of the items are honeypots (all their answers, left out of every metric); seeds "
        f"0..{args.seeds - 1} (a new crowd, new orders and new honeypots each); intervals: Student t over seeds",
        "- accuracy: final labels, escalated items keeping their leading label; acc. if expert: escalated "
        "items labelled right by the expert; cost/item: crowd answers + expert reviews at their price; "
        f"goal: accuracy >= {GOAL_ACCURACY} with <= {GOAL_ANSWERS} paid human (crowd) answers per item "
        "(`with expert`: accuracy if expert and crowd answers + expert reviews per item); human answers/item "
        "counts the crowd answers an item got (the model's vote is free); the honeypots' answers come on top: "
        f"{honeypot_overhead(len(paths), args):.2f} per item",
        f"- wall time {total / 60:.1f} min (the model's probabilities not included"
        + (f"; the scenarios in {args.jobs} parallel processes)" if args.jobs > 1 else ")"),
        "",
        table,
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results(
        "products",
        markdown,
        {
            "command": command_line("bench_products.py"),
            "args": vars(args),
            "model_accuracy": model_accuracy,
            "minutes": total / 60,
            "scenarios": results,
        },
    )


if __name__ == "__main__":
    main()
